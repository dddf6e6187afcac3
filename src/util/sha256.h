// SHA-256 (FIPS 180-4) for integrity checks on files vknode writes, such as the pipeline
// cache file's payload checksum. Not meant for secrets: it makes no attempt at constant time
// or wiping state. Sha256 is a plain value type (thread-compatible); the free functions are
// thread-safe.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace vkn {

inline constexpr size_t kSha256Size = 32;
using Sha256Digest = std::array<uint8_t, kSha256Size>;

// Which compression function a hasher uses: the best this CPU has (the x86 SHA
// extensions where present, about 10x faster), or the portable one (tests compare them).
enum class Sha256Impl { best, portable };

// Whether Sha256Impl::best uses the CPU's SHA instructions here.
bool sha256_accelerated();

// Incremental hasher: update() any number of times, then finish().
class Sha256 {
 public:
  explicit Sha256(Sha256Impl impl = Sha256Impl::best);

  // Appends `data` to the message.
  void update(std::span<const uint8_t> data);

  // The digest of everything passed to update() since construction or the last finish();
  // the hasher is then reset to hash a new, empty message.
  Sha256Digest finish();

 private:
  void reset();
  // Compresses `blocks` 64-byte blocks from `data` into state_.
  void compress(const uint8_t* data, size_t blocks);

  bool accelerated_;

  std::array<uint32_t, 8> state_;
  std::array<uint8_t, 64> buffer_;
  size_t buffered_;       // bytes in buffer_, always < 64
  uint64_t total_bytes_;  // message length so far
};

// The digest of `data`.
Sha256Digest sha256(std::span<const uint8_t> data);

// Lowercase hex, two characters per byte ("" for no bytes).
std::string to_hex(std::span<const uint8_t> bytes);

}  // namespace vkn
