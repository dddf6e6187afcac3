// CPU speed: how long each CPU takes for the same piece of work. Some CPUs run a thread's
// code markedly slower than others: hybrid processors' efficiency cores, or vCPUs whose
// host cores are shared. On the H200 machine 5 of its 16 vCPUs recorded and submitted a
// tiny dispatch 1.6x slower than the rest (its round trip 1.4-2.5 us longer), and the
// node's worker landed on one of them in some runs (docs/benchmarks.md, 2026-11-29).
#pragma once

#include <cstddef>
#include <map>
#include <vector>

namespace vkn::detail {

// Seconds per unit of work on each CPU of `cpus`: the calling thread moves to each in
// turn and keeps the best of a few tries (a try that was preempted is slower, never
// faster). Leaves the thread's affinity at the last CPU measured: restore it after.
std::map<int, double> measure_cpu_speeds(const std::vector<int>& cpus);

// The CPUs whose time is within `slack` (0.15: 15 %) of the fastest's, at least
// `at_least` of them (the fastest ones), in CPU order.
std::vector<int> fastest_cpus(const std::map<int, double>& seconds_per_cpu, double slack, std::size_t at_least);

}  // namespace vkn::detail
