// `vknode selfcheck`: runs built-in kernels as exec Programs on fresh random input against
// CPU references, through an in-process node on the selected device, or with --daemon
// through the per-machine daemon (as a client). The README's main job runs it.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <numeric>
#include <random>
#include <vector>

#include "command.h"
#include "util/strformat.h"
#include "vknode/client/client.h"
#include "vknode/node/node.h"

namespace vkn::cli {
namespace {

template <typename T>
std::vector<std::byte> to_bytes(const std::vector<T>& v) {
  auto b = std::as_bytes(std::span(v));
  return {b.begin(), b.end()};
}
template <typename T>
std::vector<T> from_bytes(const std::vector<std::byte>& b) {
  std::vector<T> v(b.size() / sizeof(T));
  std::memcpy(v.data(), b.data(), v.size() * sizeof(T));
  return v;
}
template <typename T>
std::vector<std::byte> push_of(const T& p) {
  auto b = std::as_bytes(std::span(&p, 1));
  return {b.begin(), b.end()};
}

// Where the checks run: an in-process node, or the daemon through a client.
class Target {
 public:
  virtual ~Target() = default;
  virtual Result<void> create(const std::string& name, const BufferSpec& spec) = 0;
  virtual Result<ProgramResult> run(const Program& p) = 0;
};

class NodeTarget final : public Target {
 public:
  explicit NodeTarget(CallOptions call) : call_(std::move(call)) {}
  Result<void> create(const std::string& name, const BufferSpec& spec) override {
    return create_buffer(name, spec, call_);
  }
  Result<ProgramResult> run(const Program& p) override { return exec(p, call_); }

 private:
  CallOptions call_;
};

class DaemonTarget final : public Target {
 public:
  explicit DaemonTarget(Client& client) : client_(client) {}
  Result<void> create(const std::string& name, const BufferSpec& spec) override {
    (void)client_.delete_buffer(name);  // left over from an earlier run of this user
    return client_.create_buffer(name, spec);
  }
  Result<ProgramResult> run(const Program& p) override { return client_.exec(p); }

 private:
  Client& client_;
};

struct Checks {
  Target& target;
  std::mt19937 rng{std::random_device{}()};

  Result<std::string> axpy() {
    const uint32_t n = 1 << 20;
    std::uniform_real_distribution<float> d(-1, 1);
    std::vector<float> x(n), y(n);
    for (uint32_t i = 0; i < n; ++i) x[i] = d(rng), y[i] = d(rng);
    Program p;
    p.upload("selfcheck.x", 0, to_bytes(x))
        .upload("selfcheck.y", 0, to_bytes(y))
        .dispatch(builtin_kernel_id(BuiltinKernel::axpy_f32), {{0, "selfcheck.x"}, {1, "selfcheck.y"}},
                  push_of(AxpyPush{n, 0.5f}), {n / 256, 1, 1})
        .download("selfcheck.y", 0, n * 4);
    auto r = target.run(p);
    if (!r) return fail(r.error());
    const auto got = from_bytes<float>(r->downloads[0]);
    for (uint32_t i = 0; i < n; ++i) {
      if (std::fabs(got[i] - std::fma(0.5f, x[i], y[i])) > 1e-6f) {
        return fail(Errc::job_failed, vkn::format("axpy mismatch at {}", i));
      }
    }
    return vkn::format("{} elements match", n);
  }

  Result<std::string> reduce() {
    const uint32_t n = 1 << 20;
    std::vector<float> v(n);
    std::uniform_real_distribution<float> d(0, 1);
    for (auto& f : v) f = d(rng);
    const double want = std::accumulate(v.begin(), v.end(), 0.0);
    const KernelId sum = builtin_kernel_id(BuiltinKernel::reduce_sum_f32);
    Program p;
    p.upload("selfcheck.x", 0, to_bytes(v))
        .dispatch(sum, {{0, "selfcheck.x"}, {1, "selfcheck.y", 0, 1024}}, push_of(ReducePush{n}), {256, 1, 1})
        .dispatch(sum, {{0, "selfcheck.y", 0, 1024}, {1, "selfcheck.x", 0, 256}}, push_of(ReducePush{256}), {1, 1, 1})
        .download("selfcheck.x", 0, 4);
    auto r = target.run(p);
    if (!r) return fail(r.error());
    const float got = from_bytes<float>(r->downloads[0])[0];
    if (std::fabs(got - want) > 1e-5 * want) {
      return fail(Errc::job_failed, vkn::format("sum {} differs from {}", got, want));
    }
    return vkn::format("sum of {} floats = {:.3f}", n, got);
  }

