// Fuzz target: the pipeline cache file loader. A cache directory may be shared or
// left behind by another driver, device or version, so its files are untrusted. The
// input is served as the file's content through a FileOps fake (no disk I/O); the
// loader must return the driver blob only for an intact file written for the key,
// and an error for anything else.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "fuzz_seeds.h"
#include "gpu/pipeline_cache_file.h"
#include "util/file_ops.h"

namespace {

class InputFileOps : public vkn::PosixFileOps {
 public:
  InputFileOps(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  vkn::Result<std::vector<uint8_t>> read_file(const std::filesystem::path&, size_t max_bytes) override {
    if (size_ > max_bytes) return vkn::fail(vkn::Errc::invalid_argument, "file too large");
    return std::vector<uint8_t>(data_, data_ + size_);
  }

 private:
  const uint8_t* data_;
  size_t size_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  InputFileOps ops(data, size);
  const vkn::PipelineCacheKey key = vkn::fuzz::pipeline_cache_key();
  auto blob = vkn::load_pipeline_cache_file(ops, "/fuzz/pipeline.vkpc", key);
  if (blob) {
    // What the loader hands the driver must pass the driver-header check for this key.
    if (!vkn::check_driver_blob(*blob, key)) std::abort();
    if (blob->size() > size) std::abort();
  }
  return 0;
}
