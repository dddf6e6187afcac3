#include "node/cpu_speed.h"

#include <algorithm>

#include "node/worker_placement.h"

namespace vkn::detail {

std::map<int, double> measure_cpu_speeds(const std::vector<int>& cpus, const std::function<double()>& time_once,
                                         int tries) {
  std::map<int, double> seconds;
  for (int cpu : cpus) {
    set_thread_cpus({cpu});
    if (thread_cpus() != std::vector<int>{cpu}) continue;  // not allowed there
    double best = time_once();
    for (int i = 1; i < tries; ++i) best = std::min(best, time_once());
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
