// The hand-off between callers and the node's worker (src/node/job.h): deadlines racing
// the end of jobs, callers sleeping past their spin, asynchronous and blocking jobs mixed,
// and stops racing submissions. Every call must be answered exactly once, and every job
// must be freed exactly once (the sanitizer builds run these).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <random>
#include <thread>
#include <vector>

#include "node/job.h"
#include "testing/node_fixture.h"
#include "vknode/node/node.h"

namespace vkn {
namespace {

using namespace std::chrono_literals;

class JobHandoffTest : public testing::NodeFixture {
 protected:
  JobHandoffTest() : NodeFixture("handoff-") {}
};

void busy_for(std::chrono::microseconds d) {
  const auto end = std::chrono::steady_clock::now() + d;
  while (std::chrono::steady_clock::now() < end) {
  }
}

TEST(JobLayoutTest, JobsStartOnACacheLine) {
  std::vector<std::unique_ptr<detail::Job>> jobs;
  for (int i = 0; i < 64; ++i) {
    jobs.push_back(std::make_unique<detail::Job>());
    EXPECT_EQ(reinterpret_cast<uintptr_t>(jobs.back().get()) % 64, 0u);
  }
}

TEST(JobLayoutTest, TheFirstLineIsTheCallersAlone) {
  detail::Job job;
  const auto offset = [&](const void* field) {
    return static_cast<const char*>(field) - reinterpret_cast<const char*>(&job);
  };
  // Freeing a job writes the allocator's bookkeeping into its first 16 bytes; the worker's
  // fields start a line later (job.h).
  EXPECT_GE(offset(&job.state), 64);
  EXPECT_GE(offset(&job.fn), 64);
  EXPECT_GE(offset(&job.error), 64);
  // The state word and a blocking exec's result, written by the worker at the end and read
  // by the caller, share one line.
  const auto line = [&](const void* field) { return offset(field) / 64; };
  EXPECT_EQ(line(&job.state), line(&job.exec_result));
  EXPECT_EQ(line(&job.state), (offset(&job.exec_result) + sizeof(job.exec_result) - 1) / 64);
}

// Deadlines of 0-150 us against jobs of 0-100 us: every outcome (done, withdrawn before it
// ran, abandoned while it ran) happens many times, often within the same microsecond.
TEST_F(JobHandoffTest, RacingDeadlinesAnswerEveryCallExactlyOnce) {
  start_node(options());
  constexpr int kThreads = 4, kCalls = 400;
  std::atomic<int> ran{0}, inside{0}, overlaps{0}, succeeded{0}, timed_out{0}, other{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(1234 + t);
      for (int i = 0; i < kCalls; ++i) {
        CallOptions call = call_;
        call.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(
            std::chrono::microseconds(rng() % 150));  // mostly 0 ms: the deadline is now
        if (rng() % 4 == 0) call.timeout = 1ms;
        const auto work = std::chrono::microseconds(rng() % 100);
        auto r = with_node([&, work](Context&) {
          if (inside.fetch_add(1) != 0) overlaps.fetch_add(1);
          busy_for(work);
          ran.fetch_add(1);
          inside.fetch_sub(1);
          return 7;
        }, call);
        if (r && *r == 7) {
          succeeded.fetch_add(1);
        } else if (!r && r.error().code == Errc::node_timeout) {
          timed_out.fetch_add(1);
        } else {
          other.fetch_add(1);
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  // A no-deadline call queued behind every abandoned job: they have all finished after it.
  ASSERT_TRUE(with_node([](Context&) {}, call_).has_value());
  auto s = status(name_);
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(overlaps.load(), 0);
  EXPECT_EQ(other.load(), 0);
  EXPECT_EQ(succeeded.load() + timed_out.load(), kThreads * kCalls);
  EXPECT_EQ(s->timeouts, static_cast<uint64_t>(timed_out.load()));
  // Each job either ran (answered, or abandoned and finished unheard) or was withdrawn.
  EXPECT_EQ(static_cast<uint64_t>(ran.load()) + s->withdrawn, static_cast<uint64_t>(kThreads * kCalls));
  EXPECT_GT(s->withdrawn, 0u);
  EXPECT_GT(succeeded.load(), 0);
}

// Jobs longer than the callers' spin: the callers sleep on their job and are woken, or
// wake at their deadline while the job still runs.
TEST_F(JobHandoffTest, SleepingCallersAreWokenByTheEndOfTheirJobOrTheirDeadline) {
  start_node(options());
  std::vector<std::thread> threads;
  std::atomic<int> values{0}, timeouts{0};
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 5; ++i) {
        CallOptions call = call_;
        if (t == 2) call.timeout = 1ms;  // shorter than its job: answered before the end
        auto r = with_node([](Context&) {
          std::this_thread::sleep_for(3ms);
          return 1;
        }, call);
        if (r) {
          values.fetch_add(*r);
        } else if (r.error().code == Errc::node_timeout) {
          timeouts.fetch_add(1);
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(values.load(), 10);
  EXPECT_EQ(timeouts.load(), 5);
}

// Asynchronous and blocking jobs on one node, with deadlines: each asynchronous job whose
// submission succeeded is answered exactly once.
TEST_F(JobHandoffTest, AsynchronousAndBlockingJobsMixedAreEachAnsweredOnce) {
  start_node(options());
  constexpr int kAsync = 600;
  std::vector<std::atomic<int>> answers(kAsync);
  std::atomic<int> answered{0};
  std::thread blocking([&] {
    for (int i = 0; i < 300; ++i) {
      CallOptions call = call_;
      call.timeout = (i % 3 == 0) ? std::optional(0ms) : std::nullopt;
      (void)with_node([](Context&) { busy_for(20us); }, call);
    }
  });
  std::mt19937 rng(99);
  for (int i = 0; i < kAsync; ++i) {
    CallOptions call = call_;
    if (i % 2 == 0) call.timeout = std::chrono::milliseconds(rng() % 2);
    const auto work = std::chrono::microseconds(rng() % 50);
    auto r = detail::submit_job(call, [work](Context&) -> Result<void> {
      busy_for(work);
      return {};
    }, {}, [&answers, &answered, i](Result<void>) {
      answers[i].fetch_add(1);
      answered.fetch_add(1);
    });
    ASSERT_TRUE(r.has_value()) << r.error().to_string();
  }
  blocking.join();
  const auto limit = std::chrono::steady_clock::now() + 30s;
  while (answered.load() < kAsync && std::chrono::steady_clock::now() < limit) std::this_thread::sleep_for(1ms);
  ASSERT_TRUE(with_node([](Context&) {}, call_).has_value());  // abandoned jobs have finished
  for (int i = 0; i < kAsync; ++i) EXPECT_EQ(answers[i].load(), 1) << "job " << i;
}

// A stop while threads keep submitting: every blocking call returns (done, or node_dead
// once the node no longer accepts work), and every accepted asynchronous job is answered
// exactly once, whether it ran before the stop or was failed by it.
TEST_F(JobHandoffTest, StopRacingSubmissionsAnswersEveryCallOnce) {
  for (int round = 0; round < 5; ++round) {
    start_node(options());
    std::atomic<bool> go{false};
    std::atomic<int> accepted{0}, answered{0}, refused_blocking{0}, bad{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] {
        while (!go.load()) std::this_thread::yield();
        while (true) {
          if (t % 2 == 0) {
            auto r = with_node([](Context&) { return 1; }, call_);
            if (!r) {
              if (r.error().code != Errc::node_dead) bad.fetch_add(1);
              refused_blocking.fetch_add(1);
              return;
            }
          } else {
            auto r = detail::submit_job(call_, [](Context&) -> Result<void> { return {}; }, {},
                                        [&](Result<void> done) {
                                          if (!done && done.error().code != Errc::node_dead) bad.fetch_add(1);
                                          answered.fetch_add(1);
                                        });
            if (!r) {
              if (r.error().code != Errc::node_dead) bad.fetch_add(1);
              return;
            }
            accepted.fetch_add(1);
          }
        }
      });
    }
    go = true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5 + 5 * round));
    ASSERT_TRUE(stop(name_).has_value());
    for (auto& t : threads) t.join();
    // stop() returned after the worker settled everything it accepted.
    EXPECT_EQ(answered.load(), accepted.load()) << "round " << round;
    EXPECT_EQ(refused_blocking.load(), 2);
    EXPECT_EQ(bad.load(), 0);
  }
}

}  // namespace
}  // namespace vkn
