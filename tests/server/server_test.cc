#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <future>
#include <thread>

#include "protocol/wire.h"
#include "server_fixture.h"

namespace vkn::server::testing {
namespace {

std::vector<std::byte> pattern(size_t n, uint8_t seed) {
  std::vector<std::byte> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<std::byte>((i * 31 + seed) & 0xff);
  return v;
}

class ServerTest : public ServerFixture {
 protected:
  void SetUp() override {
    ServerFixture::SetUp();
    start_server();
  }
};

TEST_F(ServerTest, HelloPingAndStatus) {
  VKN_ASSERT_OK_AND_ASSIGN(client, connect());
  EXPECT_EQ(client->daemon().protocol_version, protocol::kMaxVersion);
  EXPECT_EQ(client->daemon().peer_uid, ::getuid());
  EXPECT_TRUE(client->daemon().peer_is_admin);
  VKN_ASSERT_OK(client->ping());
  VKN_ASSERT_OK_AND_ASSIGN(status, client->status());
  EXPECT_TRUE(status.live);
  EXPECT_TRUE(status.ready);
  ASSERT_EQ(status.devices.size(), 1u);
  EXPECT_EQ(status.devices[0].device_name, "fake device");
  EXPECT_EQ(status.socket_path, socket());
  EXPECT_GE(status.connections, 1u);
}

TEST_F(ServerTest, BufferLifecycleRoundTrip) {
  VKN_ASSERT_OK_AND_ASSIGN(client, connect());
  VKN_ASSERT_OK(client->create_buffer("a", BufferSpec{64, ElementType::u32, {16}, false}));
  const auto data = pattern(32, 1);
  VKN_ASSERT_OK(client->write_buffer("a", 16, data));
  VKN_ASSERT_OK_AND_ASSIGN(back, client->read_buffer("a", 16, 32));
  EXPECT_EQ(back, data);
  VKN_ASSERT_OK_AND_ASSIGN(whole, client->read_buffer("a"));
  EXPECT_EQ(whole.size(), 64u);
  VKN_ASSERT_OK_AND_ASSIGN(list, client->list_buffers());
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].info.name, "a");
  EXPECT_EQ(list[0].info.spec.element, ElementType::u32);
  EXPECT_EQ(list[0].owner_uid, ::getuid());
  // The node sees the namespaced name.
  EXPECT_TRUE(fake_->buffers.count("u" + std::to_string(::getuid()) + "/a"));
  auto dup = client->create_buffer("a", BufferSpec{64});
  ASSERT_FALSE(dup);
  EXPECT_EQ(dup.error().code, Errc::already_exists);
  VKN_ASSERT_OK(client->delete_buffer("a"));
  auto gone = client->read_buffer("a");
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().code, Errc::not_found);
}

TEST_F(ServerTest, RangeAndNameErrorsAreReported) {
  VKN_ASSERT_OK_AND_ASSIGN(client, connect());
  VKN_ASSERT_OK(client->create_buffer("r", BufferSpec{16}));
  auto w = client->write_buffer("r", 8, pattern(16, 0));
  ASSERT_FALSE(w);
  EXPECT_EQ(w.error().code, Errc::invalid_argument);
  auto r = client->read_buffer("r", 17, 0);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::invalid_argument);
  for (const std::string& bad :
       std::vector<std::string>{"", "a b", "..\\x", std::string(101, 'x'), "x\n"}) {
    auto c = client->create_buffer(bad, BufferSpec{16});
    ASSERT_FALSE(c) << bad;
    EXPECT_EQ(c.error().code, Errc::invalid_argument) << bad;
  }
  auto zero = client->create_buffer("z", BufferSpec{0});
  ASSERT_FALSE(zero);
  EXPECT_EQ(zero.error().code, Errc::invalid_argument);
  auto both = client->create_buffer("d", BufferSpec{16, ElementType::bytes, {}, true},
                                    BufferScope::session);
  ASSERT_FALSE(both);
  EXPECT_EQ(both.error().code, Errc::invalid_argument);
}

