#include "protocol/frame_io.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include <cstring>
#include <thread>

#include "protocol/messages.h"
#include "socket_pair.h"

namespace vkn::protocol {
namespace {

using testing::SocketPair;

TEST(FrameIoTest, InlineFrameRoundTrip) {
  SocketPair s;
  Writer w;
  encode(w, NameRequest{"buffer"});
  FrameHeader h;
  h.type = MessageType::delete_buffer;
  h.request_id = 77;
  auto frame = make_frame(h, w.take());
  ASSERT_TRUE(frame);
  ASSERT_TRUE(send_frame(s.a.get(), *frame));
  auto in = recv_frame(s.b.get(), kMaxAttachment);
  ASSERT_TRUE(in) << in.error().to_string();
  EXPECT_EQ(in->header.request_id, 77u);
  EXPECT_FALSE(in->attachment.has_value());
  Reader r(in->payload);
  auto m = decode_name_request(r);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->name, "buffer");
}

TEST(FrameIoTest, LargeBlobTravelsInSealedMemfd) {
  SocketPair s;
  std::vector<std::byte> data(3u << 20);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<std::byte>(i * 7);
  AttachmentPlan plan;
  plan.threshold = kDefaultShmThreshold;
  Writer w(&plan);
  encode(w, WriteBufferRequest{"big", 0, data});
  FrameHeader h;
  h.type = MessageType::write_buffer;
  auto frame = make_frame(h, w.take(), &plan);
  ASSERT_TRUE(frame) << frame.error().to_string();
  EXPECT_LT(frame->payload.size(), 100u);
  std::thread sender([&] { ASSERT_TRUE(send_frame(s.a.get(), *frame)); });
  auto in = recv_frame(s.b.get(), kMaxAttachment);
  sender.join();
  ASSERT_TRUE(in) << in.error().to_string();
  ASSERT_TRUE(in->attachment.has_value());
  Reader r(in->payload, in->attachment_bytes());
  auto m = decode_write_buffer_request(r);
  ASSERT_TRUE(m) << m.error().to_string();
  ASSERT_EQ(m->data.size(), data.size());
  EXPECT_EQ(std::memcmp(m->data.data(), data.data(), data.size()), 0);
  // The receiver cannot be made to fault: the memfd cannot shrink.
  EXPECT_NE(::ftruncate(in->attachment->fd(), 0), 0);
}

TEST(FrameIoTest, UnsealedMemfdIsRejected) {
  auto fd = UniqueFd(::memfd_create("x", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  ASSERT_EQ(::ftruncate(fd.get(), 4096), 0);
  auto m = SharedMemory::adopt(std::move(fd), kMaxAttachment);
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().code, Errc::protocol_error);
}

TEST(FrameIoTest, NonMemfdIsRejected) {
  SocketPair s;
  auto m = SharedMemory::adopt(std::move(s.a), kMaxAttachment);
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().code, Errc::protocol_error);
}

TEST(FrameIoTest, OversizedMemfdIsRejected) {
  auto mem = SharedMemory::create(8192);
  ASSERT_TRUE(mem);
  ASSERT_TRUE(mem->seal());
  auto m = SharedMemory::adopt(UniqueFd(::dup(mem->fd())), 4096);
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().code, Errc::protocol_error);
}

TEST(FrameIoTest, FlagWithoutDescriptorIsProtocolError) {
  SocketPair s;
  FrameHeader h;
  h.flags = kFlagAttachment;
  auto bytes = encode_header(h);
  ASSERT_EQ(::send(s.a.get(), bytes.data(), bytes.size(), 0), static_cast<ssize_t>(bytes.size()));
  auto in = recv_frame(s.b.get(), kMaxAttachment);
  ASSERT_FALSE(in);
  EXPECT_EQ(in.error().code, Errc::protocol_error);
}

TEST(FrameIoTest, EofIsNodeDead) {
  SocketPair s;
  s.a.reset();
  auto in = recv_frame(s.b.get(), kMaxAttachment);
  ASSERT_FALSE(in);
  EXPECT_EQ(in.error().code, Errc::node_dead);
}

TEST(FrameIoTest, OversizedPayloadIsRefusedBeforeSending) {
  FrameHeader h;
  auto frame = make_frame(h, std::vector<std::byte>(kMaxPayload + 1));
  ASSERT_FALSE(frame);
  EXPECT_EQ(frame.error().code, Errc::invalid_argument);
}

}  // namespace
}  // namespace vkn::protocol
