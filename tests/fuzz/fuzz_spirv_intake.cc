// Fuzz target: SPIR-V intake (SPIRV-Tools validation, then SPIRV-Cross reflection)
// of a module any local user may register with the daemon. Input: the module's
// bytes (a whole number of words is used); the last 8 bytes, when present, also
// become one specialization constant so the spec-constant paths are reached.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "gpu/spirv_intake.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<uint32_t> words(size / 4);
  if (!words.empty()) std::memcpy(words.data(), data, words.size() * 4);
  auto layout = vkn::inspect_spirv(words);
  if (layout) {
    // Contract: bindings sorted and unique, a non-zero local size.
    for (size_t i = 1; i < layout->bindings.size(); ++i) {
      if (layout->bindings[i - 1].binding >= layout->bindings[i].binding) std::abort();
    }
    for (uint32_t s : layout->local_size) {
      if (s == 0) std::abort();
    }
    // Specialize the first declared constant with a value from the input.
    if (!layout->spec_constants.empty() && size >= 4) {
      uint32_t value;
      std::memcpy(&value, data + size - 4, 4);
      vkn::SpecConstant spec{layout->spec_constants[0].id, value};
      auto again = vkn::inspect_spirv(words, std::span(&spec, 1));
      if (again) {
        for (uint32_t s : again->local_size) {
          if (s == 0) std::abort();
        }
      }
    }
  }
  return 0;
}
