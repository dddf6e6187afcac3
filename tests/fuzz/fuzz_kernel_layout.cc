// Fuzz target: the kernel layout side file beside the pipeline cache (read by every
// new process so it can skip SPIR-V intake), and the single-layout decoder. A
// decoded file must encode to bytes that decode to the same layouts.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include "gpu/kernel_layout_codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> in(data, size);
  size_t consumed = 0;
  auto one = vkn::decode_kernel_layout(in, &consumed);
  if (one) {
    if (consumed > size) std::abort();
    std::vector<uint8_t> a;
    vkn::encode_kernel_layout(*one, a);
    size_t used = 0;
    auto again = vkn::decode_kernel_layout(a, &used);
    if (!again || used != a.size()) std::abort();
    std::vector<uint8_t> b;
    vkn::encode_kernel_layout(*again, b);
    if (a != b) std::abort();
  }
  auto file = vkn::decode_layout_file(in);
  if (file) {
    const auto encoded = vkn::encode_layout_file(*file);
    auto again = vkn::decode_layout_file(encoded);
    if (!again || again->size() != file->size()) std::abort();
    if (vkn::encode_layout_file(*again) != encoded) std::abort();
  }
  return 0;
}
