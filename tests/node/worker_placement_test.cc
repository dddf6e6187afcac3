#include "node/worker_placement.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace vkn::detail {
namespace {

namespace fs = std::filesystem;

TEST(WorkerPlacementTest, ParsesCpuLists) {
  EXPECT_EQ(parse_cpu_list("14"), (std::vector<int>{14}));
  EXPECT_EQ(parse_cpu_list("0-3,8,10-11\n"), (std::vector<int>{0, 1, 2, 3, 8, 10, 11}));
  EXPECT_EQ(parse_cpu_list("3,1,1-2"), (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(parse_cpu_list(""), std::vector<int>{});
  EXPECT_EQ(parse_cpu_list("x,5,7-,2"), (std::vector<int>{2, 5}));  // malformed parts skipped
}

TEST(WorkerPlacementTest, AvoidsCpusUnlessNothingWouldBeLeft) {
  EXPECT_EQ(cpus_avoiding({0, 1, 2, 3}, {1, 3, 9}), (std::vector<int>{0, 2}));
  EXPECT_EQ(cpus_avoiding({4}, {4}), (std::vector<int>{4}));
  EXPECT_EQ(cpus_avoiding({0, 1}, {}), (std::vector<int>{0, 1}));
}

// A fake /sys and /proc: a GPU with three MSI vectors routed to CPUs 14, 15 and 0-1.
class FakeSystem : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("vknode-placement-" + std::to_string(getpid()));
    fs::remove_all(root_);
    const fs::path msi = root_ / "sys/bus/pci/devices/0000:00:06.0/msi_irqs";
    fs::create_directories(msi);
    for (const char* irq : {"42", "43", "44"}) std::ofstream(msi / irq) << "msix\n";
    affinity("42", "14");
    affinity("43", "15");
    affinity("44", "0-1");
  }
  void TearDown() override { fs::remove_all(root_); }
  void affinity(const std::string& irq, const std::string& cpus) {
    fs::create_directories(root_ / "proc/irq" / irq);
    std::ofstream(root_ / "proc/irq" / irq / "effective_affinity_list") << cpus << "\n";
  }
  void interrupts(const std::string& text) { std::ofstream(root_ / "proc/interrupts") << text; }
  std::vector<int> cpus(const std::string& pci = "0000:00:06.0") {
    return device_interrupt_cpus(pci, root_ / "sys", root_ / "proc");
  }
  fs::path root_;
};

TEST_F(FakeSystem, OnlyVectorsThatFiredCount) {
  interrupts(
      "           CPU0       CPU1\n"
      "  0:         10          0   IO-APIC   2-edge      timer\n"
      " 42:       5310          7   PCI-MSIX-0000:00:06.0   0-edge      nvidia\n"
      " 43:          0          0   PCI-MSIX-0000:00:06.0   1-edge      nvidia\n"
      " 44:          0          0   PCI-MSIX-0000:00:06.0   2-edge      nvidia\n"
      "NMI:          0          0   Non-maskable interrupts\n");
  EXPECT_EQ(cpus(), (std::vector<int>{14}));
}

TEST_F(FakeSystem, BeforeAnyInterruptEveryVectorCounts) {
  interrupts(
      "           CPU0\n"
      " 42:          0   PCI-MSIX-0000:00:06.0   0-edge      nvidia\n"
      " 43:          0   PCI-MSIX-0000:00:06.0   1-edge      nvidia\n");
  EXPECT_EQ(cpus(), (std::vector<int>{0, 1, 14, 15}));
}

TEST_F(FakeSystem, FallsBackToTheConfiguredAffinity) {
  interrupts(" 42:          9   PCI-MSIX nvidia\n");
  fs::remove(root_ / "proc/irq/42/effective_affinity_list");
  std::ofstream(root_ / "proc/irq/42/smp_affinity_list") << "6-7\n";
  EXPECT_EQ(cpus(), (std::vector<int>{6, 7}));
}

TEST_F(FakeSystem, UnknownDevicesAndMissingFilesGiveNothing) {
  interrupts("");
  EXPECT_TRUE(cpus("0000:99:00.0").empty());
  EXPECT_TRUE(cpus("").empty());
  EXPECT_TRUE(device_interrupt_cpus("0000:00:06.0", root_ / "nowhere", root_ / "proc").empty());
}

TEST(WorkerPlacementTest, LeavesTheThreadAloneWithoutAPciAddress) {
  const auto before = thread_cpus();
  ASSERT_FALSE(before.empty());
  EXPECT_EQ(keep_thread_off_device_interrupts("", before), "");
  EXPECT_EQ(keep_thread_off_device_interrupts("0000:99:00.0", before), "");  // no such device here
  EXPECT_EQ(thread_cpus(), before);
}

}  // namespace
}  // namespace vkn::detail
