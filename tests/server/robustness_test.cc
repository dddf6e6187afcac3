// Malformed, truncated and oversized frames: every one is answered or closed, and
// the daemon keeps serving other clients.
#include <gtest/gtest.h>
#include <sys/mman.h>

#include <random>

#include "raw_connection.h"
#include "server_fixture.h"

namespace vkn::server::testing {
namespace {

using protocol::MessageType;

class RobustnessTest : public ServerFixture {
 protected:
  void SetUp() override {
    ServerFixture::SetUp();
    start_server();
  }
  void expect_daemon_serves() {
    auto c = connect();
    ASSERT_TRUE(c) << c.error().to_string();
    EXPECT_TRUE((*c)->ping());
  }
};

TEST_F(RobustnessTest, GarbageHeaderIsAnsweredAndClosed) {
  VKN_ASSERT_OK_AND_ASSIGN(raw, RawConnection::open(socket()));
  std::vector<std::byte> garbage(32, std::byte{0xab});
  VKN_ASSERT_OK(raw.send_raw(garbage));
  VKN_ASSERT_OK_AND_ASSIGN(reply, raw.recv());
  EXPECT_EQ(RawConnection::code_of(reply), Errc::protocol_error);
  EXPECT_TRUE(raw.closed_by_peer());
  expect_daemon_serves();
}

TEST_F(RobustnessTest, OversizedFrameIsRefusedWithoutReadingIt) {
  VKN_ASSERT_OK_AND_ASSIGN(raw, RawConnection::open(socket()));
  VKN_ASSERT_OK(raw.hello());
  protocol::FrameHeader h;
  h.type = MessageType::write_buffer;
  h.request_id = 9;
  h.payload_size = protocol::kMaxPayload;
  auto bytes = protocol::encode_header(h);
  bytes[12] = std::byte{0x01};  // payload size = kMaxPayload + 1
  bytes[15] = std::byte{0x04};
  VKN_ASSERT_OK(raw.send_raw(bytes));
  VKN_ASSERT_OK_AND_ASSIGN(reply, raw.recv());
  EXPECT_EQ(reply.header.request_id, 9u);
  EXPECT_EQ(RawConnection::code_of(reply), Errc::protocol_error);
  EXPECT_TRUE(raw.closed_by_peer());
  expect_daemon_serves();
}

TEST_F(RobustnessTest, TruncatedFrameThenHangupLeavesDaemonServing) {
  for (size_t cut : {1, 16, 31, 32, 40}) {
    VKN_ASSERT_OK_AND_ASSIGN(raw, RawConnection::open(socket()));
    VKN_ASSERT_OK(raw.hello());
    protocol::Writer w;
    protocol::encode(w, protocol::NameRequest{"some-buffer-name"});
    protocol::FrameHeader h;
    h.type = MessageType::delete_buffer;
    h.payload_size = static_cast<uint32_t>(w.out().size());
    auto header = protocol::encode_header(h);
    std::vector<std::byte> frame(header.begin(), header.end());
    frame.insert(frame.end(), w.out().begin(), w.out().end());
    VKN_ASSERT_OK(raw.send_raw(std::span(frame).first(std::min(cut, frame.size() - 1))));
  }  // each connection closes mid-frame here
  expect_daemon_serves();
}

TEST_F(RobustnessTest, RequestBeforeHelloIsRefused) {
  VKN_ASSERT_OK_AND_ASSIGN(raw, RawConnection::open(socket()));
  VKN_ASSERT_OK(raw.send(MessageType::ping, 5, {}));
  VKN_ASSERT_OK_AND_ASSIGN(reply, raw.recv());
  EXPECT_EQ(RawConnection::code_of(reply), Errc::protocol_error);
  VKN_ASSERT_OK(raw.hello());
  VKN_ASSERT_OK(raw.send(MessageType::ping, 6, {}));
  VKN_ASSERT_OK_AND_ASSIGN(pong, raw.recv());
  EXPECT_EQ(RawConnection::code_of(pong), Errc::ok);
}

TEST_F(RobustnessTest, NoCommonVersionIsRefused) {
  VKN_ASSERT_OK_AND_ASSIGN(raw, RawConnection::open(socket()));
  VKN_ASSERT_OK(raw.send_message(MessageType::hello, 1, protocol::HelloRequest{7, 9, "future"}));
  VKN_ASSERT_OK_AND_ASSIGN(reply, raw.recv());
  EXPECT_EQ(RawConnection::code_of(reply), Errc::protocol_error);
}

TEST_F(RobustnessTest, MalformedPayloadIsAnsweredAndConnectionContinues) {
  VKN_ASSERT_OK_AND_ASSIGN(raw, RawConnection::open(socket()));
  VKN_ASSERT_OK(raw.hello());
  std::vector<std::byte> bad{std::byte{0xff}, std::byte{0xff}, std::byte{0xff}, std::byte{0x7f}};
  for (auto type :
       {MessageType::create_buffer, MessageType::exec, MessageType::register_kernel,
        MessageType::write_buffer, MessageType::read_buffer, MessageType::list_buffers}) {
    VKN_ASSERT_OK(raw.send(type, 11, bad));
    VKN_ASSERT_OK_AND_ASSIGN(reply, raw.recv());
    EXPECT_EQ(RawConnection::code_of(reply), Errc::protocol_error) << protocol::to_string(type);
  }
  VKN_ASSERT_OK(raw.send(MessageType::ping, 12, {}));
  VKN_ASSERT_OK_AND_ASSIGN(pong, raw.recv());
  EXPECT_EQ(RawConnection::code_of(pong), Errc::ok);
}

TEST_F(RobustnessTest, AttachmentFlagWithoutDescriptorIsRefused) {
  VKN_ASSERT_OK_AND_ASSIGN(raw, RawConnection::open(socket()));
  VKN_ASSERT_OK(raw.hello());
  protocol::FrameHeader h;
  h.type = MessageType::ping;
  h.flags = protocol::kFlagAttachment;
  h.request_id = 3;
  auto bytes = protocol::encode_header(h);
  VKN_ASSERT_OK(raw.send_raw(bytes));
  VKN_ASSERT_OK_AND_ASSIGN(reply, raw.recv());
  EXPECT_EQ(RawConnection::code_of(reply), Errc::protocol_error);
  expect_daemon_serves();
}

TEST_F(RobustnessTest, UnsealedMemfdIsRefused) {
  VKN_ASSERT_OK_AND_ASSIGN(raw, RawConnection::open(socket()));
  VKN_ASSERT_OK(raw.hello());
  protocol::UniqueFd memfd(::memfd_create("x", MFD_CLOEXEC));
  ASSERT_EQ(::ftruncate(memfd.get(), 1 << 20), 0);
  protocol::OutgoingFrame frame;
  protocol::FrameHeader h;
  h.type = MessageType::ping;
  h.flags = protocol::kFlagAttachment;
  h.request_id = 4;
  frame.header = protocol::encode_header(h);
  frame.attachment = std::move(memfd);
  VKN_ASSERT_OK(protocol::send_frame(raw.fd(), frame));
  VKN_ASSERT_OK_AND_ASSIGN(reply, raw.recv());
  EXPECT_EQ(reply.header.request_id, 4u);
  EXPECT_EQ(RawConnection::code_of(reply), Errc::protocol_error);
  expect_daemon_serves();
}

TEST_F(RobustnessTest, ReplyFrameFromClientClosesConnection) {
  VKN_ASSERT_OK_AND_ASSIGN(raw, RawConnection::open(socket()));
  VKN_ASSERT_OK(raw.hello());
  protocol::FrameHeader h;
  h.type = MessageType::ping;
  h.flags = protocol::kFlagReply;
  auto bytes = protocol::encode_header(h);
  VKN_ASSERT_OK(raw.send_raw(bytes));
  VKN_ASSERT_OK_AND_ASSIGN(reply, raw.recv());
  EXPECT_EQ(RawConnection::code_of(reply), Errc::protocol_error);
  EXPECT_TRUE(raw.closed_by_peer());
}

TEST_F(RobustnessTest, RandomFramesNeverCrashTheDaemon) {
  std::mt19937 rng(777);
  const MessageType types[] = {
      MessageType::ping,         MessageType::status,        MessageType::register_kernel,
      MessageType::list_kernels, MessageType::create_buffer, MessageType::write_buffer,
      MessageType::read_buffer,  MessageType::delete_buffer, MessageType::list_buffers,
      MessageType::exec};
  VKN_ASSERT_OK_AND_ASSIGN(raw, RawConnection::open(socket()));
  VKN_ASSERT_OK(raw.hello());
  for (int i = 0; i < 300; ++i) {
    std::vector<std::byte> payload(rng() % 96);
    for (auto& b : payload) b = static_cast<std::byte>(rng() % 4 == 0 ? 0 : rng());
    VKN_ASSERT_OK(raw.send(types[rng() % std::size(types)], 100 + i, payload));
    VKN_ASSERT_OK_AND_ASSIGN(reply, raw.recv());
    EXPECT_EQ(reply.header.request_id, 100u + i);
  }
  expect_daemon_serves();
}

}  // namespace
}  // namespace vkn::server::testing
