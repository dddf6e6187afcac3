#include "protocol/messages.h"

#include <gtest/gtest.h>

#include <functional>
#include <random>

namespace vkn::protocol {
namespace {

using Decoder = std::function<bool(Reader&)>;

template <typename Fn>
Decoder decoder(Fn fn) {
  return [fn](Reader& r) { return fn(r).has_value(); };
}

std::vector<std::byte> bytes(std::initializer_list<int> v) {
  std::vector<std::byte> out;
  for (int x : v) out.push_back(static_cast<std::byte>(x));
  return out;
}

Program sample_program() {
  Program p;
  p.steps.push_back(UploadStep{"a", 8, bytes({1, 2, 3, 4})});
  DispatchStep d;
  d.kernel.fill(0x5a);
  d.bindings.push_back(NamedBinding{0, "a", 0, 0});
  d.bindings.push_back(NamedBinding{1, "b", 64, 128});
  d.push = bytes({9, 9, 9, 9, 1, 0, 0, 0});
  d.groups = {4, 2, 1};
  p.steps.push_back(d);
  p.steps.push_back(CopyStep{"a", 0, "b", 16, 32});
  p.steps.push_back(FillStep{"b", 0, 64, 0xdeadbeef});
  p.steps.push_back(BarrierStep{});
  p.steps.push_back(DownloadStep{"b", 0, 16});
  return p;
}

DaemonStatus sample_status() {
  DaemonStatus s;
  s.live = true;
  s.ready = true;
  s.daemon_version = "0.1.0";
  s.protocol_version = 1;
  s.pid = 42;
  s.socket_path = "/tmp/x.sock";
  s.uptime = std::chrono::milliseconds(1234);
  s.requests = 99;
  NodeStatus n;
  n.name = "vknoded-1";
  n.health = NodeHealth::recovering;
  n.device_name = "llvmpipe";
  n.cache_hits = 5;
  n.inline_execs = 7;
  n.last_error = "none";
  s.devices.push_back(n);
  s.usage.uid = 1000;
  s.usage.quota_bytes = 1 << 20;
  return s;
}

struct Case {
  std::string name;
  std::vector<std::byte> encoded;
  Decoder decode;
};

std::vector<Case> all_cases() {
  std::vector<Case> cases;
  auto add = [&](std::string name, auto&& message, Decoder d) {
    Writer w;
    encode(w, message);
    cases.push_back({std::move(name), w.take(), std::move(d)});
  };
  add("hello", HelloRequest{1, 1, "test-client"}, decoder(decode_hello_request));
  DaemonHello hello{1, "0.1.0", 7, 1000, false, kMaxPayload, kDefaultShmThreshold, kMaxAttachment};
  add("hello_reply", hello, decoder(decode_hello_reply));
  add("status", sample_status(), decoder(decode_status_reply));
  const std::vector<std::byte> spirv(64, std::byte{3});
  add("register_kernel", RegisterKernelRequest{spirv, {{0, 64}, {1, 7}}, "saxpy"},
      decoder(decode_register_kernel_request));
  KernelEntry k;
  k.id.fill(1);
  k.name = "fill_u32";
  k.builtin = true;
  add("kernel_list", std::vector<KernelEntry>{k, KernelEntry{}}, decoder(decode_kernel_list));
  BufferSpec spec{256, ElementType::f32, {8, 8}, true};
  add("create_buffer", CreateBufferRequest{"x", spec, true}, decoder(decode_create_buffer_request));
  const auto data = bytes({1, 2, 3});
  add("write_buffer", WriteBufferRequest{"x", 4, data}, decoder(decode_write_buffer_request));
  add("read_buffer", ReadBufferRequest{"x", 4, 8}, decoder(decode_read_buffer_request));
  add("delete_buffer", NameRequest{"x"}, decoder(decode_name_request));
  add("list_buffers", ListBuffersRequest{true}, decoder(decode_list_buffers_request));
  BufferListEntry e;
  e.info.name = "x";
  e.info.spec = spec;
  e.owner_uid = 3;
  add("buffer_list", std::vector<BufferListEntry>{e}, decoder(decode_buffer_list));
  add("program", sample_program(), decoder(decode_program));
  ProgramResult result;
  result.downloads = {bytes({1, 2}), {}, bytes({3})};
  result.gpu_wait_ms = 0.25;
  add("program_result", result, decoder(decode_program_result));
  return cases;
}

TEST(MessagesTest, EveryMessageDecodesItsEncoding) {
  for (auto& c : all_cases()) {
    Reader r(c.encoded);
    EXPECT_TRUE(c.decode(r)) << c.name;
  }
}

TEST(MessagesTest, EveryTruncationFails) {
  for (auto& c : all_cases()) {
    for (size_t n = 0; n < c.encoded.size(); ++n) {
      Reader r(std::span(c.encoded).first(n));
      EXPECT_FALSE(c.decode(r)) << c.name << " truncated to " << n;
    }
  }
}

TEST(MessagesTest, RandomGarbageNeverCrashes) {
  std::mt19937 rng(12345);
  auto cases = all_cases();
  std::vector<std::byte> attachment(64);
  for (auto& c : cases) {
    for (int i = 0; i < 3000; ++i) {
      std::vector<std::byte> in(rng() % 200);
      for (auto& b : in) b = static_cast<std::byte>(rng());
      Reader r(in, attachment);
      (void)c.decode(r);
    }
    // Mutations of the valid encoding reach deeper into each decoder.
    for (int i = 0; i < 3000; ++i) {
      auto in = c.encoded;
      const int flips = 1 + rng() % 4;
      for (int f = 0; f < flips && !in.empty(); ++f)
        in[rng() % in.size()] = static_cast<std::byte>(rng());
      Reader r(in, attachment);
      (void)c.decode(r);
    }
  }
}

TEST(MessagesTest, ProgramRoundTripPreservesEveryStep) {
  const Program p = sample_program();
  Writer w;
  encode(w, p);
  auto out = w.take();
  Reader r(out);
  auto back = decode_program(r);
  ASSERT_TRUE(back) << back.error().to_string();
  ASSERT_EQ(back->steps.size(), p.steps.size());
  const auto& up = std::get<UploadStep>(back->steps[0]);
  EXPECT_EQ(up.buffer, "a");
  EXPECT_EQ(up.offset, 8u);
  EXPECT_EQ(up.data, bytes({1, 2, 3, 4}));
  const auto& d = std::get<DispatchStep>(back->steps[1]);
  EXPECT_EQ(d.kernel, std::get<DispatchStep>(p.steps[1]).kernel);
  ASSERT_EQ(d.bindings.size(), 2u);
  EXPECT_EQ(d.bindings[1].buffer, "b");
  EXPECT_EQ(d.bindings[1].offset, 64u);
  EXPECT_EQ(d.bindings[1].range, 128u);
  EXPECT_EQ(d.push.size(), 8u);
  EXPECT_EQ(d.groups, (GroupCount{4, 2, 1}));
  const auto& cp = std::get<CopyStep>(back->steps[2]);
  EXPECT_EQ(cp.dst, "b");
  EXPECT_EQ(cp.dst_offset, 16u);
  EXPECT_EQ(cp.bytes, 32u);
  EXPECT_EQ(std::get<FillStep>(back->steps[3]).value, 0xdeadbeefu);
  EXPECT_TRUE(std::holds_alternative<BarrierStep>(back->steps[4]));
  EXPECT_EQ(std::get<DownloadStep>(back->steps[5]).bytes, 16u);
}

TEST(MessagesTest, ProgramWithTooManyStepsFails) {
  Writer w;
  w.u32(static_cast<uint32_t>(kMaxProgramSteps + 1));
  for (size_t i = 0; i <= kMaxProgramSteps; ++i) w.u8(5);
  auto out = w.take();
  Reader r(out);
  EXPECT_FALSE(decode_program(r));
}

TEST(MessagesTest, DownloadsBeyondTransferLimitFail) {
  Program p;
  p.steps.push_back(DownloadStep{"a", 0, kMaxProgramTransferBytes});
  p.steps.push_back(DownloadStep{"a", 0, 1});
  Writer w;
  encode(w, p);
  auto out = w.take();
  Reader r(out);
  EXPECT_FALSE(decode_program(r));
}

TEST(MessagesTest, UnknownStepTagFails) {
  Writer w;
  w.u32(1);
  w.u8(99);
  auto out = w.take();
  Reader r(out);
  auto p = decode_program(r);
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().code, Errc::protocol_error);
}

TEST(MessagesTest, SpirvMustBeWholeWords) {
  const std::vector<std::byte> spirv(6);
  Writer w;
  encode(w, RegisterKernelRequest{spirv, {}, "k"});
  auto out = w.take();
  Reader r(out);
  EXPECT_FALSE(decode_register_kernel_request(r));
}

TEST(MessagesTest, ErrorEnvelopePassesCodeAndMessageThrough) {
  Writer w;
  Error e = Error::make(Errc::quota_exceeded, "too many buffers", "u1000");
  e.vk_result = -4;
  encode_error(w, e);
  auto out = w.take();
  Reader r(out);
  auto back = decode_error(r);
  ASSERT_FALSE(back);
  EXPECT_EQ(back.error().code, Errc::quota_exceeded);
  EXPECT_EQ(back.error().vk_result, -4);
  EXPECT_EQ(back.error().message, "too many buffers: u1000");
}

TEST(MessagesTest, ErrorEnvelopeRejectsUnknownCode) {
  Writer w;
  w.u32(9999);
  w.u32(0);
  w.str("");
  auto out = w.take();
  Reader r(out);
  auto back = decode_error(r);
  ASSERT_FALSE(back);
  EXPECT_EQ(back.error().code, Errc::protocol_error);
}

TEST(MessagesTest, BadElementTypeFails) {
  Writer w;
  encode(w, CreateBufferRequest{"x", BufferSpec{16, ElementType::u32, {}, false}, false});
  auto out = w.take();
  out[4 + 1 + 8] = std::byte{77};  // element type after name "x" and bytes
  Reader r(out);
  EXPECT_FALSE(decode_create_buffer_request(r));
}

}  // namespace
}  // namespace vkn::protocol
