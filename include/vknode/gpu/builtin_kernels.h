// The built-in kernels: GLSL in shaders/, compiled by glslc at build time and
// embedded. Each one's push-constant struct is declared here for callers.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

namespace vkn {

enum class BuiltinKernel {
  fill_u32,        // binding 0: data (u32); push FillPush
  copy_u32,        // binding 0: src, 1: dst (u32); push CopyPush
  axpy_f32,        // binding 0: x, 1: y (f32); y = a*x + y; push AxpyPush
  reduce_sum_f32,  // binding 0: src, 1: partial sums (one per workgroup); push ReducePush
  philox_f32,      // binding 0: out (f32); push PhiloxPush
  spin,            // binding 0: out (u32); push SpinPush; running time grows with iterations
};

struct FillPush { uint32_t count; uint32_t value; };
struct CopyPush { uint32_t count; };
struct AxpyPush { uint32_t count; float a; };
struct ReducePush { uint32_t count; };
struct PhiloxPush {
  uint32_t count;
  uint32_t key0, key1;
  uint32_t counter_lo, counter_hi;
  uint32_t mode;  // 0: uniform [0, 1), 1: standard normal
};
struct SpinPush { uint32_t iterations; uint32_t count; };

inline constexpr uint32_t kBuiltinWorkgroupSize = 256;  // all but spin
inline constexpr uint32_t kSpinWorkgroupSize = 64;

std::span<const uint32_t> builtin_spirv(BuiltinKernel kernel);
std::string_view to_string(BuiltinKernel kernel);
std::optional<BuiltinKernel> builtin_kernel_from_name(std::string_view name);
std::span<const BuiltinKernel> all_builtin_kernels();

// CPU reference of philox_f32: the same values the kernel writes (normals to within
// float rounding of log/sin/cos).
std::vector<float> philox_reference(const PhiloxPush& push);

}  // namespace vkn
