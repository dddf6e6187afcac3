#include "node/cpu_speed.h"

#include <algorithm>
#include <chrono>
#include <cstdint>

#include "node/worker_placement.h"

namespace vkn::detail {
namespace {

// About 20 us of dependent integer work and L1 traffic, like the driver code a dispatch
// runs (the slow CPUs above were as much slower at it as at recording and submitting).
double time_work_once() {
  uint64_t table[64] = {};
  uint64_t x = 0x9E3779B97F4A7C15ull;
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 16'384; ++i) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    table[x >> 58] += x;
  }
  const auto t1 = std::chrono::steady_clock::now();
  // Keeps the work from being optimized away.
  volatile uint64_t sink = table[x & 63];
  (void)sink;
  return std::chrono::duration<double>(t1 - t0).count();
}

}  // namespace

std::map<int, double> measure_cpu_speeds(const std::vector<int>& cpus) {
  constexpr int kTries = 5;
  std::map<int, double> seconds;
  for (int cpu : cpus) {
    set_thread_cpus({cpu});
    if (thread_cpus() != std::vector<int>{cpu}) continue;  // not allowed there
    double best = time_work_once();
    for (int i = 1; i < kTries; ++i) best = std::min(best, time_work_once());
    seconds[cpu] = best;
  }
  return seconds;
}

std::vector<int> fastest_cpus(const std::map<int, double>& seconds_per_cpu, double slack, std::size_t at_least) {
  std::vector<std::pair<double, int>> by_time;
  for (const auto& [cpu, s] : seconds_per_cpu) by_time.emplace_back(s, cpu);
  std::sort(by_time.begin(), by_time.end());
  std::vector<int> chosen;
  for (const auto& [s, cpu] : by_time) {
    if (chosen.size() >= at_least && s > by_time.front().first * (1 + slack)) break;
    chosen.push_back(cpu);
  }
  std::sort(chosen.begin(), chosen.end());
  return chosen;
}

}  // namespace vkn::detail
