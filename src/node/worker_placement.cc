#include "node/worker_placement.h"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <charconv>
#include <fstream>
#include <map>
#include <sstream>

#include "util/strformat.h"

namespace vkn::detail {
namespace {

namespace fs = std::filesystem;

std::string read_first_line(const fs::path& p) {
  std::ifstream in(p);
  std::string line;
  std::getline(in, line);
  return line;
}

// IRQ number -> interrupts taken on all CPUs, from /proc/interrupts.
std::map<int, unsigned long long> interrupt_counts(const fs::path& proc_root) {
  std::map<int, unsigned long long> counts;
  std::ifstream in(proc_root / "interrupts");
  std::string line;
  while (std::getline(in, line)) {  // the CPU header and NMI:, LOC: ... have no number
    std::istringstream fields(line);
    std::string label;
    fields >> label;
    if (label.empty() || label.back() != ':') continue;
    int irq = 0;
    const auto [p, ec] = std::from_chars(label.data(), label.data() + label.size() - 1, irq);
    if (ec != std::errc() || p != label.data() + label.size() - 1) continue;
    unsigned long long total = 0, n = 0;
    while (fields >> n) total += n;
    counts[irq] = total;
  }
  return counts;
}

}  // namespace

std::vector<int> thread_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> cpus;
  if (pthread_getaffinity_np(pthread_self(), sizeof set, &set) != 0) return cpus;
  for (int c = 0; c < CPU_SETSIZE; ++c) {
    if (CPU_ISSET(c, &set)) cpus.push_back(c);
  }
  return cpus;
}

namespace {

std::string cpu_list(const std::vector<int>& cpus) {
  std::string s;
  for (int c : cpus) s += (s.empty() ? "" : ",") + std::to_string(c);
  return s;
}

}  // namespace

std::vector<int> parse_cpu_list(std::string_view list) {
  std::vector<int> cpus;
  while (!list.empty()) {
    const size_t comma = list.find(',');
    std::string_view part = list.substr(0, comma);
    list = comma == std::string_view::npos ? std::string_view{} : list.substr(comma + 1);
    while (!part.empty() && (part.back() == '\n' || part.back() == ' ')) part.remove_suffix(1);
    int lo = 0, hi = 0;
    const char* end = part.data() + part.size();
    auto [p, ec] = std::from_chars(part.data(), end, lo);
    if (ec != std::errc()) continue;
    hi = lo;
    if (p != end && *p == '-') {
      auto [q, ec2] = std::from_chars(p + 1, end, hi);
      if (ec2 != std::errc() || q != end) continue;
    } else if (p != end) {
      continue;
    }
    for (int c = lo; c <= hi && c - lo < 4096; ++c) cpus.push_back(c);
  }
  std::sort(cpus.begin(), cpus.end());
  cpus.erase(std::unique(cpus.begin(), cpus.end()), cpus.end());
  return cpus;
}

std::vector<int> device_interrupt_cpus(std::string_view pci_address, const fs::path& sys_root,
                                       const fs::path& proc_root) {
  std::vector<int> irqs;
  std::error_code ec;
  const fs::path msi = sys_root / "bus/pci/devices" / std::string(pci_address) / "msi_irqs";
  for (const auto& entry : fs::directory_iterator(msi, ec)) {
    int irq = 0;
    const std::string name = entry.path().filename().string();
    const auto [p, e] = std::from_chars(name.data(), name.data() + name.size(), irq);
    if (e == std::errc() && p == name.data() + name.size()) irqs.push_back(irq);
  }
  if (irqs.empty()) return {};
  const auto counts = interrupt_counts(proc_root);
  std::vector<int> fired;
  for (int irq : irqs) {
    auto it = counts.find(irq);
    if (it != counts.end() && it->second > 0) fired.push_back(irq);
  }
  std::vector<int> cpus;
  for (int irq : fired.empty() ? irqs : fired) {
    const fs::path dir = proc_root / "irq" / std::to_string(irq);
    std::string list = read_first_line(dir / "effective_affinity_list");
    if (list.empty()) list = read_first_line(dir / "smp_affinity_list");
    for (int c : parse_cpu_list(list)) cpus.push_back(c);
  }
  std::sort(cpus.begin(), cpus.end());
  cpus.erase(std::unique(cpus.begin(), cpus.end()), cpus.end());
  return cpus;
}

std::vector<int> cpus_avoiding(const std::vector<int>& allowed, const std::vector<int>& avoid) {
  std::vector<int> left;
  for (int c : allowed) {
    if (std::find(avoid.begin(), avoid.end(), c) == avoid.end()) left.push_back(c);
  }
  return left.empty() ? allowed : left;
}

void set_thread_cpus(const std::vector<int>& cpus) {
  if (cpus.empty()) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  for (int c : cpus) CPU_SET(c, &set);
  (void)pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

std::string keep_thread_off_device_interrupts(std::string_view pci_address, const std::vector<int>& base) {
  if (pci_address.empty() || base.empty()) return "";
  const std::vector<int> avoid = device_interrupt_cpus(pci_address);
  const std::vector<int> chosen = cpus_avoiding(base, avoid);
  if (chosen == thread_cpus()) return "";
  set_thread_cpus(chosen);
  if (thread_cpus() != chosen) return "";
  return vkn::format("kept off CPU {} (interrupts of the GPU at {}); runs on {}", cpu_list(avoid), pci_address,
                     cpu_list(chosen));
}

}  // namespace vkn::detail
