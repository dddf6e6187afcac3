// Fault injection against the in-process node, beyond tests/node/node_test.cc: a
// kernel that really spins past the hang limit (no seam: the GPU is busy), device
// memory exhausted when creating a buffer, and a failed host staging allocation in
// the middle of a write. In each case the caller gets an error value, the node keeps
// serving, and durable data is unchanged.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <thread>

#include "vknode/node/node.h"

namespace vkn {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

template <typename T>
std::vector<std::byte> push_bytes(const T& p) {
  auto b = std::as_bytes(std::span(&p, 1));
  return {b.begin(), b.end()};
}

std::vector<std::byte> pattern(size_t n, uint8_t seed) {
  std::vector<std::byte> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<std::byte>((i * 31 + seed) ^ (i >> 9));
  return v;
}

double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

class NodeFaultsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/vknode-rel-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    name_ = std::string("rel-") + ::testing::UnitTest::GetInstance()->current_test_info()->name();
    call_.node = name_;
  }
  void TearDown() override {
    if (alive(name_)) {
      auto s = status(name_);
      ASSERT_TRUE(s.has_value());
      EXPECT_EQ(s->validation_errors, 0u) << "validation errors on the node's device";
      (void)stop(name_);
    }
    fs::remove_all(dir_);
  }
  NodeOptions options() {
    NodeOptions o;
    o.name = name_;
    o.cache_dir = dir_;
    o.hang_limit = 5s;
    o.restart_backoff = 10ms;
    return o;
  }
  void start_node(const NodeOptions& o) {
    auto r = start(o);
    ASSERT_TRUE(r.has_value()) << r.error().to_string();
  }
  Program spin(uint32_t iterations) {
    Program p;
    p.dispatch(builtin_kernel_id(BuiltinKernel::spin), {{0, "spin_out"}}, push_bytes(SpinPush{iterations, 64 * 16}),
               {16, 1, 1});
    return p;
  }
  bool wait_ready(std::chrono::seconds limit) {
    const auto end = Clock::now() + limit;
    while (Clock::now() < end) {
      auto s = status(name_);
      if (s && s->health == NodeHealth::ready && s->inflight_age.count() == 0 && s->queue_depth == 0) return true;
      std::this_thread::sleep_for(20ms);
    }
    return false;
  }

  fs::path dir_;
  std::string name_;
  CallOptions call_;
};

// A real runaway kernel (the spin built-in sized to run for seconds), not the
// hang_waits seam: the caller must get device_lost at about the hang limit, callers
// behind it must get node_timeout at their own deadlines rather than wait for the
// GPU, and the node must come back with durable buffers intact once the device can
// be rebuilt.
TEST_F(NodeFaultsTest, RunawayKernelFailsAtTheHangLimitAndTheNodeComesBack) {
  NodeOptions o = options();
  o.hang_limit = 300ms;
  start_node(o);
  ASSERT_TRUE(create_buffer("spin_out", {64 * 16 * 4}, call_).has_value());
  ASSERT_TRUE(create_buffer("keep", {4096, ElementType::bytes, {}, true}, call_).has_value());
  const auto keep = pattern(4096, 7);
  ASSERT_TRUE(write_buffer("keep", 0, keep, call_).has_value());

  // Calibrate: iterations per millisecond on this device.
  constexpr uint32_t kProbe = 200'000;
  const auto t0 = Clock::now();
  ASSERT_TRUE(exec(spin(kProbe), call_).has_value());
  const double probe_ms = std::max(ms_since(t0), 0.5);
  const double target_ms = 3000;  // ten times the hang limit
  const double iterations = std::min(4.0e9, kProbe * target_ms / probe_ms);
  if (iterations * probe_ms / kProbe < 4 * 300) GTEST_SKIP() << "device too fast for a runaway spin to outlast 4x the hang limit";

  const auto start_hang = Clock::now();
  auto r = exec(spin(static_cast<uint32_t>(iterations)), call_);
  const double fail_ms = ms_since(start_hang);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Errc::device_lost) << r.error().to_string();
  EXPECT_NE(r.error().message.find("hang"), std::string::npos) << r.error().message;
  EXPECT_LT(fail_ms, 300 + 1500) << "the hung caller was answered late";

  // While the device is being rebuilt (the driver waits for the runaway kernel), a
  // caller with a deadline is answered at its deadline.
  CallOptions quick = call_;
  quick.timeout = 100ms;
  const auto t_quick = Clock::now();
  auto during = read_buffer("keep", 0, 0, quick);
  const double quick_ms = ms_since(t_quick);
  if (!during) {
    EXPECT_EQ(during.error().code, Errc::node_timeout) << during.error().to_string();
  } else {
    EXPECT_EQ(*during, keep);
  }
  EXPECT_LT(quick_ms, 100 + 1000);

  ASSERT_TRUE(wait_ready(120s)) << "the node did not come back after the runaway kernel";
  const double recovered_ms = ms_since(start_hang);
  std::printf("runaway kernel: answered device_lost after %.0f ms (hang limit 300 ms); node ready after %.0f ms "
              "(kernel calibrated to ~%.0f ms)\n", fail_ms, recovered_ms, target_ms);
  auto back = read_buffer("keep", 0, 0, call_);
  ASSERT_TRUE(back.has_value()) << back.error().to_string();
  EXPECT_EQ(*back, keep);
  EXPECT_EQ(status(name_)->device_resets, 1u);
  EXPECT_TRUE(exec(spin(10), call_).has_value());
}

