// `vknode selfcheck`: opens the device and runs each built-in kernel on fresh random
// input against a CPU reference. The README's main job runs it.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <numeric>
#include <random>
#include <vector>

#include "command.h"
#include "util/strformat.h"
#include "vknode/gpu/buffer.h"
#include "vknode/gpu/builtin_kernels.h"
#include "vknode/gpu/device.h"
#include "vknode/gpu/kernel_cache.h"
#include "vknode/gpu/stream.h"

namespace vkn::cli {
namespace {

constexpr std::chrono::seconds kWait{60};

struct Checker {
  Device& device;
  Stream& stream;
  KernelCache& kernels;
  std::mt19937 rng{std::random_device{}()};

  template <typename T>
  Result<Buffer> upload(const std::vector<T>& v) {
    auto b = Buffer::create(device, v.size() * sizeof(T));
    if (!b) return b;
    if (auto r = stream.upload(*b, 0, std::as_bytes(std::span(v)), kWait); !r) return fail(r.error());
    return b;
  }
  template <typename T>
  Result<std::vector<T>> download(const Buffer& b, size_t n) {
    std::vector<T> out(n);
    if (auto r = stream.download(b, 0, std::as_writable_bytes(std::span(out)), kWait); !r) return fail(r.error());
    return out;
  }
  template <typename P>
  Result<void> run(BuiltinKernel k, std::span<const BufferBinding> bindings, const P& push, uint32_t groups) {
    auto kernel = kernels.get_or_create(builtin_spirv(k), {}, to_string(k));
    if (!kernel) return fail(kernel.error());
    if (auto r = stream.record_dispatch(**kernel, bindings, std::as_bytes(std::span(&push, 1)), {groups, 1, 1}); !r)
      return r;
    return stream.submit_and_wait(kWait);
  }

  Result<std::string> axpy() {
    const uint32_t n = 1 << 20;
    std::uniform_real_distribution<float> d(-1, 1);
    std::vector<float> x(n), y(n);
    for (uint32_t i = 0; i < n; ++i) x[i] = d(rng), y[i] = d(rng);
    auto bx = upload(x);
    auto by = upload(y);
    if (!bx || !by) return fail(bx ? by.error() : bx.error());
    const BufferBinding b[] = {{0, &*bx}, {1, &*by}};
    if (auto r = run(BuiltinKernel::axpy_f32, b, AxpyPush{n, 0.5f}, n / 256); !r) return fail(r.error());
    auto got = download<float>(*by, n);
    if (!got) return fail(got.error());
    for (uint32_t i = 0; i < n; ++i) {
      if (std::fabs((*got)[i] - std::fma(0.5f, x[i], y[i])) > 1e-6f) {
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
    auto a = upload(v);
    auto partial = Buffer::create(device, 256 * sizeof(float));
    if (!a || !partial) return fail(a ? partial.error() : a.error());
    const BufferBinding b1[] = {{0, &*a}, {1, &*partial}};
    if (auto r = run(BuiltinKernel::reduce_sum_f32, b1, ReducePush{n}, 256); !r) return fail(r.error());
    const BufferBinding b2[] = {{0, &*partial}, {1, &*a}};
    if (auto r = run(BuiltinKernel::reduce_sum_f32, b2, ReducePush{256}, 1); !r) return fail(r.error());
    auto got = download<float>(*a, 1);
    if (!got) return fail(got.error());
    if (std::fabs((*got)[0] - want) > 1e-5 * want) {
      return fail(Errc::job_failed, vkn::format("sum {} differs from {}", (*got)[0], want));
    }
    return vkn::format("sum of {} floats = {:.3f}", n, (*got)[0]);
  }

  Result<std::string> philox() {
    const PhiloxPush push{1 << 18, static_cast<uint32_t>(rng()), 1, 0, 0, 0};
    auto out = Buffer::create(device, push.count * sizeof(float));
    if (!out) return fail(out.error());
    const BufferBinding b[] = {{0, &*out}};
    if (auto r = run(BuiltinKernel::philox_f32, b, push, push.count / 1024); !r) return fail(r.error());
    auto got = download<float>(*out, push.count);
    if (!got) return fail(got.error());
    if (*got != philox_reference(push)) return fail(Errc::job_failed, "philox differs from the CPU reference");
    return vkn::format("{} uniforms match the CPU bit for bit", push.count);
  }
};

}  // namespace

int selfcheck_command(Args args) {
  if (wants_help(args)) {
    std::puts("usage: vknode selfcheck\n\nOpens the selected device ($VKNODE_DEVICE) and runs built-in kernels on random\n"
              "input against CPU references. Exit 0 when all match, 1 otherwise.");
    return kExitOk;
  }
  const auto t0 = std::chrono::steady_clock::now();
  auto device = Device::create();
  if (!device) {
    std::fprintf(stderr, "selfcheck: %s\n", device.error().to_string().c_str());
    return kExitFailure;
  }
  const double init_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  std::printf("device: %s (%s), Vulkan %s, ready in %.1f ms\n", (*device)->info().name.c_str(),
              to_string((*device)->info().type), version_string((*device)->info().api_version).c_str(), init_ms);
  auto stream = Stream::create(**device);
  if (!stream) {
    std::fprintf(stderr, "selfcheck: %s\n", stream.error().to_string().c_str());
    return kExitFailure;
  }
  KernelCache kernels(**device, nullptr);
  Checker c{**device, **stream, kernels};
  const std::pair<const char*, std::function<Result<std::string>()>> checks[] = {
      {"axpy_f32", [&] { return c.axpy(); }},
      {"reduce_sum_f32", [&] { return c.reduce(); }},
      {"philox_f32", [&] { return c.philox(); }},
  };
  int failures = 0;
  for (const auto& [name, check] : checks) {
    auto r = check();
    std::printf("  %-16s %s  %s\n", name, r ? "ok  " : "FAIL", r ? r->c_str() : r.error().to_string().c_str());
    failures += r ? 0 : 1;
  }
  if ((*device)->validation_error_count() > 0) {
    std::printf("  validation errors: %llu\n", static_cast<unsigned long long>((*device)->validation_error_count()));
    ++failures;
  }
  std::printf("selfcheck: %s\n", failures == 0 ? "all checks passed" : "FAILED");
  return failures == 0 ? kExitOk : kExitFailure;
}

}  // namespace vkn::cli
