#include "gpu/kernel_layout_codec.h"

#include <cstring>
#include <string>

#include "util/sha256.h"

namespace vkn {
namespace {

constexpr uint8_t kMagic[8] = {'V', 'K', 'N', 'L', 'A', 'Y', 'T', 'S'};
constexpr uint32_t kVersion = 1;
constexpr uint32_t kMaxBindings = 64;
constexpr uint32_t kMaxSpecConstants = 256;
constexpr uint32_t kMaxString = 256;
constexpr uint32_t kMaxEntries = 1u << 16;

void put32(std::vector<uint8_t>& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}
void put_string(std::vector<uint8_t>& out, const std::string& s) {
  put32(out, static_cast<uint32_t>(s.size()));
  out.insert(out.end(), s.begin(), s.end());
}

class Reader {
 public:
  explicit Reader(std::span<const uint8_t> bytes) : bytes_(bytes) {}
  bool u32(uint32_t* v) {
    if (bytes_.size() - pos_ < 4) return false;
    *v = 0;
    for (int i = 0; i < 4; ++i) *v |= uint32_t{bytes_[pos_ + i]} << (8 * i);
    pos_ += 4;
    return true;
  }
  bool string(std::string* s) {
    uint32_t n = 0;
    if (!u32(&n) || n > kMaxString || bytes_.size() - pos_ < n) return false;
    s->assign(reinterpret_cast<const char*>(bytes_.data() + pos_), n);
    pos_ += n;
    return true;
  }
  bool raw(uint8_t* out, size_t n) {
    if (bytes_.size() - pos_ < n) return false;
    std::memcpy(out, bytes_.data() + pos_, n);
    pos_ += n;
    return true;
  }
  size_t pos() const { return pos_; }

 private:
  std::span<const uint8_t> bytes_;
  size_t pos_ = 0;
};

Error bad(const char* what) { return Error::invalid_argument("kernel layout data", what); }

}  // namespace

void encode_kernel_layout(const KernelLayout& layout, std::vector<uint8_t>& out) {
  put_string(out, layout.entry_point);
  put32(out, static_cast<uint32_t>(layout.bindings.size()));
  for (const BindingInfo& b : layout.bindings) {
    put32(out, b.binding);
    put32(out, b.read_only ? 1 : 0);
    put_string(out, b.name);
  }
  put32(out, layout.push_constant_bytes);
  for (uint32_t v : layout.local_size) put32(out, v);
  put32(out, static_cast<uint32_t>(layout.spec_constants.size()));
  for (const SpecConstantInfo& c : layout.spec_constants) {
    put32(out, c.id);
    put32(out, c.default_value);
  }
}

Result<KernelLayout> decode_kernel_layout(std::span<const uint8_t> bytes, size_t* consumed) {
  Reader r(bytes);
  KernelLayout l;
  uint32_t n = 0;
  if (!r.string(&l.entry_point) || !r.u32(&n) || n > kMaxBindings) return fail(bad("entry point or bindings"));
  l.bindings.resize(n);
  for (BindingInfo& b : l.bindings) {
    uint32_t ro = 0;
    if (!r.u32(&b.binding) || !r.u32(&ro) || ro > 1 || !r.string(&b.name)) return fail(bad("binding"));
    b.read_only = ro == 1;
  }
  if (!r.u32(&l.push_constant_bytes)) return fail(bad("push constants"));
  for (uint32_t& v : l.local_size) {
    if (!r.u32(&v) || v == 0) return fail(bad("local size"));
  }
  if (!r.u32(&n) || n > kMaxSpecConstants) return fail(bad("spec constants"));
  l.spec_constants.resize(n);
  for (SpecConstantInfo& c : l.spec_constants) {
    if (!r.u32(&c.id) || !r.u32(&c.default_value)) return fail(bad("spec constant"));
  }
  if (consumed != nullptr) *consumed = r.pos();
  return l;
}

std::vector<uint8_t> encode_layout_file(const std::map<KernelId, KernelLayout>& layouts) {
  std::vector<uint8_t> out(kMagic, kMagic + 8);
  put32(out, kVersion);
  put32(out, static_cast<uint32_t>(layouts.size()));
  for (const auto& [id, layout] : layouts) {
    out.insert(out.end(), id.begin(), id.end());
    encode_kernel_layout(layout, out);
  }
  const auto digest = sha256(out);
  out.insert(out.end(), digest.begin(), digest.end());
  return out;
}

Result<std::map<KernelId, KernelLayout>> decode_layout_file(std::span<const uint8_t> bytes) {
  if (bytes.size() < 16 + kSha256Size || std::memcmp(bytes.data(), kMagic, 8) != 0) {
    return fail(bad("not a layout file (bad magic or truncated)"));
  }
  const auto body = bytes.first(bytes.size() - kSha256Size);
  const auto digest = sha256(body);
  if (std::memcmp(digest.data(), bytes.data() + body.size(), kSha256Size) != 0) return fail(bad("checksum mismatch"));
  Reader r(body.subspan(8));
  uint32_t version = 0, count = 0;
  if (!r.u32(&version) || version != kVersion) return fail(bad("unknown version"));
  if (!r.u32(&count) || count > kMaxEntries) return fail(bad("entry count"));
  std::map<KernelId, KernelLayout> out;
  size_t pos = 16;
  for (uint32_t i = 0; i < count; ++i) {
    KernelId id{};
    if (body.size() - pos < id.size()) return fail(bad("truncated entry"));
    std::memcpy(id.data(), body.data() + pos, id.size());
    pos += id.size();
    size_t used = 0;
    auto layout = decode_kernel_layout(body.subspan(pos), &used);
    if (!layout) return fail(layout.error());
    pos += used;
    out.emplace(id, std::move(*layout));
  }
  if (pos != body.size()) return fail(bad("trailing bytes"));
  return out;
}

}  // namespace vkn