  Result<std::string> philox() {
    const PhiloxPush push{1 << 18, static_cast<uint32_t>(rng()), 1, 0, 0, 0};
    Program p;
    p.dispatch(builtin_kernel_id(BuiltinKernel::philox_f32), {{0, "selfcheck.x"}}, push_of(push),
               {push.count / 1024, 1, 1})
        .download("selfcheck.x", 0, push.count * 4);
    auto r = target.run(p);
    if (!r) return fail(r.error());
    if (from_bytes<float>(r->downloads[0]) != philox_reference(push)) {
      return fail(Errc::job_failed, "philox differs from the CPU reference");
    }
    return vkn::format("{} uniforms match the CPU bit for bit", push.count);
  }
};

void print_status(const NodeStatus& s) {
  std::printf("node '%s': %s on %s, up %lld ms, %llu jobs (%llu programs), %llu errors, %llu timeouts\n",
              s.name.c_str(), to_string(s.health), s.device_name.c_str(), static_cast<long long>(s.uptime.count()),
              static_cast<unsigned long long>(s.job_count), static_cast<unsigned long long>(s.exec_count),
              static_cast<unsigned long long>(s.errors), static_cast<unsigned long long>(s.timeouts));
  std::printf("  registry: %llu buffers, %llu bytes; kernels: %llu; pipeline cache: %s (%llu hits, %llu misses)\n",
              static_cast<unsigned long long>(s.buffer_count), static_cast<unsigned long long>(s.registry_bytes),
              static_cast<unsigned long long>(s.kernel_count), s.cache_path.empty() ? "in memory" : s.cache_path.c_str(),
              static_cast<unsigned long long>(s.cache_hits), static_cast<unsigned long long>(s.cache_misses));
}

}  // namespace

int run_checks(Target& target) {
  Checks c{target};
  int failures = 0;
  for (const char* name : {"selfcheck.x", "selfcheck.y"}) {
    if (auto r = target.create(name, {4u << 20, ElementType::f32, {1u << 20}}); !r) {
      std::fprintf(stderr, "selfcheck: %s\n", r.error().to_string().c_str());
      ++failures;
    }
  }
  const std::pair<const char*, std::function<Result<std::string>()>> checks[] = {
      {"axpy_f32", [&] { return c.axpy(); }},
      {"reduce_sum_f32", [&] { return c.reduce(); }},
      {"philox_f32", [&] { return c.philox(); }},
  };
  for (const auto& [name, check] : checks) {
    auto r = failures == 0 ? check() : Result<std::string>(fail(Errc::cancelled, "skipped"));
    std::printf("  %-16s %s  %s\n", name, r ? "ok  " : "FAIL", r ? r->c_str() : r.error().to_string().c_str());
    failures += r ? 0 : 1;
  }
  return failures;
}

int selfcheck_daemon(const std::string& socket) {
  ClientOptions options;
  options.socket_path = socket;
  options.name = "vknode selfcheck";
  options.default_timeout = std::chrono::seconds(120);
  auto client = Client::connect(options);
  if (!client) {
    std::fprintf(stderr, "selfcheck: no daemon: %s\n", client.error().to_string().c_str());
    return kExitNoDaemon;
  }
  std::printf("connected to the daemon\n");
  DaemonTarget target(**client);
  int failures = run_checks(target);
  for (const char* name : {"selfcheck.x", "selfcheck.y"}) (void)(*client)->delete_buffer(name);
  std::printf("selfcheck (daemon): %s\n", failures == 0 ? "all checks passed" : "FAILED");
  return failures == 0 ? kExitOk : kExitFailure;
}

int selfcheck_command(Args args) {
  bool daemon = false;
  std::string socket;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string_view a = args[i];
    if (a == "--help" || a == "-h") {
      std::puts("usage: vknode selfcheck [--daemon [--socket PATH]]\n\n"
                "Runs built-in kernels on random input against CPU references, as exec Programs:\n"
                "through an in-process node on the selected device ($VKNODE_DEVICE), or with\n"
                "--daemon through the running daemon (socket as for 'vknode ping').\n"
                "Exit 0 when all match, 1 otherwise, 2 bad usage, 3 no daemon running.");
      return kExitOk;
    } else if (a == "--daemon") {
      daemon = true;
    } else if (a == "--socket" && i + 1 < args.size()) {
      socket = args[++i];
    } else {
      std::fprintf(stderr, "vknode selfcheck: unknown or incomplete option '%s'\n", args[i]);
      return kExitUsage;
    }
  }
  if (daemon) return selfcheck_daemon(socket);
  NodeOptions options;
  options.name = "selfcheck";
  const auto t0 = std::chrono::steady_clock::now();
  if (auto r = start(options); !r) {
    std::fprintf(stderr, "selfcheck: cannot start a node: %s\n", r.error().to_string().c_str());
    return kExitFailure;
  }
  const double start_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  std::printf("node started in %.1f ms\n", start_ms);
  CallOptions call;
  call.node = options.name;
  call.timeout = std::chrono::seconds(120);
  NodeTarget target(call);
  int failures = run_checks(target);
  auto s = status(options.name);
  if (s) {
    print_status(*s);
    if (s->validation_errors > 0) ++failures;
  }
  (void)stop(options.name);
  std::printf("selfcheck: %s\n", failures == 0 ? "all checks passed" : "FAILED");
  return failures == 0 ? kExitOk : kExitFailure;
}

}  // namespace vkn::cli
