#include "bench_harness.h"

#include <unistd.h>

#include <climits>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <memory>
#include <string_view>
#include <vector>

#include "bench_report.h"
#include "bench_sections.h"
#include "node/worker_placement.h"
#include "util/file_ops.h"
#include "util/strformat.h"
#include "vknode/gpu/device.h"

namespace vkn {
namespace {

using detail::BenchReport;
using detail::BenchRow;
using detail::RowSink;

constexpr const char* kSections[] = {"init", "pipeline", "dispatch", "transfer", "node", "sampler"};

// This binary, for re-executing it as the pipeline child: /proc/self/exe, else argv[0].
Result<std::string> self_executable(const char* argv0) {
  char buf[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n > 0) return std::string(buf, static_cast<size_t>(n));
  if (argv0 != nullptr && *argv0 != '\0') return std::string(argv0);
  return fail(Errc::not_found, "cannot find this executable (no /proc/self/exe and no argv[0])");
}

void print(std::string_view text) {
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
}

Result<void> run_sections(const BenchOptions& options, const char* argv0, BenchReport& report) {
  std::vector<std::string_view> selected;
  for (const char* s : kSections) {
    if (std::string_view(s).find(options.only) != std::string_view::npos) selected.push_back(s);
  }
  if (selected.empty()) {
    return fail(Errc::invalid_argument,
                vkn::format("--only '{}' matches no section (init, pipeline, dispatch, transfer, node, sampler)", options.only));
  }
  if (!options.json_path.empty()) {  // fail before the run, not after it
    std::error_code ec;
    std::filesystem::path dir = std::filesystem::path(options.json_path).parent_path();
    if (dir.empty()) dir = ".";
    if (!std::filesystem::is_directory(dir, ec)) {
      return fail(Errc::invalid_argument, "the directory for --json does not exist", dir.string());
    }
  }
  auto created = Device::create(DeviceOptions{.selector = options.device_selector, .validation_from_env = false});
  if (!created) return fail(created.error());
  std::unique_ptr<Device> device = std::move(*created);
  const DeviceInfo& info = device->info();
  detail::BenchMeta meta{.device = info.name,
                         .device_type = to_string(info.type),
                         .driver = vkn::format("{} {}", info.driver_name, info.driver_info),
                         .api_version = version_string(info.api_version),
                         .date = detail::utc_date(),
                         .quick = options.quick};
  print(vkn::format("vknode bench ({} mode), {}\ndevice: {} ({}), driver: {}, Vulkan {}\n"
                    "ratio = vknode / baseline (times: >1 is slower; GB/s: <1 is slower)\n\n",
                    options.quick ? "quick" : "full", meta.date, meta.device, meta.device_type, meta.driver,
                    meta.api_version));
  // Every section runs off the CPUs that take the GPU's interrupts, as the node's worker
  // does (worker_placement.h): a thread there pays for the interrupt handling on every
  // completion (on the H200 a tiny dispatch took 42-52 us there instead of 13-17), and the
  // scheduler's choice would otherwise decide the dispatch and transfer rows.
  const std::vector<int> cpus = detail::thread_cpus();
  struct RestoreCpus {
    const std::vector<int>& cpus;
    ~RestoreCpus() { detail::set_thread_cpus(cpus); }
  } restore{cpus};
  const std::string placed = detail::keep_thread_off_device_interrupts(info.pci_address, cpus);
  if (!placed.empty()) std::fprintf(stderr, "vknode bench: %s\n", placed.c_str());
  print(BenchReport::table_header());
  const RowSink sink = [&](BenchRow row) { print(report.add(std::move(row))); };
  for (std::string_view section : selected) {
    std::fprintf(stderr, "vknode bench: running %.*s...\n", static_cast<int>(section.size()), section.data());
    Result<void> r;
    if (section == "init") {
      r = detail::bench_init(options, *device, sink);
    } else if (section == "pipeline") {
      auto exe = self_executable(argv0);
      r = exe ? detail::bench_pipeline(options, *exe, sink) : Result<void>(fail(exe.error()));
    } else if (section == "dispatch") {
      r = detail::bench_dispatch(options, *device, sink);
    } else if (section == "transfer") {
      r = detail::bench_transfer(options, *device, sink);
    } else if (section == "sampler") {
      r = detail::bench_sampler(options, sink);
    } else {
      // The node's device is to be the first of this process, as the baseline's is in its
      // own (core_dispatch_child.h); no later section uses this one.
      device.reset();
      auto exe = self_executable(argv0);
      r = exe ? detail::bench_node(options, *exe, sink) : Result<void>(fail(exe.error()));
    }
    if (!r) {
      Error e = r.error();
      e.message = vkn::format("section {}: {}", section, e.message);
      return fail(std::move(e));
    }
  }
  if (!options.json_path.empty()) {
    const std::string json = report.json(meta);
    const auto bytes = std::span(reinterpret_cast<const uint8_t*>(json.data()), json.size());
    if (auto r = write_file_atomically(posix_file_ops(), options.json_path, bytes); !r) return r;
    std::fprintf(stderr, "vknode bench: wrote %s\n", options.json_path.c_str());
  }
  return {};
}

}  // namespace

int run_core_bench(const BenchOptions& options, const char* argv0) {
  try {
    BenchReport report;
    auto r = run_sections(options, argv0, report);
    if (!r) {
      std::fprintf(stderr, "vknode bench: %s\n", r.error().to_string().c_str());
      return r.error().code == Errc::invalid_argument && report.rows().empty() ? 2 : 1;
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "vknode bench: unexpected exception: %s\n", e.what());
    return 1;
  }
}

int run_bench_child(int argc, char** argv) {
  try {
    int first = 0;
    if (argc > 0 && std::string_view(argv[0]) == "bench-child") {
      first = 1;
    } else if (argc > 1 && std::string_view(argv[1]) == "bench-child") {
      first = 2;  // called with main's argv, program name first
    }
    const std::string_view kind = first > 0 && argc > first ? argv[first] : "";
    if (kind == "pipeline") return detail::pipeline_child(argc - first - 1, argv + first + 1);
    if (kind == "dispatch") return detail::core_dispatch_child_main(argc - first - 1, argv + first + 1);
    std::fputs("usage: vknode bench-child pipeline <cache_dir> <cold|warm> [device_selector]\n"
               "       vknode bench-child dispatch [device_selector]\n"
               "(internal: started by 'vknode bench')\n",
               stderr);
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "vknode bench-child: unexpected exception: %s\n", e.what());
    return 1;
  }
}

}  // namespace vkn
