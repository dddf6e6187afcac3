#include "protocol/codec.h"

#include <bit>
#include <cstring>

#include "util/strformat.h"

namespace vkn::protocol {
namespace {

template <typename T>
void put_le(std::vector<std::byte>& out, T v) {
  for (size_t i = 0; i < sizeof(T); ++i)
    out.push_back(static_cast<std::byte>((v >> (8 * i)) & 0xff));
}

template <typename T>
T get_le(const std::byte* p) {
  T v = 0;
  for (size_t i = 0; i < sizeof(T); ++i) v |= static_cast<T>(static_cast<uint8_t>(p[i])) << (8 * i);
  return v;
}

}  // namespace

void Writer::u16(uint16_t v) { put_le(out_, v); }
void Writer::u32(uint32_t v) { put_le(out_, v); }
void Writer::u64(uint64_t v) { put_le(out_, v); }
void Writer::f64(double v) { u64(std::bit_cast<uint64_t>(v)); }

void Writer::str(std::string_view s) { bytes(std::as_bytes(std::span(s.data(), s.size()))); }

void Writer::bytes(std::span<const std::byte> b) {
  u32(static_cast<uint32_t>(b.size()));
  raw(b);
}

void Writer::raw(std::span<const std::byte> b) { out_.insert(out_.end(), b.begin(), b.end()); }

void Writer::blob(std::span<const std::byte> b) {
  const bool to_attachment =
      plan_ != nullptr && !b.empty() &&
      (b.size() >= plan_->threshold || out_.size() + b.size() > plan_->inline_budget);
  if (!to_attachment) {
    u8(0);
    bytes(b);
    return;
  }
  u8(1);
  u64(plan_->total);
  u64(b.size());
  plan_->pieces.emplace_back(plan_->total, b);
  plan_->total += b.size();
}

void Writer::blob_ref(uint64_t offset, uint64_t size) {
  u8(1);
  u64(offset);
  u64(size);
}

bool Reader::need(size_t n) {
  if (!ok()) return false;
  if (remaining() < n) {
    fail(
        vkn::format("truncated: needed {} more bytes at offset {}, {} left", n, pos_, remaining()));
    return false;
  }
  return true;
}

void Reader::fail(std::string_view why) {
  if (error_.empty()) error_ = why.empty() ? "malformed" : std::string(why);
}

uint8_t Reader::u8() {
  if (!need(1)) return 0;
  return static_cast<uint8_t>(in_[pos_++]);
}

uint16_t Reader::u16() {
  if (!need(2)) return 0;
  auto v = get_le<uint16_t>(in_.data() + pos_);
  pos_ += 2;
  return v;
}

uint32_t Reader::u32() {
  if (!need(4)) return 0;
  auto v = get_le<uint32_t>(in_.data() + pos_);
  pos_ += 4;
  return v;
}

uint64_t Reader::u64() {
  if (!need(8)) return 0;
  auto v = get_le<uint64_t>(in_.data() + pos_);
  pos_ += 8;
  return v;
}

double Reader::f64() { return std::bit_cast<double>(u64()); }

bool Reader::boolean() {
  const uint8_t v = u8();
  if (v > 1) fail(vkn::format("boolean field holds {}", v));
  return v == 1;
}

std::span<const std::byte> Reader::raw(size_t n) {
  if (!need(n)) return {};
  auto s = in_.subspan(pos_, n);
  pos_ += n;
  return s;
}

std::string Reader::str(size_t max) {
  const uint32_t n = u32();
  if (!ok()) return {};
  if (n > max) {
    fail(vkn::format("string of {} bytes exceeds the limit of {}", n, max));
    return {};
  }
  auto s = raw(n);
  return std::string(reinterpret_cast<const char*>(s.data()), s.size());
}

std::vector<std::byte> Reader::bytes(size_t max) {
  const uint32_t n = u32();
  if (!ok()) return {};
  if (n > max) {
    fail(vkn::format("byte string of {} bytes exceeds the limit of {}", n, max));
    return {};
  }
  auto s = raw(n);
  return std::vector<std::byte>(s.begin(), s.end());
}

std::span<const std::byte> Reader::blob(uint64_t max) {
  const uint8_t tag = u8();
  if (!ok()) return {};
  if (tag == 0) {
    const uint32_t n = u32();
    if (!ok()) return {};
    if (n > max) {
      fail(vkn::format("blob of {} bytes exceeds the limit of {}", n, max));
      return {};
    }
    return raw(n);
  }
  if (tag != 1) {
    fail(vkn::format("blob tag {} is neither 0 (inline) nor 1 (attachment)", tag));
    return {};
  }
  const uint64_t offset = u64();
  const uint64_t n = u64();
  if (!ok()) return {};
  if (n > max) {
    fail(vkn::format("blob of {} bytes exceeds the limit of {}", n, max));
    return {};
  }
  if (offset > attachment_.size() || n > attachment_.size() - offset) {
    fail(vkn::format("blob [{}, +{}) lies outside the {}-byte attachment", offset, n,
                     attachment_.size()));
    return {};
  }
  return attachment_.subspan(offset, n);
}

uint32_t Reader::count(uint32_t max, size_t min_element_bytes) {
  const uint32_t n = u32();
  if (!ok()) return 0;
  if (n > max) {
    fail(vkn::format("count {} exceeds the limit of {}", n, max));
    return 0;
  }
  if (min_element_bytes > 0 && n > remaining() / min_element_bytes) {
    fail(vkn::format("count {} cannot fit in the {} bytes left", n, remaining()));
    return 0;
  }
  return n;
}

Result<void> Reader::finish(std::string_view what) const {
  if (!ok()) return vkn::fail(Errc::protocol_error, vkn::format("malformed {}", what), error_);
  if (remaining() != 0) {
    return vkn::fail(Errc::protocol_error, vkn::format("malformed {}", what),
                     vkn::format("{} trailing bytes", remaining()));
  }
  return {};
}

}  // namespace vkn::protocol