TEST_F(ServerTest, LargeTransfersGoThroughSharedMemory) {
  VKN_ASSERT_OK_AND_ASSIGN(client, connect());
  const size_t n = 5u << 20;
  VKN_ASSERT_OK(client->create_buffer("big", BufferSpec{n}));
  const auto data = pattern(n, 7);
  VKN_ASSERT_OK(client->write_buffer("big", 0, data));
  std::vector<std::byte> back(n);
  VKN_ASSERT_OK(client->read_buffer_into("big", 0, back));
  EXPECT_TRUE(back == data);
}

TEST_F(ServerTest, SharedBufferTransfersWithoutCopies) {
  VKN_ASSERT_OK_AND_ASSIGN(client, connect());
  const size_t n = 3u << 20;
  VKN_ASSERT_OK(client->create_buffer("sb", BufferSpec{n}));
  VKN_ASSERT_OK_AND_ASSIGN(out, SharedBuffer::create(n));
  VKN_ASSERT_OK_AND_ASSIGN(in, SharedBuffer::create(n));
  for (uint8_t round = 0; round < 3; ++round) {  // the daemon reuses its mappings
    const auto data = pattern(n, round);
    std::memcpy(out.bytes().data(), data.data(), n);
    VKN_ASSERT_OK(client->write_buffer("sb", 0, out));
    VKN_ASSERT_OK(client->read_buffer("sb", 0, in));
    EXPECT_TRUE(std::equal(in.bytes().begin(), in.bytes().end(), data.begin())) << int(round);
  }
  // Part of a buffer, at an offset.
  VKN_ASSERT_OK(client->read_buffer("sb", 100, in, 1000));
  EXPECT_EQ(in.bytes()[0], pattern(n, 2)[100]);
  auto too_much = client->write_buffer("sb", 1, out);
  ASSERT_FALSE(too_much);
  EXPECT_EQ(too_much.error().code, Errc::invalid_argument);
}

TEST_F(ServerTest, ExecMapsNamesAndReturnsDownloads) {
  VKN_ASSERT_OK_AND_ASSIGN(client, connect());
  VKN_ASSERT_OK(client->create_buffer("x", BufferSpec{3u << 20}));
  const auto spirv = fake_spirv(1);
  VKN_ASSERT_OK_AND_ASSIGN(kernel, client->register_kernel(spirv, {}, "slow"));
  Program p = slow_program(kernel, "x", 0);
  p.steps.push_back(UploadStep{"x", 0, pattern(2u << 20, 3)});  // through a memfd
  p.steps.push_back(DownloadStep{"x", 0, 2u << 20});            // and back in one
  p.steps.push_back(DownloadStep{"x", 100, 10});
  VKN_ASSERT_OK_AND_ASSIGN(result, client->exec(p));
  ASSERT_EQ(result.downloads.size(), 2u);
  EXPECT_TRUE(result.downloads[0] == pattern(2u << 20, 3));
  EXPECT_EQ(result.downloads[1].size(), 10u);
  std::lock_guard lock(fake_->mu);
  ASSERT_EQ(fake_->exec_log.size(), 1u);
  EXPECT_EQ(fake_->exec_log[0], "u" + std::to_string(::getuid()) + "/x");
}

TEST_F(ServerTest, BuiltinKernelsAreListedAndUsable) {
  VKN_ASSERT_OK_AND_ASSIGN(client, connect());
  VKN_ASSERT_OK_AND_ASSIGN(id, client->builtin_kernel_id(BuiltinKernel::fill_u32));
  KernelId expected;
  expected.fill(0xb1);
  EXPECT_EQ(id, expected);
  VKN_ASSERT_OK(client->create_buffer("b", BufferSpec{16}));
  VKN_ASSERT_OK(client->exec(slow_program(id, "b", 0)));
  VKN_ASSERT_OK_AND_ASSIGN(kernels, client->list_kernels());
  EXPECT_EQ(kernels.size(), 1u);
}

