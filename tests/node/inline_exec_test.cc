// A blocking exec on an idle node runs on its caller's thread (NodeOptions::exec_inline):
// still one job at a time, with the node's deadlines, recovery and durable buffers.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <future>
#include <thread>
#include <vector>

#include "testing/node_fixture.h"
#include "vknode/gpu/stream.h"
#include "vknode/node/node.h"

namespace vkn {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::vector<std::byte> words(size_t n, uint32_t first) {
  std::vector<uint32_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = first + static_cast<uint32_t>(i);
  std::vector<std::byte> b(n * 4);
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

std::vector<std::byte> repeated(size_t n, uint32_t value) {
  std::vector<uint32_t> v(n, value);
  std::vector<std::byte> b(n * 4);
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

class InlineExecTest : public testing::NodeFixture {
 protected:
  InlineExecTest() : NodeFixture("inl-") {}
  // Before an exec that must run inline: the worker may still be busy with the last job.
  void wait_idle() { ASSERT_TRUE(TEST_wait_idle(name_, std::chrono::seconds(10)).has_value()); }
  NodeStatus node_status() {
    auto s = status(name_);
    EXPECT_TRUE(s.has_value());
    return s ? *s : NodeStatus{};
  }
};

TEST_F(InlineExecTest, AnIdleNodeRunsExecOnTheCallersThreadWithTheSameResults) {
  for (bool inline_on : {true, false}) {
    SCOPED_TRACE(inline_on ? "inline" : "on the worker");
    NodeOptions o = options();
    o.exec_inline = inline_on;
    start_node(o);
    ASSERT_TRUE(create_buffer("a", {1024}, call_).has_value());
    ASSERT_TRUE(create_buffer("b", {1024}, call_).has_value());
    const auto data = words(256, 100);
    wait_idle();
    auto r = exec(Program().upload("a", 0, data).copy("a", 0, "b", 512, 256).fill("a", 0, 16, 7)
                      .download("a", 0, 1024).download("b", 512, 256), call_);
    ASSERT_TRUE(r.has_value()) << r.error().to_string();
    ASSERT_EQ(r->downloads.size(), 2u);
    auto expect_a = data;
    std::memcpy(expect_a.data(), repeated(4, 7).data(), 16);
    EXPECT_EQ(r->downloads[0], expect_a);
    EXPECT_EQ(r->downloads[1], std::vector<std::byte>(data.begin(), data.begin() + 256));
    EXPECT_GE(r->gpu_wait_ms, 0.0);
    // Errors are the same values either way, and nothing ran.
    wait_idle();
    auto bad = exec(Program().fill("a", 0, 16, 1).download("missing", 0, 4), call_);
    ASSERT_FALSE(bad.has_value());
    EXPECT_EQ(bad.error().code, Errc::not_found);
    const NodeStatus s = node_status();
    EXPECT_EQ(s.exec_count, 2u);
    EXPECT_EQ(s.inline_execs, inline_on ? 2u : 0u);
    EXPECT_EQ(s.errors, 1u);
    EXPECT_EQ(s.last_error.find("missing") != std::string::npos, true) << s.last_error;
    auto still = read_buffer("a", 0, 16, call_);
    ASSERT_TRUE(still.has_value());
    EXPECT_EQ(*still, repeated(4, 7));
    ASSERT_TRUE(stop(name_).has_value());
  }
}

TEST_F(InlineExecTest, ABusyNodeRunsExecAfterItsRunningJob) {
  start_node(options());
  ASSERT_TRUE(create_buffer("b", {256}, call_).has_value());
  std::promise<void> started;
  // The job writes the buffer only after the exec below has been called.
  auto job = std::async(std::launch::async, [&] {
    return with_node([&](Context& ctx) -> Result<void> {
      started.set_value();
      std::this_thread::sleep_for(100ms);
      auto b = ctx.buffers().get_for_write("b");
      if (!b) return fail(b.error());
      if (auto r = ctx.stream().record_fill(**b, 0, 256, 0xABCD); !r) return r;
      return ctx.submit_and_wait();
    }, call_);
  });
  started.get_future().wait();
  auto r = exec(Program().download("b", 0, 256), call_);
  ASSERT_TRUE(r.has_value()) << r.error().to_string();
  EXPECT_EQ(r->downloads[0], repeated(64, 0xABCD)) << "the exec ran beside or before the running job";
  ASSERT_TRUE(job.get().has_value());
  EXPECT_EQ(node_status().inline_execs, 0u);
}

// The worker keeps the node a moment after each answer; a caller's exec right after its
// with_node call waits that out instead of queueing behind nothing.
TEST_F(InlineExecTest, AnExecRightAfterAJobStillRunsInline) {
  start_node(options());
  ASSERT_TRUE(create_buffer("b", {256}, call_).has_value());
  constexpr int kRounds = 200;
  for (int i = 0; i < kRounds; ++i) {
    ASSERT_TRUE(with_node([](Context&) {}, call_).has_value());
    ASSERT_TRUE(exec(Program().fill("b", 0, 4, i), call_).has_value());
  }
  // A worker descheduled for over a millisecond in its bookkeeping (a loaded CI machine)
  // lets an exec go to the queue instead; a few may.
  EXPECT_GE(node_status().inline_execs, static_cast<uint64_t>(kRounds - kRounds / 20));
}

// Threads mixing execs (inline when the node happens to be idle, queued otherwise) with
// with_node jobs that use the same stream: every result is right and jobs never overlap
// (the TSan build checks the node's objects too).
TEST_F(InlineExecTest, ManyThreadsMixingInlineExecsAndJobsRunOneAtATime) {
  start_node(options());
  constexpr int kThreads = 4, kRounds = 60;
  constexpr uint64_t kRegion = 256;
  ASSERT_TRUE(create_buffer("shared", {kThreads * kRegion}, call_).has_value());
  std::atomic<int> inside{0}, overlaps{0}, wrong{0}, failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const uint64_t at = t * kRegion;
      for (int i = 0; i < kRounds; ++i) {
        const auto data = words(kRegion / 4, t * 100000 + i * 100);
        auto r = exec(Program().upload("shared", at, data).download("shared", at, kRegion), call_);
        if (!r) {
          failed.fetch_add(1);
        } else if (r->downloads[0] != data) {
          wrong.fetch_add(1);
        }
        auto j = with_node([&](Context& ctx) -> Result<void> {
          if (inside.fetch_add(1) != 0) overlaps.fetch_add(1);
          auto b = ctx.buffers().get_for_write("shared");
          Result<void> out = b ? ctx.stream().record_fill(**b, at, kRegion, i) : fail(b.error());
          if (out) out = ctx.submit_and_wait();
          inside.fetch_sub(1);
          return out;
        }, call_);
        if (!j) failed.fetch_add(1);
        if (i % 16 == 0) (void)status(name_);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(overlaps.load(), 0);
  const NodeStatus s = node_status();
  EXPECT_EQ(s.exec_count, static_cast<uint64_t>(kThreads * kRounds));
  EXPECT_LE(s.inline_execs, s.exec_count);
  std::printf("inline execs: %llu of %llu\n", static_cast<unsigned long long>(s.inline_execs),
              static_cast<unsigned long long>(s.exec_count));
}

// The caller is answered at its deadline; the node finishes the batch, syncs the durable
// buffer the Program wrote, and serves the next call after it.
TEST_F(InlineExecTest, PastItsDeadlineTheRestIsHandedToTheNode) {
  start_node(options());
  ASSERT_TRUE(create_buffer("spin_out", {64 * 16 * 4}, call_).has_value());
  ASSERT_TRUE(create_buffer("keep", {256, ElementType::u32, {64}, true}, call_).has_value());
  CallOptions quick = call_;
  quick.timeout = 10ms;
  Program p = spin_program(10'000'000);
  p.fill("keep", 0, 256, 0x77).download("keep", 0, 256);
  wait_idle();
  const auto t0 = Clock::now();
  auto r = exec(p, quick);
  const auto answered = Clock::now() - t0;
  ASSERT_FALSE(r.has_value()) << "the spin finished within 10 ms; make it longer";
  EXPECT_EQ(r.error().code, Errc::node_timeout) << r.error().to_string();
  EXPECT_LT(answered, 2s);
  NodeStatus s = node_status();
  EXPECT_EQ(s.inline_execs, 1u);
  EXPECT_EQ(s.timeouts, 1u);
  // Queued behind the rest of the timed-out exec, which ran to its end.
  auto keep = read_buffer("keep", 0, 0, call_);
  ASSERT_TRUE(keep.has_value()) << keep.error().to_string();
  EXPECT_EQ(*keep, repeated(64, 0x77));
  s = node_status();
  EXPECT_EQ(s.job_count, s.exec_count + 3) << "two creates and the read, besides the exec";
  EXPECT_EQ(s.errors, 0u);
  // Its durable mirror was synced: the buffer survives a device loss.
  ASSERT_TRUE(TEST_inject(name_, 1, 0, 0).has_value());
  auto lost = exec(Program().fill("spin_out", 0, 4, 1), call_);
  ASSERT_FALSE(lost.has_value());
  EXPECT_EQ(lost.error().code, Errc::device_lost);
  keep = read_buffer("keep", 0, 0, call_);
  ASSERT_TRUE(keep.has_value()) << keep.error().to_string();
  EXPECT_EQ(*keep, repeated(64, 0x77));
  EXPECT_TRUE(exec(Program().fill("keep", 0, 4, 1), call_).has_value());
}

TEST_F(InlineExecTest, ADeviceLostInlineIsRebuiltByTheNode) {
  start_node(options());
  ASSERT_TRUE(create_buffer("b", {256}, call_).has_value());
  ASSERT_TRUE(TEST_inject(name_, 1, 0, 0).has_value());
  wait_idle();
  auto lost = exec(Program().fill("b", 0, 256, 3), call_);
  ASSERT_FALSE(lost.has_value());
  EXPECT_EQ(lost.error().code, Errc::device_lost);
  ASSERT_TRUE(with_node([](Context&) {}, call_).has_value());  // queued behind the recovery
  const NodeStatus s = node_status();
  EXPECT_EQ(s.device_resets, 1u);
  EXPECT_EQ(s.health, NodeHealth::ready);
  EXPECT_EQ(s.inline_execs, 1u);
  EXPECT_EQ(s.errors, 1u);
  EXPECT_NE(s.last_error.find("lost"), std::string::npos) << s.last_error;
  // The buffer was not durable; a new one works, inline again.
  ASSERT_TRUE(delete_buffer("b", call_).has_value());
  ASSERT_TRUE(create_buffer("b", {256}, call_).has_value());
  wait_idle();
  auto r = exec(Program().fill("b", 0, 256, 3).download("b", 0, 8), call_);
  ASSERT_TRUE(r.has_value()) << r.error().to_string();
  EXPECT_EQ(r->downloads[0], repeated(2, 3));
  EXPECT_EQ(node_status().inline_execs, 2u);
}

// A job sent while an exec runs inline waits for it, and runs as soon as it ends: the
// worker, asleep for want of work, is woken when the node is given back.
TEST_F(InlineExecTest, AJobSentDuringAnInlineExecRunsRightAfterIt) {
  start_node(options());
  ASSERT_TRUE(create_buffer("spin_out", {64 * 16 * 4}, call_).has_value());
  std::this_thread::sleep_for(20ms);  // past the worker's spin: it sleeps
  wait_idle();
  auto running = std::async(std::launch::async, [&] { return exec(spin_program(2'000'000), call_); });
  const auto until = Clock::now() + 10s;
  while (node_status().inline_execs == 0 && Clock::now() < until) std::this_thread::sleep_for(100us);
  ASSERT_EQ(node_status().inline_execs, 1u);
  CallOptions bounded = call_;
  bounded.timeout = 5s;  // the worker's idle sleep lasts 30 s (persist_interval)
  auto job = with_node([](Context&) { return 7; }, bounded);
  ASSERT_TRUE(job.has_value()) << job.error().to_string();
  EXPECT_EQ(*job, 7);
  EXPECT_TRUE(running.get().has_value());
}

// stop() waits for an exec running inline, which completes; later calls are refused.
TEST_F(InlineExecTest, StopWaitsForAnInlineExec) {
  start_node(options());
  ASSERT_TRUE(create_buffer("spin_out", {64 * 16 * 4}, call_).has_value());
  wait_idle();
  auto running = std::async(std::launch::async, [&] { return exec(spin_program(2'000'000), call_); });
  const auto until = Clock::now() + 10s;
  while (node_status().inline_execs == 0 && Clock::now() < until) std::this_thread::sleep_for(100us);
  ASSERT_EQ(node_status().inline_execs, 1u);
  const auto t0 = Clock::now();
  ASSERT_TRUE(stop(name_).has_value());
  EXPECT_LT(Clock::now() - t0, 10s) << "the worker slept through the end of the inline exec";
  auto r = running.get();
  EXPECT_TRUE(r.has_value()) << r.error().to_string();
  auto after = exec(spin_program(1), call_);
  ASSERT_FALSE(after.has_value());
  EXPECT_EQ(after.error().code, Errc::node_dead);
}

}  // namespace
}  // namespace vkn
