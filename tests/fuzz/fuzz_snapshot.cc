// Fuzz target: the durable-buffer snapshot loader a restarted daemon reads from its
// state directory. A damaged file must be an error, never a crash or a huge
// allocation; what a file holds must survive encode and decode unchanged (the bytes
// themselves may differ: a reader skips header bytes a later version may add).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include "server/snapshot.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto in = std::as_bytes(std::span(data, size));
  auto images = vkn::server::decode_snapshot(in);
  if (images) {
    const auto encoded = vkn::server::encode_snapshot(*images);
    auto again = vkn::server::decode_snapshot(encoded);
    if (!again || again->size() != images->size()) std::abort();
    for (size_t i = 0; i < images->size(); ++i) {
      const auto& a = (*images)[i];
      const auto& b = (*again)[i];
      if (a.data.size() != a.spec.bytes || a.name != b.name || a.data != b.data || a.spec.shape != b.spec.shape ||
          a.spec.element != b.spec.element) {
        std::abort();
      }
    }
    if (vkn::server::encode_snapshot(*again) != encoded) std::abort();
  }
  return 0;
}
