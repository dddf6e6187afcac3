// What a compute kernel expects from its caller, as reflected from its SPIR-V:
// the storage buffers it binds, its push-constant block, its workgroup size and
// its specialization constants. Plain values; thread-compatible.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace vkn {

// One storage buffer of descriptor set 0.
struct BindingInfo {
  uint32_t binding = 0;
  bool read_only = false;  // declared `readonly` in the shader
  std::string name;        // the block's instance or type name, for messages
};

// A value given to a specialization constant at pipeline creation.
struct SpecConstant {
  uint32_t id = 0;
  uint32_t value = 0;  // 32-bit payload (int, uint, float bits, or bool 0/1)
};

struct SpecConstantInfo {
  uint32_t id = 0;
  uint32_t default_value = 0;  // 32-bit payload of the shader's default
};

struct KernelLayout {
  std::string entry_point;             // the single GLCompute entry point
  std::vector<BindingInfo> bindings;   // sorted by binding number, all in set 0
  uint32_t push_constant_bytes = 0;    // 0 when the kernel has no push constants
  std::array<uint32_t, 3> local_size{1, 1, 1};  // after spec constants are applied
  std::vector<SpecConstantInfo> spec_constants;  // sorted by id
};

}  // namespace vkn
