// Section "pipeline": Kernel::create of a non-trivial built-in (philox_f32) with an empty
// pipeline cache vs with the cache a previous process persisted, each in a fresh process so
// that nothing in memory helps the warm case. The children run this binary again as
// `bench-child pipeline <cache_dir> <cold|warm> [selector]` with the drivers' own shader
// disk caches switched off, so "cold" really compiles and "warm" is vknode's cache alone.
#include "bench_sections.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <string_view>
#include <vector>

#include "util/strformat.h"
#include "vknode/gpu/builtin_kernels.h"
#include "vknode/gpu/device.h"
#include "vknode/gpu/kernel.h"
#include "vknode/gpu/pipeline_cache.h"

extern char** environ;

namespace vkn::detail {
namespace {

constexpr std::string_view kChildTag = "vknode-bench-child";
constexpr BuiltinKernel kKernel = BuiltinKernel::philox_f32;
constexpr std::chrono::seconds kChildTimeout{300};

// Driver shader caches that would make a "cold" compile warm (Mesa, NVIDIA).
constexpr std::pair<const char*, const char*> kChildEnv[] = {
    {"MESA_SHADER_CACHE_DISABLE", "true"},
    {"__GL_SHADER_DISK_CACHE", "0"},
};

using Fields = std::map<std::string, std::string, std::less<>>;

std::string errno_text(int err) { return std::strerror(err); }

// The environment of this process with kChildEnv set.
std::vector<std::string> child_environment() {
  std::vector<std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    const std::string_view entry = *e;
    bool replaced = false;
    for (const auto& [key, value] : kChildEnv) {
      const std::string_view k = key;
      replaced |= entry.size() > k.size() && entry.substr(0, k.size()) == k && entry[k.size()] == '=';
    }
    if (!replaced) env.emplace_back(entry);
  }
  for (const auto& [key, value] : kChildEnv) env.push_back(vkn::format("{}={}", key, value));
  return env;
}

// Parses "vknode-bench-child key=value key=value ..." out of the child's output.
Result<Fields> parse_child_output(const std::string& output) {
  size_t pos = 0;
  while (pos < output.size()) {
    size_t end = output.find('\n', pos);
    if (end == std::string::npos) end = output.size();
    const std::string_view line = std::string_view(output).substr(pos, end - pos);
    pos = end + 1;
    if (line.substr(0, kChildTag.size()) != kChildTag) continue;
    Fields fields;
    size_t at = kChildTag.size();
    while (at < line.size()) {
      while (at < line.size() && line[at] == ' ') ++at;
      size_t word_end = line.find(' ', at);
      if (word_end == std::string_view::npos) word_end = line.size();
      const std::string_view word = line.substr(at, word_end - at);
      const size_t eq = word.find('=');
      if (eq != std::string_view::npos) fields.emplace(std::string(word.substr(0, eq)), std::string(word.substr(eq + 1)));
      at = word_end;
    }
    return fields;
  }
  return fail(Errc::not_found, "the pipeline child printed no result line", output.substr(0, 200));
}

Result<double> number(const Fields& fields, std::string_view key) {
  auto it = fields.find(key);
  if (it == fields.end()) return fail(Errc::not_found, "field missing from the pipeline child's line", key);
  char* end = nullptr;
  const double v = std::strtod(it->second.c_str(), &end);
  if (end == it->second.c_str()) return fail(Errc::invalid_argument, "unreadable field from the pipeline child", key);
  return v;
}

// Runs `exe` with `args` (argv[0] included), captures stdout, and waits for it to exit 0
// within kChildTimeout (killing it otherwise). stderr is inherited.
Result<std::string> run_child(const std::string& exe, bool search_path, const std::vector<std::string>& args) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return fail(Errc::io_error, "pipe2", errno_text(errno));
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);  // dup2 clears O_CLOEXEC
  std::vector<char*> argv;
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<std::string> env = child_environment();
  std::vector<char*> envp;
  for (std::string& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  pid_t pid = 0;
  const int rc = search_path ? posix_spawnp(&pid, exe.c_str(), &actions, nullptr, argv.data(), envp.data())
                             : posix_spawn(&pid, exe.c_str(), &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  close(fds[1]);
  if (rc != 0) {
    close(fds[0]);
    return fail(Errc::io_error, vkn::format("cannot start the pipeline child {}", exe), errno_text(rc));
  }
  std::string output;
  bool timed_out = false;
  const auto deadline = BenchClock::now() + kChildTimeout;
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - BenchClock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    pollfd p{fds[0], POLLIN, 0};
    const int ready = poll(&p, 1, static_cast<int>(left.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) {
      timed_out = ready == 0;
      break;
    }
    char buf[4096];
    const ssize_t n = read(fds[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // EOF: the child closed stdout (exited)
    output.append(buf, static_cast<size_t>(n));
  }
  close(fds[0]);
  if (timed_out) kill(pid, SIGKILL);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out) {
    return fail(Errc::timeout, vkn::format("the pipeline child ran longer than {} s and was killed",
                                           kChildTimeout.count()));
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    const std::string how = WIFEXITED(status) ? vkn::format("exited with status {}", WEXITSTATUS(status))
                                              : vkn::format("died of signal {}", WTERMSIG(status));
    return fail(Errc::job_failed, vkn::format("the pipeline child ({} {}) {}", args.size() > 4 ? args[4] : "",
                                              args.size() > 3 ? args[3] : "", how));
  }
  return output;
}

// Removes the benchmark's temporary cache directories on every path out of the section.
struct TempDir {
  std::filesystem::path path;
  TempDir() = default;
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ec;
    if (!path.empty()) std::filesystem::remove_all(path, ec);
  }
};

Result<void> make_temp_dir(TempDir& dir) {
  std::error_code ec;
  std::filesystem::path base = std::filesystem::temp_directory_path(ec);
  if (ec) base = "/tmp";
  std::string templ = (base / "vknode-bench-XXXXXX").string();
  if (mkdtemp(templ.data()) == nullptr) return fail(Errc::io_error, vkn::format("mkdtemp {}", templ), errno_text(errno));
  dir.path = templ;
  return {};
}

struct PhaseSamples {
  std::vector<double> create_us, driver_us, open_us, loaded_bytes, persisted_bytes, intake_us, layout_us,
      second_us, second_layout_us, second_pipeline_us;
  int hits = 0;
  int unknown = 0;  // runs where the driver gave no creation feedback
  int runs = 0;
};

Result<void> run_phase(const std::string& exe, bool search_path, const std::filesystem::path& dir,
                       const char* phase, const BenchOptions& options, PhaseSamples& out) {
  std::vector<std::string> args = {exe, "bench-child", "pipeline", dir.string(), phase};
  if (!options.device_selector.empty()) args.push_back(options.device_selector);
  auto output = run_child(exe, search_path, args);
  if (!output) return fail(output.error());
  auto fields = parse_child_output(*output);
  if (!fields) return fail(fields.error());
  for (const auto& [key, samples] : {std::pair{"create_us", &out.create_us}, std::pair{"driver_us", &out.driver_us},
                                     std::pair{"open_us", &out.open_us}, std::pair{"loaded_bytes", &out.loaded_bytes},
                                     std::pair{"intake_us", &out.intake_us}, std::pair{"layout_us", &out.layout_us},
                                     std::pair{"second_us", &out.second_us},
                                     std::pair{"second_layout_us", &out.second_layout_us},
                                     std::pair{"second_pipeline_us", &out.second_pipeline_us},
                                     std::pair{"persisted_bytes", &out.persisted_bytes}}) {
    auto v = number(*fields, key);
    if (!v) return fail(v.error());
    samples->push_back(*v);
  }
  auto hit = number(*fields, "hit");
  if (!hit) return fail(hit.error());
  out.hits += *hit != 0 ? 1 : 0;
  auto unknown = number(*fields, "unknown");
  if (!unknown) return fail(unknown.error());
  out.unknown += *unknown != 0 ? 1 : 0;
  ++out.runs;
  return {};
}

}  // namespace

