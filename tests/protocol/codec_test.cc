#include "protocol/codec.h"

#include <gtest/gtest.h>

#include <cstring>

#include "protocol/wire.h"

namespace vkn::protocol {
namespace {

std::vector<std::byte> bytes_of(std::string_view s) {
  auto b = std::as_bytes(std::span(s.data(), s.size()));
  return {b.begin(), b.end()};
}

TEST(CodecTest, FieldsRoundTripLittleEndian) {
  Writer w;
  w.u8(0xab);
  w.u16(0x1234);
  w.u32(0xdeadbeef);
  w.u64(0x0102030405060708ull);
  w.f64(2.5);
  w.boolean(true);
  w.str("hello");
  const auto out = w.take();
  EXPECT_EQ(static_cast<uint8_t>(out[1]), 0x34);  // little-endian
  Reader r(out);
  EXPECT_EQ(r.u8(), 0xab);
  EXPECT_EQ(r.u16(), 0x1234);
  EXPECT_EQ(r.u32(), 0xdeadbeefu);
  EXPECT_EQ(r.u64(), 0x0102030405060708ull);
  EXPECT_EQ(r.f64(), 2.5);
  EXPECT_TRUE(r.boolean());
  EXPECT_EQ(r.str(16), "hello");
  EXPECT_TRUE(r.finish("test").has_value());
}

TEST(CodecTest, TruncationFailsAndSticks) {
  Writer w;
  w.u32(7);
  auto out = w.take();
  Reader r(std::span<const std::byte>(out).first(3));
  EXPECT_EQ(r.u32(), 0u);
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.u8(), 0);  // sticky
  auto done = r.finish("x");
  ASSERT_FALSE(done);
  EXPECT_EQ(done.error().code, Errc::protocol_error);
}

TEST(CodecTest, StringLongerThanLimitFails) {
  Writer w;
  w.str("abcdef");
  auto out = w.take();
  Reader r(out);
  r.str(5);
  EXPECT_FALSE(r.ok());
}

TEST(CodecTest, HugeLengthFieldDoesNotAllocate) {
  Writer w;
  w.u32(0xffffffffu);  // claims 4 GiB
  auto out = w.take();
  Reader r(out);
  EXPECT_TRUE(r.bytes(SIZE_MAX).empty());
  EXPECT_FALSE(r.ok());
}

TEST(CodecTest, CountMustFitRemainingBytes) {
  Writer w;
  w.u32(1000);
  w.u64(0);
  auto out = w.take();
  Reader r(out);
  EXPECT_EQ(r.count(100000, 8), 0u);
  EXPECT_FALSE(r.ok());
}

TEST(CodecTest, TrailingBytesFailFinish) {
  Writer w;
  w.u8(1);
  w.u8(2);
  auto out = w.take();
  Reader r(out);
  r.u8();
  EXPECT_FALSE(r.finish("x"));
}

TEST(CodecTest, BooleanRejectsOtherValues) {
  std::vector<std::byte> in{std::byte{2}};
  Reader r(in);
  r.boolean();
  EXPECT_FALSE(r.ok());
}

TEST(CodecTest, BlobsGoInlineOrToAttachment) {
  const auto small = bytes_of("small");
  const std::vector<std::byte> large(100, std::byte{7});
  AttachmentPlan plan;
  plan.threshold = 50;
  Writer w(&plan);
  w.blob(small);
  w.blob(large);
  auto out = w.take();
  ASSERT_EQ(plan.pieces.size(), 1u);
  EXPECT_EQ(plan.total, 100u);
  std::vector<std::byte> attachment(plan.total);
  std::memcpy(attachment.data(), plan.pieces[0].second.data(), 100);
  Reader r(out, attachment);
  auto a = r.blob(1000);
  auto b = r.blob(1000);
  ASSERT_TRUE(r.finish("blobs"));
  EXPECT_TRUE(std::equal(a.begin(), a.end(), small.begin(), small.end()));
  EXPECT_TRUE(std::equal(b.begin(), b.end(), large.begin(), large.end()));
}

TEST(CodecTest, BlobOutsideAttachmentFails) {
  Writer w;
  w.u8(1);
  w.u64(10);
  w.u64(10);
  auto out = w.take();
  std::vector<std::byte> attachment(15);
  Reader r(out, attachment);
  r.blob(100);
  EXPECT_FALSE(r.ok());
}

TEST(CodecTest, BlobOffsetOverflowFails) {
  Writer w;
  w.u8(1);
  w.u64(UINT64_MAX - 2);
  w.u64(8);
  auto out = w.take();
  std::vector<std::byte> attachment(16);
  Reader r(out, attachment);
  r.blob(UINT64_MAX);
  EXPECT_FALSE(r.ok());
}

TEST(CodecTest, HeaderRoundTrip) {
  FrameHeader h;
  h.type = MessageType::exec;
  h.flags = kFlagReply;
  h.payload_size = 1234;
  h.request_id = 0x1122334455667788ull;
  h.timeout_ms = 250;
  auto bytes = encode_header(h);
  auto back = decode_header(bytes);
  ASSERT_TRUE(back) << back.error().to_string();
  EXPECT_EQ(back->type, MessageType::exec);
  EXPECT_TRUE(back->is_reply());
  EXPECT_EQ(back->payload_size, 1234u);
  EXPECT_EQ(back->request_id, h.request_id);
  EXPECT_EQ(back->timeout_ms, 250u);
}

TEST(CodecTest, HeaderRejectsEachBadField) {
  FrameHeader h;
  auto good = encode_header(h);
  auto corrupt = [&](size_t at, uint8_t value) {
    auto b = good;
    b[at] = std::byte{value};
    return decode_header(b);
  };
  EXPECT_FALSE(corrupt(0, 0x00));   // magic
  EXPECT_FALSE(corrupt(4, 0x09));   // version
  EXPECT_FALSE(corrupt(6, 0xee));   // type
  EXPECT_FALSE(corrupt(8, 0x80));   // flags
  EXPECT_FALSE(corrupt(15, 0x10));  // payload size beyond the limit
  EXPECT_FALSE(decode_header(std::span(good).first(31)));
  for (auto r : {corrupt(0, 0), corrupt(15, 0x10)}) EXPECT_EQ(r.error().code, Errc::protocol_error);
}

TEST(CodecTest, HeaderCarriesTheDeviceFromVersionTwo) {
  FrameHeader h;
  h.version = kDeviceVersion;
  h.type = MessageType::exec;
  h.device = 7;
  auto back = decode_header(encode_header(h));
  ASSERT_TRUE(back) << back.error().to_string();
  EXPECT_EQ(back->device, 7u);

  // In version 1 the word is reserved: a non-zero value is a bad header.
  h.version = 1;
  auto v1 = decode_header(encode_header(h));
  ASSERT_FALSE(v1);
  EXPECT_EQ(v1.error().code, Errc::protocol_error);
  h.device = 0;
  EXPECT_TRUE(decode_header(encode_header(h)));

  // Replies never name a device.
  h.version = kDeviceVersion;
  h.flags = kFlagReply;
  h.device = 1;
  EXPECT_FALSE(decode_header(encode_header(h)));
}

}  // namespace
}  // namespace vkn::protocol
