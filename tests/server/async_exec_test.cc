// Execs answered from the backend's thread (Backend::exec_async; the FakeBackend runs
// each on a thread of its own, as the node answers from its worker): every request
// gets one reply, the slots keep the number running at `workers`, deadlines, clients
// that leave while their exec runs, and a graceful stop.
#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <thread>

#include "protocol/messages.h"
#include "raw_connection.h"
#include "server_fixture.h"

namespace vkn::server::testing {
namespace {

using protocol::MessageType;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

class AsyncExecTest : public ServerFixture {
 protected:
  ServerOptions options() override {
    ServerOptions o = ServerFixture::options();
    o.workers = 2;
    return o;
  }
  uint64_t async_execs() {
    std::lock_guard lock(fake_->mu);
    return fake_->async_execs;
  }
  bool fake_has(const std::string& name) {
    std::lock_guard lock(fake_->mu);
    return fake_->buffers.count(name) > 0;
  }
};

std::string reg(const std::string& name) { return "u" + std::to_string(::getuid()) + "/" + name; }

TEST_F(AsyncExecTest, EveryExecGetsItsOwnReplyOnce) {
  start_server();
  constexpr int kClients = 4, kCalls = 25;
  std::vector<std::unique_ptr<Client>> clients;
  KernelId kernel{};
  for (int c = 0; c < kClients; ++c) {
    VKN_ASSERT_OK_AND_ASSIGN(client, connect());
    VKN_ASSERT_OK_AND_ASSIGN(k, client->register_kernel(fake_spirv(1)));
    kernel = k;
    VKN_ASSERT_OK(client->create_buffer("b" + std::to_string(c), BufferSpec{16}));  // one user
    clients.push_back(std::move(client));
  }
  std::atomic<int> right{0}, wrong{0};
  std::vector<std::thread> threads;
  for (int c = 0; c < kClients; ++c) {
    threads.emplace_back([&, c] {
      for (int i = 0; i < kCalls; ++i) {
        // Each call writes its own value and reads it back in the same Program.
        const uint32_t v = static_cast<uint32_t>(c * 1000 + i);
        const std::string b = "b" + std::to_string(c);
        Program p = slow_program(kernel, b, 1);
        p.steps.insert(p.steps.begin(), UploadStep{b, 0, u32_bytes(v)});
        p.steps.push_back(DownloadStep{b, 0, 4});
        auto r = clients[c]->exec(p);
        if (r && r->downloads.size() == 1 && r->downloads[0] == u32_bytes(v)) {
          right.fetch_add(1);
        } else {
          wrong.fetch_add(1);
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(right.load(), kClients * kCalls);
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(async_execs(), static_cast<uint64_t>(kClients * kCalls));
  VKN_ASSERT_OK_AND_ASSIGN(status, clients[0]->status());
  EXPECT_EQ(status.running_requests, 0u);
  EXPECT_EQ(status.queued_requests, 0u);
}

TEST_F(AsyncExecTest, NoMoreExecsRunAtOnceThanWorkers) {
  start_server();
  VKN_ASSERT_OK_AND_ASSIGN(a, connect());
  VKN_ASSERT_OK_AND_ASSIGN(b, connect());
  VKN_ASSERT_OK_AND_ASSIGN(kernel, a->register_kernel(fake_spirv(1)));
  VKN_ASSERT_OK(b->register_kernel(fake_spirv(1)));
  VKN_ASSERT_OK(a->create_buffer("a", BufferSpec{16}));
  VKN_ASSERT_OK(b->create_buffer("b", BufferSpec{16}));
  constexpr int kJobMs = 100;
  std::vector<std::future<bool>> calls;
  const auto start = Clock::now();
  for (int i = 0; i < 6; ++i) {
    Client* c = i % 2 ? b.get() : a.get();
    calls.push_back(std::async(std::launch::async, [c, kernel, i] {
      return c->exec(slow_program(kernel, i % 2 ? "b" : "a", kJobMs)).has_value();
    }));
  }
  std::this_thread::sleep_for(milliseconds(kJobMs / 2));
  VKN_ASSERT_OK_AND_ASSIGN(mid, a->status());  // answered by the I/O thread meanwhile
  EXPECT_LE(mid.running_requests, 2u);
  for (auto& f : calls) EXPECT_TRUE(f.get());
  // Six 100 ms jobs, two at a time: three rounds.
  EXPECT_GE(Clock::now() - start, milliseconds(3 * kJobMs - 10));
}

TEST_F(AsyncExecTest, ExpiredWhileWaitingForASlotIsAnsweredAndNeverRuns) {
  ServerOptions o = options();
  o.workers = 1;
  start_server(o);
  VKN_ASSERT_OK_AND_ASSIGN(busy, connect());
  VKN_ASSERT_OK_AND_ASSIGN(late, connect());
  VKN_ASSERT_OK_AND_ASSIGN(kernel, busy->register_kernel(fake_spirv(1)));
  VKN_ASSERT_OK(late->register_kernel(fake_spirv(1)));
  VKN_ASSERT_OK(busy->create_buffer("busy", BufferSpec{16}));
  VKN_ASSERT_OK(late->create_buffer("late", BufferSpec{16}));
  auto blocker = std::async(std::launch::async,
                            [&] { return busy->exec(slow_program(kernel, "busy", 300)).has_value(); });
  std::this_thread::sleep_for(milliseconds(50));
  auto r = late->exec(slow_program(kernel, "late", 0), RequestOptions{milliseconds(50)});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::node_timeout);
  EXPECT_TRUE(blocker.get());
  VKN_ASSERT_OK(late->ping());
  std::this_thread::sleep_for(milliseconds(50));
  std::lock_guard lock(fake_->mu);
  for (const auto& name : fake_->exec_log) EXPECT_EQ(name.find("late"), std::string::npos);
}

TEST_F(AsyncExecTest, ClientThatLeavesWhileItsExecRunsIsCleanedUpAfterIt) {
  ServerOptions o = options();
  o.workers = 1;
  start_server(o);
  VKN_ASSERT_OK_AND_ASSIGN(observer, connect());
  VKN_ASSERT_OK_AND_ASSIGN(kernel, observer->register_kernel(fake_spirv(3)));
  {
    auto raw = RawConnection::open(socket());
    ASSERT_TRUE(raw && raw->hello());
    protocol::RegisterKernelRequest rk;
    const auto spirv = fake_spirv(3);
    rk.spirv = std::as_bytes(std::span(spirv));
    ASSERT_TRUE(raw->send_message(MessageType::register_kernel, 2, rk) && raw->recv());
    protocol::CreateBufferRequest cb{"leaver", BufferSpec{16}, true};
    ASSERT_TRUE(raw->send_message(MessageType::create_buffer, 3, cb) && raw->recv());
    ASSERT_TRUE(raw->send_message(MessageType::exec, 4, slow_program(kernel, "leaver", 300)));
    bool running = false;
    for (int i = 0; i < 300 && !running; ++i) {
      std::this_thread::sleep_for(milliseconds(5));
      std::lock_guard lock(fake_->mu);
      running = !fake_->exec_log.empty();
    }
    ASSERT_TRUE(running);
  }  // closes the connection while its exec runs
  // The single slot is still the orphaned exec's: the I/O thread answers meanwhile.
  VKN_ASSERT_OK(observer->ping());
  EXPECT_TRUE(fake_has(reg("leaver")));
  // The session buffer goes once the exec has ended, and the slot is free again.
  bool gone = false;
  for (int i = 0; i < 300 && !gone; ++i) {
    std::this_thread::sleep_for(milliseconds(10));
    gone = !fake_has(reg("leaver"));
  }
  EXPECT_TRUE(gone);
  VKN_ASSERT_OK(observer->create_buffer("after", BufferSpec{16}));
  VKN_ASSERT_OK_AND_ASSIGN(status, observer->status());
  EXPECT_EQ(status.running_requests, 0u);
}

TEST_F(AsyncExecTest, GracefulStopAnswersRunningExecsAndCancelsQueuedOnes) {
  ServerOptions o = options();
  o.workers = 1;
  start_server(o);
  VKN_ASSERT_OK_AND_ASSIGN(a, connect());
  VKN_ASSERT_OK_AND_ASSIGN(b, connect());
  VKN_ASSERT_OK_AND_ASSIGN(kernel, a->register_kernel(fake_spirv(1)));
  VKN_ASSERT_OK(b->register_kernel(fake_spirv(1)));
  VKN_ASSERT_OK(a->create_buffer("a", BufferSpec{16}));
  VKN_ASSERT_OK(b->create_buffer("b", BufferSpec{16}));
  auto running = std::async(std::launch::async,
                            [&] { return a->exec(slow_program(kernel, "a", 300)); });
  std::this_thread::sleep_for(milliseconds(50));
  auto queued = std::async(std::launch::async,
                           [&] { return b->exec(slow_program(kernel, "b", 0)); });
  std::this_thread::sleep_for(milliseconds(50));
  stop_server();
  auto r1 = running.get();
  EXPECT_TRUE(r1.has_value()) << r1.error().to_string();
  auto r2 = queued.get();
  ASSERT_FALSE(r2.has_value());
  EXPECT_EQ(r2.error().code, Errc::cancelled);
}

}  // namespace
}  // namespace vkn::server::testing