Result<void> bench_pipeline(const BenchOptions& options, const std::string& exe, const RowSink& sink) {
  const int cold_runs = options.quick ? 1 : 3;
  const int warm_runs = 5;
  const bool search_path = exe.find('/') == std::string::npos;
  TempDir root;
  if (auto r = make_temp_dir(root); !r) return r;
  PhaseSamples cold, warm;
  std::filesystem::path cache_dir;
  for (int i = 0; i < cold_runs; ++i) {
    cache_dir = root.path / vkn::format("cold{}", i);  // empty each time: the child creates it
    if (auto r = run_phase(exe, search_path, cache_dir, "cold", options, cold); !r) return r;
  }
  for (int i = 0; i < warm_runs; ++i) {
    if (auto r = run_phase(exe, search_path, cache_dir, "warm", options, warm); !r) return r;
  }
  const double cold_us = median(cold.create_us);
  const double warm_us = median(warm.create_us);
  const std::string kernel(to_string(kKernel));
  sink({.section = "pipeline",
        .metric = vkn::format("Kernel::create {}, cold (empty cache), n={}", kernel, cold_runs),
        .unit = "ms",
        .value = cold_us / 1000.0});
  sink({.section = "pipeline",
        .metric = vkn::format("Kernel::create warm (disk cache) vs cold, n={}", warm_runs),
        .unit = "us",
        .value = warm_us,
        .baseline = cold_us});
  sink({.section = "pipeline", .metric = "speed-up of warm over cold", .unit = "x",
        .value = warm_us > 0 ? cold_us / warm_us : 0});
  sink({.section = "pipeline",
        .metric = "vkCreateComputePipelines alone: warm vs cold",
        .unit = "us",
        .value = median(warm.driver_us),
        .baseline = median(cold.driver_us)});
  const char* verdict = warm.unknown > 0      ? "unknown"  // the driver gave no creation feedback
                        : warm.hits == warm.runs ? "yes"
                        : warm.hits == 0         ? "no"
                                                 : "partly";
  sink({.section = "pipeline",
        .metric = "warm run was a cache hit (creation feedback)",
        .unit = "hit",
        .value = warm.runs > 0 ? static_cast<double>(warm.hits) / warm.runs : 0,
        .text = vkn::format("{} {}/{}", verdict, warm.hits, warm.runs)});
  sink({.section = "pipeline",
        .metric = "warm: SPIR-V intake (validate+reflect) vs cold",
        .unit = "us",
        .value = median(warm.intake_us),
        .baseline = median(cold.intake_us)});
  sink({.section = "pipeline",
        .metric = "warm: descriptor/pipeline layouts vs cold",
        .unit = "us",
        .value = median(warm.layout_us),
        .baseline = median(cold.layout_us)});
  sink({.section = "pipeline",
        .metric = "warm: a second kernel in the same process vs cold",
        .unit = "us",
        .value = median(warm.second_us),
        .baseline = median(cold.second_us)});
  sink({.section = "pipeline",
        .metric = "warm second kernel: layouts | pipeline (us)",
        .unit = "us",
        .value = median(warm.second_layout_us),
        .text = vkn::format("{} | {}", format_number(median(warm.second_layout_us)),
                            format_number(median(warm.second_pipeline_us)))});
  sink({.section = "pipeline",
        .metric = "PipelineCache::open warm (reads the file)",
        .unit = "us",
        .value = median(warm.open_us)});
  sink({.section = "pipeline",
        .metric = "cache data: persisted by cold / loaded by warm",
        .unit = "KiB",
        .value = median(warm.loaded_bytes) / 1024.0,
        .baseline = median(cold.persisted_bytes) / 1024.0});
  return {};
}