TEST_F(ServerTest, UnregisteredKernelIsDenied) {
  VKN_ASSERT_OK_AND_ASSIGN(client, connect());
  VKN_ASSERT_OK(client->create_buffer("b", BufferSpec{16}));
  KernelId other;
  other.fill(0x42);
  auto r = client->exec(slow_program(other, "b", 0));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::permission_denied);
}

TEST_F(ServerTest, InvalidSpirvErrorPassesThrough) {
  VKN_ASSERT_OK_AND_ASSIGN(client, connect());
  std::vector<uint32_t> bad{1, 2, 3};
  auto r = client->register_kernel(bad);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::invalid_spirv);
}

TEST_F(ServerTest, ManyClientsAtOnce) {
  constexpr int kClients = 16;
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int c = 0; c < kClients; ++c) {
    threads.emplace_back([&, c] {
      auto client = connect();
      if (!client) return;
      const std::string name = "c" + std::to_string(c);
      if (!(*client)->create_buffer(name, BufferSpec{256})) return;
      for (int i = 0; i < 20; ++i) {
        const auto data = pattern(256, static_cast<uint8_t>(c * 20 + i));
        if (!(*client)->write_buffer(name, 0, data)) return;
        auto back = (*client)->read_buffer(name);
        if (!back || *back != data) return;
      }
      ok.fetch_add(1);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), kClients);
}

TEST_F(ServerTest, OneConnectionCarriesConcurrentRequests) {
  VKN_ASSERT_OK_AND_ASSIGN(client, connect());
  VKN_ASSERT_OK_AND_ASSIGN(kernel, client->register_kernel(fake_spirv(2)));
  VKN_ASSERT_OK(client->create_buffer("s", BufferSpec{16}));
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  const auto start = std::chrono::steady_clock::now();
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10; ++i) {
        if (i % 2 == 0 ? client->ping().has_value()
                       : client->exec(slow_program(kernel, "s", 1)).has_value()) {
          ok.fetch_add(1);
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 80);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
}

// The calling threads read the socket themselves, one at a time: a reader that gives
// up at its deadline must hand reading to the calls still waiting, and the late reply
// to the call that gave up must not reach anyone else.
TEST_F(ServerTest, CallThatTimesOutHandsReadingToTheOtherCalls) {
  VKN_ASSERT_OK_AND_ASSIGN(client, connect());
  VKN_ASSERT_OK_AND_ASSIGN(kernel, client->register_kernel(fake_spirv(3)));
  VKN_ASSERT_OK(client->create_buffer("t", BufferSpec{16}));
  // The short call goes first and becomes the reader; the long ones wait behind it.
  auto short_call = std::async(std::launch::async, [&] {
    return client->exec(slow_program(kernel, "t", 300), {.timeout = std::chrono::milliseconds(50)});
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(10));
  std::atomic<int> ok{0};
  std::vector<std::thread> waiting;
  for (int t = 0; t < 3; ++t) {
    waiting.emplace_back([&] {
      if (client->exec(slow_program(kernel, "t", 20)).has_value()) ok.fetch_add(1);
    });
  }
  auto timed_out = short_call.get();
  ASSERT_FALSE(timed_out);
  EXPECT_EQ(timed_out.error().code, Errc::node_timeout);
  for (auto& t : waiting) t.join();
  EXPECT_EQ(ok.load(), 3);
  // The connection is still in step: each call gets its own reply.
  for (int i = 0; i < 5; ++i) VKN_ASSERT_OK(client->ping());
  VKN_ASSERT_OK(client->exec(slow_program(kernel, "t", 0)));
}

}  // namespace
}  // namespace vkn::server::testing
