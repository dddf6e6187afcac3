// Worker placement: keeps the node's worker thread off the CPUs that service the GPU's
// interrupts. A thread that waits on GPU fences from such a CPU pays for the interrupt
// handling on every completion: on the H200 machine a tiny dispatch took 51.6 us from
// the interrupt's CPU and 17.4 us from each of the 15 others (2026-11-29,
// docs/benchmarks.md), and the scheduler put the node's thread there in some runs.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace vkn::detail {

// "0-3,8,10-11" -> {0,1,2,3,8,10,11}. Malformed parts are skipped.
std::vector<int> parse_cpu_list(std::string_view list);

// The CPUs the interrupts of the PCI device at `pci_address` ("dddd:bb:dd.f") are routed
// to, from its MSI vectors (sysfs) and their effective affinity (procfs). Vectors that have
// fired (/proc/interrupts) count; if none has fired yet, all of them. Empty when unknown
// (no such device, no MSI, no permission).
std::vector<int> device_interrupt_cpus(std::string_view pci_address,
                                       const std::filesystem::path& sys_root = "/sys",
                                       const std::filesystem::path& proc_root = "/proc");

// `allowed` without `avoid`; `allowed` itself when that would leave nothing.
std::vector<int> cpus_avoiding(const std::vector<int>& allowed, const std::vector<int>& avoid);

// The CPUs the calling thread may run on, and setting them.
std::vector<int> thread_cpus();
void set_thread_cpus(const std::vector<int>& cpus);

// Restricts the calling thread to `base` (its CPUs before any placement) minus those taking
// the interrupts of the device at `pci_address`. Returns what it did, for the log ("" when
// it left `base` as it was).
std::string keep_thread_off_device_interrupts(std::string_view pci_address, const std::vector<int>& base);

}  // namespace vkn::detail