int pipeline_child(int argc, char** argv) {
  if (argc < 2 || argc > 3) {
    std::fputs("usage: vknode bench-child pipeline <cache_dir> <cold|warm> [device_selector]\n", stderr);
    return 2;
  }
  const std::filesystem::path dir = argv[0];
  const std::string_view phase = argv[1];
  if (phase != "cold" && phase != "warm") {
    std::fprintf(stderr, "vknode bench-child: phase must be cold or warm, not '%s'\n", argv[1]);
    return 2;
  }
  auto report = [](const Error& e) {
    std::fprintf(stderr, "vknode bench-child: %s\n", e.to_string().c_str());
    return 1;
  };
  auto device = Device::create(DeviceOptions{.selector = argc > 2 ? argv[2] : "", .validation_from_env = false});
  if (!device) return report(device.error());
  const auto t_open = BenchClock::now();
  auto cache = PipelineCache::open(**device, PipelineCacheOptions{.directory = dir});
  const double open_us = elapsed_us(t_open);
  if (!cache) return report(cache.error());
  const auto t_create = BenchClock::now();
  auto kernel = Kernel::create(**device, cache->get(), builtin_spirv(kKernel), {}, to_string(kKernel));
  const double create_us = elapsed_us(t_create);
  if (!kernel) return report(kernel.error());
  // A second kernel: what creation costs once the process's one-time costs are paid.
  const auto t_second = BenchClock::now();
  auto second = Kernel::create(**device, cache->get(), builtin_spirv(BuiltinKernel::axpy_f32), {}, "second");
  const double second_us = elapsed_us(t_second);
  if (!second) return report(second.error());
  double persist_us = 0;
  if (phase == "cold") {
    const auto t_persist = BenchClock::now();
    if (auto r = (*cache)->persist(); !r) return report(r.error());
    persist_us = elapsed_us(t_persist);
  }
  const PipelineCacheStats s = (*cache)->stats();
  std::printf("%s phase=%s create_us=%.1f driver_us=%.1f hit=%d hits=%llu misses=%llu unknown=%llu open_us=%.1f "
              "loaded_bytes=%llu persist_us=%.1f persisted_bytes=%llu intake_us=%.1f layout_us=%.1f second_us=%.1f "
              "second_layout_us=%.1f second_pipeline_us=%.1f\n",
              std::string(kChildTag).c_str(), argv[1], create_us, (*kernel)->creation_ms() * 1000.0,
              (*kernel)->was_cache_hit() ? 1 : 0, static_cast<unsigned long long>(s.hits),
              static_cast<unsigned long long>(s.misses), static_cast<unsigned long long>(s.unknown), open_us,
              static_cast<unsigned long long>(s.loaded_bytes), persist_us,
              static_cast<unsigned long long>(s.persisted_bytes), (*kernel)->creation_times().intake_us,
              (*kernel)->creation_times().layout_us, second_us, (*second)->creation_times().layout_us,
              (*second)->creation_times().pipeline_us);
  std::fflush(stdout);
  return 0;
}

}  // namespace vkn::detail
