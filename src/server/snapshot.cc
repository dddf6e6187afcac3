#include "server/snapshot.h"

#include <cstring>

#include "protocol/codec.h"
#include "util/sha256.h"
#include "util/strformat.h"

namespace vkn::server {
namespace {

constexpr char kMagic[8] = {'V', 'K', 'N', 'S', 'N', 'A', 'P', '1'};
constexpr uint32_t kMaxEntries = 1u << 20;
constexpr size_t kMaxNameBytes = 256;

std::span<const uint8_t> as_u8(std::span<const std::byte> b) {
  return {reinterpret_cast<const uint8_t*>(b.data()), b.size()};
}

}  // namespace

std::vector<std::byte> encode_snapshot(const std::vector<DurableImage>& images) {
  protocol::Writer body;
  for (const auto& img : images) {
    body.str(img.name);
    body.u64(img.spec.bytes);
    body.u8(static_cast<uint8_t>(img.spec.element));
    body.u32(static_cast<uint32_t>(img.spec.shape.size()));
    for (uint64_t d : img.spec.shape) body.u64(d);
    body.u64(img.data.size());
    body.raw(img.data);
  }
  const auto payload = body.take();
  const Sha256Digest digest = sha256(as_u8(payload));
  protocol::Writer w;
  w.raw(std::as_bytes(std::span(kMagic)));
  w.u32(kSnapshotVersion);
  w.u32(kSnapshotHeaderSize);
  w.u64(images.size());
  w.u64(payload.size());
  w.raw(std::as_bytes(std::span(digest)));
  auto out = w.take();
  out.insert(out.end(), payload.begin(), payload.end());
  return out;
}

Result<std::vector<DurableImage>> decode_snapshot(std::span<const std::byte> file) {
  if (file.size() < kSnapshotHeaderSize) {
    return fail(Errc::invalid_argument, "snapshot shorter than its header",
                vkn::format("{} bytes", file.size()));
  }
  protocol::Reader h(file.first(kSnapshotHeaderSize));
  auto magic = h.raw(8);
  const uint32_t version = h.u32();
  const uint32_t header_size = h.u32();
  const uint64_t count = h.u64();
  const uint64_t payload_size = h.u64();
  auto checksum = h.raw(32);
  if (std::memcmp(magic.data(), kMagic, 8) != 0)
    return fail(Errc::invalid_argument, "not a vknode buffer snapshot");
  if (version != kSnapshotVersion) {
    return fail(Errc::invalid_argument, "unsupported snapshot version", vkn::format("{}", version));
  }
  if (header_size < kSnapshotHeaderSize || header_size > file.size()) {
    return fail(Errc::invalid_argument, "bad snapshot header size", vkn::format("{}", header_size));
  }
  if (payload_size != file.size() - header_size) {
    return fail(
        Errc::invalid_argument, "snapshot size does not match its header",
        vkn::format("payload {} bytes, file holds {}", payload_size, file.size() - header_size));
  }
  const auto payload = file.subspan(header_size);
  const Sha256Digest digest = sha256(as_u8(payload));
  if (std::memcmp(digest.data(), checksum.data(), digest.size()) != 0) {
    return fail(Errc::invalid_argument, "snapshot checksum mismatch");
  }
  if (count > kMaxEntries)
    return fail(Errc::invalid_argument, "too many snapshot entries", vkn::format("{}", count));
  protocol::Reader r(payload);
  std::vector<DurableImage> out;
  for (uint64_t i = 0; i < count && r.ok(); ++i) {
    DurableImage img;
    img.name = r.str(kMaxNameBytes);
    img.spec.bytes = r.u64();
    const uint8_t element = r.u8();
    if (element > static_cast<uint8_t>(ElementType::f64)) r.fail("unknown element type");
    img.spec.element = static_cast<ElementType>(element);
    const uint32_t rank = r.count(8, 8);
    for (uint32_t d = 0; d < rank && r.ok(); ++d) img.spec.shape.push_back(r.u64());
    img.spec.durable = true;
    const uint64_t n = r.u64();
    if (r.ok() && (n != img.spec.bytes || n > r.remaining()))
      r.fail("entry data size does not match its buffer");
    if (!r.ok()) break;
    auto data = r.raw(n);
    img.data.assign(data.begin(), data.end());
    out.push_back(std::move(img));
  }
  if (auto done = r.finish("snapshot"); !done) {
    return fail(Errc::invalid_argument, "damaged snapshot entries", done.error().message);
  }
  return out;
}

Result<void> write_snapshot(FileOps& ops, const std::filesystem::path& path,
                            const std::vector<DurableImage>& images) {
  if (auto r = ops.create_directories(path.parent_path()); !r) return r;
  const auto bytes = encode_snapshot(images);
  return write_file_atomically(ops, path, as_u8(bytes));
}

Result<std::vector<DurableImage>> read_snapshot(FileOps& ops, const std::filesystem::path& path) {
  auto bytes = ops.read_file(path, kMaxSnapshotBytes);
  if (!bytes) return fail(bytes.error());
  return decode_snapshot(std::as_bytes(std::span(*bytes)));
}

}  // namespace vkn::server
