#include "vknode/gpu/builtin_kernels.h"

#include <array>
#include <cmath>

#include "vknode_builtin_shaders/axpy_f32_spv.h"
#include "vknode_builtin_shaders/copy_u32_spv.h"
#include "vknode_builtin_shaders/fill_u32_spv.h"
#include "vknode_builtin_shaders/philox_f32_spv.h"
#include "vknode_builtin_shaders/reduce_sum_f32_spv.h"
#include "vknode_builtin_shaders/spin_spv.h"

namespace vkn {
namespace {

constexpr std::array kAll = {BuiltinKernel::fill_u32,       BuiltinKernel::copy_u32,   BuiltinKernel::axpy_f32,
                             BuiltinKernel::reduce_sum_f32, BuiltinKernel::philox_f32, BuiltinKernel::spin};

std::array<uint32_t, 4> philox4x32(std::array<uint32_t, 4> c, uint32_t k0, uint32_t k1) {
  for (int r = 0; r < 10; ++r) {
    const uint64_t p0 = uint64_t{0xD2511F53u} * c[0];
    const uint64_t p1 = uint64_t{0xCD9E8D57u} * c[2];
    c = {static_cast<uint32_t>(p1 >> 32) ^ c[1] ^ k0, static_cast<uint32_t>(p1),
         static_cast<uint32_t>(p0 >> 32) ^ c[3] ^ k1, static_cast<uint32_t>(p0)};
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return c;
}

float to_unit(uint32_t x) { return static_cast<float>(x >> 8) * (1.0f / 16777216.0f); }

}  // namespace

std::span<const uint32_t> builtin_spirv(BuiltinKernel kernel) {
  switch (kernel) {
    case BuiltinKernel::fill_u32: return kFillU32Spv;
    case BuiltinKernel::copy_u32: return kCopyU32Spv;
    case BuiltinKernel::axpy_f32: return kAxpyF32Spv;
    case BuiltinKernel::reduce_sum_f32: return kReduceSumF32Spv;
    case BuiltinKernel::philox_f32: return kPhiloxF32Spv;
    case BuiltinKernel::spin: return kSpinSpv;
  }
  return {};
}

std::string_view to_string(BuiltinKernel kernel) {
  switch (kernel) {
    case BuiltinKernel::fill_u32: return "fill_u32";
    case BuiltinKernel::copy_u32: return "copy_u32";
    case BuiltinKernel::axpy_f32: return "axpy_f32";
    case BuiltinKernel::reduce_sum_f32: return "reduce_sum_f32";
    case BuiltinKernel::philox_f32: return "philox_f32";
    case BuiltinKernel::spin: return "spin";
  }
  return "unknown";
}

std::optional<BuiltinKernel> builtin_kernel_from_name(std::string_view name) {
  for (BuiltinKernel k : kAll) {
    if (to_string(k) == name) return k;
  }
  return std::nullopt;
}

std::span<const BuiltinKernel> all_builtin_kernels() { return kAll; }

std::vector<float> philox_reference(const PhiloxPush& push) {
  std::vector<float> out(push.count);
  constexpr double kTau = 6.28318530717958647692;
  for (uint32_t t = 0; 4ull * t < push.count; ++t) {
    const auto r = philox4x32({t + push.counter_lo, push.counter_hi, 0, 0}, push.key0, push.key1);
    std::array<float, 4> v;
    if (push.mode == 1) {
      const float r0 = std::sqrt(-2.0f * std::log(to_unit(r[0]) + 1.0f / 16777216.0f));
      const float r1 = std::sqrt(-2.0f * std::log(to_unit(r[2]) + 1.0f / 16777216.0f));
      const double a0 = kTau * (to_unit(r[1]) - 0.5f);
      const double a1 = kTau * (to_unit(r[3]) - 0.5f);
      v = {r0 * static_cast<float>(std::cos(a0)), r0 * static_cast<float>(std::sin(a0)),
           r1 * static_cast<float>(std::cos(a1)), r1 * static_cast<float>(std::sin(a1))};
    } else {
      v = {to_unit(r[0]), to_unit(r[1]), to_unit(r[2]), to_unit(r[3])};
    }
    for (uint32_t j = 0; j < 4 && 4ull * t + j < push.count; ++j) out[4 * t + j] = v[j];
  }
  return out;
}

}  // namespace vkn
