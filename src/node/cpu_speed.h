// CPU speed: how long each CPU takes for the same piece of work. Some CPUs run a thread's
// work markedly slower than others: hybrid processors' efficiency cores, vCPUs whose host
// cores are shared or far from the device, the CPU taking the device's interrupts. On one
// H200 machine 5 of its 16 vCPUs recorded and submitted a tiny dispatch 1.6x slower than
// the rest (its round trip 1.4-2.5 us longer) and the node's worker landed on one of them
// in some runs; on another all 15 were alike (docs/benchmarks.md, 2026-11-29).
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <vector>

namespace vkn::detail {

// Seconds `time_once` reports on each CPU of `cpus`: the calling thread moves to each in
// turn and keeps the least of `tries` (a try that was preempted is slower, never faster).
// A CPU the thread may not use is left out. Leaves the thread on the last CPU measured:
// restore its affinity after.
std::map<int, double> measure_cpu_speeds(const std::vector<int>& cpus, const std::function<double()>& time_once,
                                         int tries);

// The CPUs whose time is within `slack` (0.2: 20 %) of the fastest's, at least `at_least`
// of them (the fastest ones), in CPU order.
std::vector<int> fastest_cpus(const std::map<int, double>& seconds_per_cpu, double slack, std::size_t at_least);

}  // namespace vkn::detail
