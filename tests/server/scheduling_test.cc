// Fairness across clients, per-client queue limits and deadlines, on one worker so
// that the order is deterministic.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "server_fixture.h"

namespace vkn::server::testing {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

class SchedulingTest : public ServerFixture {
 protected:
  ServerOptions options() override {
    ServerOptions o = ServerFixture::options();
    o.workers = 1;
    return o;
  }
};

TEST_F(SchedulingTest, FloodFromOneClientDoesNotStarveAnother) {
  start_server();
  VKN_ASSERT_OK_AND_ASSIGN(flood, connect());
  VKN_ASSERT_OK_AND_ASSIGN(quiet, connect());
  VKN_ASSERT_OK_AND_ASSIGN(kernel, flood->register_kernel(fake_spirv(1)));
  VKN_ASSERT_OK(quiet->register_kernel(fake_spirv(1)));
  VKN_ASSERT_OK(flood->create_buffer("flood", BufferSpec{16}));
  VKN_ASSERT_OK(quiet->create_buffer("quiet", BufferSpec{16}));

  constexpr int kFloodThreads = 24;  // requests queued at once from one connection
  constexpr int kJobMs = 20;
  std::atomic<bool> stop{false};
  std::atomic<int> flood_done{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kFloodThreads; ++t) {
    threads.emplace_back([&] {
      while (!stop.load()) {
        if (flood->exec(slow_program(kernel, "flood", kJobMs))) flood_done.fetch_add(1);
      }
    });
  }
  std::this_thread::sleep_for(milliseconds(100));  // let the flood queue up
  milliseconds worst{0};
  for (int i = 0; i < 5; ++i) {
    const auto start = Clock::now();
    VKN_ASSERT_OK(quiet->exec(slow_program(kernel, "quiet", kJobMs)));
    worst = std::max(worst, std::chrono::duration_cast<milliseconds>(Clock::now() - start));
  }
  stop.store(true);
  for (auto& t : threads) t.join();
  // Round-robin: the quiet client waits for at most the running flood job and one
  // more, not for the ~24 queued ahead of it (~480 ms).
  EXPECT_LT(worst.count(), 6 * kJobMs) << "flood jobs done: " << flood_done.load();
  EXPECT_GT(flood_done.load(), 10);
}

TEST_F(SchedulingTest, PerClientQueueLimitAnswersQuotaExceeded) {
  ServerOptions o = options();
  o.quota.per_client_queued = 3;
  start_server(o);
  VKN_ASSERT_OK_AND_ASSIGN(client, connect());
  VKN_ASSERT_OK_AND_ASSIGN(kernel, client->register_kernel(fake_spirv(1)));
  VKN_ASSERT_OK(client->create_buffer("b", BufferSpec{16}));
  std::atomic<int> ok{0}, rejected{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 10; ++t) {
    threads.emplace_back([&] {
      auto r = client->exec(slow_program(kernel, "b", 100));
      if (r) ok.fetch_add(1);
      if (!r && r.error().code == Errc::quota_exceeded) rejected.fetch_add(1);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_GE(rejected.load(), 5);
  EXPECT_GE(ok.load(), 3);
  EXPECT_EQ(ok.load() + rejected.load(), 10);
  // Another connection of the same user is not affected by this one's queue.
  VKN_ASSERT_OK_AND_ASSIGN(other, connect());
  VKN_ASSERT_OK(other->ping());
}

TEST_F(SchedulingTest, DeadlineReturnsNodeTimeoutOnTime) {
  start_server();
  VKN_ASSERT_OK_AND_ASSIGN(client, connect());
  VKN_ASSERT_OK_AND_ASSIGN(kernel, client->register_kernel(fake_spirv(1)));
  VKN_ASSERT_OK(client->create_buffer("b", BufferSpec{16}));
  const auto start = Clock::now();
  auto r = client->exec(slow_program(kernel, "b", 400), RequestOptions{milliseconds(80)});
  const auto took = Clock::now() - start;
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::node_timeout);
  EXPECT_LT(took, milliseconds(300));
  // The connection is still good; the late reply is dropped.
  VKN_ASSERT_OK(client->ping());
  std::this_thread::sleep_for(milliseconds(400));
  VKN_ASSERT_OK(client->ping());
}

TEST_F(SchedulingTest, RequestThatExpiresInTheQueueNeverRuns) {
  start_server();
  VKN_ASSERT_OK_AND_ASSIGN(busy, connect());
  VKN_ASSERT_OK_AND_ASSIGN(late, connect());
  VKN_ASSERT_OK_AND_ASSIGN(kernel, busy->register_kernel(fake_spirv(1)));
  VKN_ASSERT_OK(late->register_kernel(fake_spirv(1)));
  VKN_ASSERT_OK(busy->create_buffer("busy", BufferSpec{16}));
  VKN_ASSERT_OK(late->create_buffer("late", BufferSpec{16}));
  std::thread blocker([&] { (void)busy->exec(slow_program(kernel, "busy", 300)); });
  std::this_thread::sleep_for(milliseconds(50));
  auto r = late->exec(slow_program(kernel, "late", 0), RequestOptions{milliseconds(50)});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::node_timeout);
  blocker.join();
  VKN_ASSERT_OK(late->ping());
  std::this_thread::sleep_for(milliseconds(50));  // the worker has dropped it by now
  std::lock_guard lock(fake_->mu);
  for (const auto& name : fake_->exec_log) EXPECT_EQ(name.find("late"), std::string::npos);
}

}  // namespace
}  // namespace vkn::server::testing