TEST_F(NodeFaultsTest, DeviceOutOfMemoryOnCreateLeavesTheRegistryUnchanged) {
  start_node(options());
  ASSERT_TRUE(create_buffer("keep", {1024, ElementType::bytes, {}, true}, call_).has_value());
  const auto keep = pattern(1024, 3);
  ASSERT_TRUE(write_buffer("keep", 0, keep, call_).has_value());
  const auto before = status(name_);
  ASSERT_TRUE(before.has_value());

  ASSERT_TRUE(TEST_inject(name_, 0, 0, 1000).has_value());  // every device allocation fails
  auto big = create_buffer("big", {64u << 20}, call_);
  ASSERT_FALSE(big.has_value());
  EXPECT_EQ(big.error().code, Errc::out_of_device_memory) << big.error().to_string();
  ASSERT_TRUE(TEST_inject(name_, 0, 0, 0).has_value());

  auto list = list_buffers(call_);
  ASSERT_TRUE(list.has_value());
  for (const auto& e : *list) EXPECT_NE(e.name, "big");
  const auto after = status(name_);
  EXPECT_EQ(after->registry_bytes, before->registry_bytes);
  EXPECT_EQ(after->buffer_count, before->buffer_count);
  EXPECT_EQ(after->device_resets, 0u);  // out of memory is not a device fault
  EXPECT_EQ(*read_buffer("keep", 0, 0, call_), keep);
  EXPECT_TRUE(create_buffer("big", {64u << 20}, call_).has_value());
}

// The first write sizes the staging memory for small transfers; a larger one needs a
// new staging allocation, which fails. The write must fail as a whole, and the
// buffer (and its durable host copy, checked through a device loss) keep the old bytes.
TEST_F(NodeFaultsTest, StagingAllocationFailureFailsTheWriteAndKeepsTheOldBytes) {
  start_node(options());
  constexpr size_t kBytes = 8u << 20;
  ASSERT_TRUE(create_buffer("dst", {kBytes, ElementType::bytes, {}, true}, call_).has_value());
  const auto old_small = pattern(4096, 1);
  ASSERT_TRUE(write_buffer("dst", 0, old_small, call_).has_value());
  auto old_all = read_buffer("dst", 0, 0, call_);
  ASSERT_TRUE(old_all.has_value());

  ASSERT_TRUE(TEST_inject(name_, 0, 0, 1).has_value());
  auto w = write_buffer("dst", 0, pattern(kBytes, 9), call_);
  ASSERT_TRUE(TEST_inject(name_, 0, 0, 0).has_value());
  if (w.has_value()) GTEST_SKIP() << "the write found staging memory already large enough";
  EXPECT_TRUE(w.error().code == Errc::out_of_device_memory || w.error().code == Errc::out_of_host_memory)
      << w.error().to_string();

  auto now = read_buffer("dst", 0, 0, call_);
  ASSERT_TRUE(now.has_value()) << now.error().to_string();
  EXPECT_TRUE(*now == *old_all) << "a failed write changed the buffer";
  // The durable host copy agrees: after a device loss the buffer is restored from it.
  ASSERT_TRUE(TEST_inject(name_, 1, 0, 0).has_value());
  auto lost = exec(Program().fill("dst", 0, 4, 1), call_);
  ASSERT_FALSE(lost.has_value());
  auto restored = read_buffer("dst", 0, 0, call_);
  ASSERT_TRUE(restored.has_value()) << restored.error().to_string();
  EXPECT_TRUE(*restored == *old_all) << "the durable copy diverged from the device after a failed write";
  // And the same write now succeeds.
  const auto fresh = pattern(kBytes, 9);
  ASSERT_TRUE(write_buffer("dst", 0, fresh, call_).has_value());
  EXPECT_TRUE(*read_buffer("dst", 0, 0, call_) == fresh);
}

}  // namespace
}  // namespace vkn
