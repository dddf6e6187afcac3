// Helpers shared by the fuzz targets and the seed generator (make_fuzz_seeds): the
// fixed device key the pipeline-cache target loads for, and a driver blob for it.
#pragma once

#include <cstdint>
#include <vector>

#include "gpu/pipeline_cache_file.h"

namespace vkn::fuzz {

inline PipelineCacheKey pipeline_cache_key() {
  PipelineCacheKey key;
  key.vendor_id = 0x10005;  // Mesa's vendor id, as lavapipe reports
  key.device_id = 0x0000abcd;
  key.driver_version = 0x05c00042;
  for (size_t i = 0; i < key.uuid.size(); ++i) key.uuid[i] = static_cast<uint8_t>(0xa0 + i);
  return key;
}

// VkPipelineCacheHeaderVersionOne for `key`, then `extra` bytes of "driver data".
inline std::vector<uint8_t> driver_blob(const PipelineCacheKey& key, size_t extra) {
  std::vector<uint8_t> blob(32 + extra);
  auto put32 = [&](size_t off, uint32_t v) {
    for (int i = 0; i < 4; ++i) blob[off + i] = static_cast<uint8_t>(v >> (8 * i));
  };
  put32(0, 32);
  put32(4, 1);  // VK_PIPELINE_CACHE_HEADER_VERSION_ONE
  put32(8, key.vendor_id);
  put32(12, key.device_id);
  for (size_t i = 0; i < key.uuid.size(); ++i) blob[16 + i] = key.uuid[i];
  for (size_t i = 0; i < extra; ++i) blob[32 + i] = static_cast<uint8_t>(i * 13 + 1);
  return blob;
}

}  // namespace vkn::fuzz
