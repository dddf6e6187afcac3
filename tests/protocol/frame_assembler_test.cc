// FrameAssembler on a non-blocking socket pair: frames that arrive in pieces or back to back,
// a payload larger than its first buffer, the direction check, a bad header (its bytes kept
// for the error reply), a stray second descriptor, end of stream; and check_descriptors.
#include "protocol/frame_assembler.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <cstring>

#include "socket_pair.h"

namespace vkn::protocol {
namespace {

using Progress = FrameAssembler::Progress;
using Kind = FrameAssembler::Failure::Kind;

// The writing end, and the non-blocking reading end.
struct Sockets {
  testing::SocketPair pair{/*nonblocking_b=*/true};
  const UniqueFd& writer = pair.a;
  const UniqueFd& reader = pair.b;
  void send(std::span<const std::byte> bytes) const {
    size_t done = 0;
    while (done < bytes.size()) {
      const ssize_t n = ::send(writer.get(), bytes.data() + done, bytes.size() - done, 0);
      ASSERT_GT(n, 0);
      done += static_cast<size_t>(n);
    }
  }
};

// Header and payload of a request (or reply) frame with `payload_size` bytes i * 3.
std::vector<std::byte> frame_bytes(uint64_t request_id, size_t payload_size, bool reply = false) {
  FrameHeader h;
  h.type = MessageType::delete_buffer;
  h.request_id = request_id;
  h.payload_size = static_cast<uint32_t>(payload_size);
  h.flags = reply ? kFlagReply : 0;
  const HeaderBytes header = encode_header(h);
  std::vector<std::byte> bytes(header.begin(), header.end());
  for (size_t i = 0; i < payload_size; ++i) bytes.push_back(static_cast<std::byte>(i * 3));
  return bytes;
}

TEST(FrameAssemblerTest, FramesInPiecesAndBackToBack) {
  Sockets s;
  FrameAssembler in(/*replies=*/false);
  FrameAssembler::Frame f;
  const auto first = frame_bytes(7, 100);
  s.send(std::span(first).first(10));  // part of the header
  ASSERT_EQ(in.read(s.reader.get(), &f).value(), Progress::would_block);
  s.send(std::span(first).subspan(10, 40));  // the rest of it and part of the payload
  ASSERT_EQ(in.read(s.reader.get(), &f).value(), Progress::would_block);
  auto both = std::vector<std::byte>(first.begin() + 50, first.end());
  const auto second = frame_bytes(8, 0);
  both.insert(both.end(), second.begin(), second.end());
  s.send(both);
  ASSERT_EQ(in.read(s.reader.get(), &f).value(), Progress::frame);
  EXPECT_EQ(f.header.request_id, 7u);
  EXPECT_EQ(std::vector<std::byte>(first.begin() + kHeaderSize, first.end()), f.payload);
  EXPECT_TRUE(f.fds.empty());
  ASSERT_EQ(in.read(s.reader.get(), &f).value(), Progress::frame);
  EXPECT_EQ(f.header.request_id, 8u);
  EXPECT_TRUE(f.payload.empty());
  EXPECT_EQ(in.read(s.reader.get(), &f).value(), Progress::would_block);
}

TEST(FrameAssemblerTest, PayloadBeyondTheFirstBufferArrivesWhole) {
  Sockets s;
  FrameAssembler in(/*replies=*/true);
  const auto bytes = frame_bytes(9, 1 << 20, /*reply=*/true);  // 16 doublings of 64 KiB
  FrameAssembler::Frame f;
  size_t sent = 0;
  Progress p = Progress::would_block;
  while (p != Progress::frame) {
    const size_t n = std::min<size_t>(100000, bytes.size() - sent);
    if (n > 0) s.send(std::span(bytes).subspan(sent, n));
    sent += n;
    auto r = in.read(s.reader.get(), &f);
    ASSERT_TRUE(r.has_value()) << r.error().error.to_string();
    p = *r;
    ASSERT_TRUE(p == Progress::frame || sent < bytes.size());
  }
  EXPECT_EQ(f.payload.size(), size_t{1} << 20);
  EXPECT_EQ(std::vector<std::byte>(bytes.begin() + kHeaderSize, bytes.end()), f.payload);
}

TEST(FrameAssemblerTest, FramesOfTheWrongDirectionAreRefused) {
  Sockets s;
  FrameAssembler requests(/*replies=*/false);
  FrameAssembler::Frame f;
  s.send(frame_bytes(11, 4, /*reply=*/true));
  auto r = requests.read(s.reader.get(), &f);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().kind, Kind::wrong_direction);
  EXPECT_EQ(r.error().error.code, Errc::protocol_error);
  Sockets t;
  FrameAssembler replies(/*replies=*/true);
  t.send(frame_bytes(12, 4));
  r = replies.read(t.reader.get(), &f);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().kind, Kind::wrong_direction);
}

TEST(FrameAssemblerTest, BadHeaderKeepsItsBytesForTheReply) {
  Sockets s;
  FrameAssembler in(/*replies=*/false);
  auto bytes = frame_bytes(0x1122334455667788ull, 0);
  bytes[0] = std::byte{0};  // not the magic
  s.send(bytes);
  FrameAssembler::Frame f;
  auto r = in.read(s.reader.get(), &f);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().kind, Kind::bad_header);
  EXPECT_TRUE(std::equal(bytes.begin() + 1, bytes.begin() + kHeaderSize, in.header_bytes().begin() + 1));
}

TEST(FrameAssemblerTest, TwoDescriptorsWithOneFrameAreATransportFailure) {
  Sockets s;
  FrameAssembler in(/*replies=*/false);
  const auto bytes = frame_bytes(3, 0);
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  UniqueFd p0(pipe_fds[0]), p1(pipe_fds[1]);
  int fds[2] = {p0.get(), p1.get()};
  char control[CMSG_SPACE(sizeof(fds))] = {};
  iovec iov{const_cast<std::byte*>(bytes.data()), bytes.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(fds));
  std::memcpy(CMSG_DATA(c), fds, sizeof(fds));
  ASSERT_EQ(::sendmsg(s.writer.get(), &msg, 0), static_cast<ssize_t>(bytes.size()));
  FrameAssembler::Frame f;
  auto r = in.read(s.reader.get(), &f);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().kind, Kind::transport);
  EXPECT_EQ(r.error().error.code, Errc::protocol_error);
}

TEST(FrameAssemblerTest, EndOfStream) {
  Sockets s;
  FrameAssembler in(/*replies=*/false);
  const auto bytes = frame_bytes(5, 8);
  s.send(std::span(bytes).first(20));
  s.pair.a.reset();
  FrameAssembler::Frame f;
  EXPECT_EQ(in.read(s.reader.get(), &f).value(), Progress::eof);
}

TEST(FrameAssemblerTest, DescriptorsMustMatchTheAttachmentFlag) {
  FrameHeader h;
  EXPECT_TRUE(check_descriptors(h, 0).has_value());
  EXPECT_EQ(check_descriptors(h, 1).error().code, Errc::protocol_error);
  h.flags = kFlagAttachment;
  EXPECT_TRUE(check_descriptors(h, 1).has_value());
  EXPECT_EQ(check_descriptors(h, 0).error().code, Errc::protocol_error);
}

}  // namespace
}  // namespace vkn::protocol
