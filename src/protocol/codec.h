// Writer and Reader: the little-endian field encoding that every message payload
// uses (see docs/protocol.md, "Field encoding"). The Reader never trusts the bytes it
// is given: every read checks the remaining length, counts are checked against what
// the rest of the payload could possibly hold before anything is reserved, and the
// first failure sticks (later reads return zero values), so a decoder can read all
// its fields and check ok() once. Blobs may live in the frame's memfd attachment.
// Both are thread-compatible.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "vknode/error.h"

namespace vkn::protocol {

// Where a writer puts blobs at least `threshold` bytes large (or that would push
// the inline payload past `inline_budget`): appended to an attachment that the
// sender turns into one memfd. Holds spans, not copies: the data must outlive send.
struct AttachmentPlan {
  uint64_t threshold = UINT64_MAX;  // UINT64_MAX: everything inline
  uint64_t inline_budget = 48u << 20;
  uint64_t total = 0;  // bytes in the attachment so far
  std::vector<std::pair<uint64_t, std::span<const std::byte>>> pieces;  // offset, data
};

class Writer {
 public:
  explicit Writer(AttachmentPlan* plan = nullptr) : plan_(plan) {}

  void u8(uint8_t v) { out_.push_back(static_cast<std::byte>(v)); }
  void u16(uint16_t v);
  void u32(uint32_t v);
  void u64(uint64_t v);
  void f64(double v);
  void boolean(bool v) { u8(v ? 1 : 0); }
  // u32 length, then the bytes.
  void str(std::string_view s);
  void bytes(std::span<const std::byte> b);
  void raw(std::span<const std::byte> b);
  // A blob: tag 0 + u32 length + bytes inline, or tag 1 + u64 offset + u64 length
  // in the attachment (see AttachmentPlan).
  void blob(std::span<const std::byte> b);
  // A blob already placed in the frame's attachment by the caller.
  void blob_ref(uint64_t offset, uint64_t size);

  std::vector<std::byte>& out() { return out_; }
  std::vector<std::byte> take() { return std::move(out_); }

 private:
  std::vector<std::byte> out_;
  AttachmentPlan* plan_;
};

class Reader {
 public:
  // `attachment`: the mapped memfd that came with the frame (empty when none).
  explicit Reader(std::span<const std::byte> in, std::span<const std::byte> attachment = {})
      : in_(in), attachment_(attachment) {}

  uint8_t u8();
  uint16_t u16();
  uint32_t u32();
  uint64_t u64();
  double f64();
  bool boolean();
  // Strings and byte strings longer than `max` fail.
  std::string str(size_t max);
  std::vector<std::byte> bytes(size_t max);
  std::span<const std::byte> raw(size_t n);
  // A view into the payload or the attachment; blobs longer than `max` fail.
  std::span<const std::byte> blob(uint64_t max);
  // A count of elements each at least `min_element_bytes` long on the wire: fails when
  // it exceeds `max` or what the remaining bytes could hold.
  uint32_t count(uint32_t max, size_t min_element_bytes);

  // Marks the message malformed (first reason wins).
  void fail(std::string_view why);
  bool ok() const { return error_.empty(); }
  size_t remaining() const { return in_.size() - pos_; }
  // ok() and every byte consumed; else protocol_error with the first reason.
  [[nodiscard]] Result<void> finish(std::string_view what) const;

 private:
  bool need(size_t n);

  std::span<const std::byte> in_;
  std::span<const std::byte> attachment_;
  size_t pos_ = 0;
  std::string error_;
};

}  // namespace vkn::protocol
