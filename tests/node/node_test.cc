#include "vknode/node/node.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <thread>

#include "vknode/gpu/buffer.h"
#include "vknode/gpu/builtin_kernels.h"
#include "vknode/gpu/device.h"
#include "vknode/gpu/kernel_cache.h"
#include "vknode/gpu/pipeline_cache.h"
#include "testing/node_fixture.h"
#include "vknode/gpu/stream.h"

namespace vkn {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

template <typename T>
std::vector<std::byte> as_bytes_vec(const std::vector<T>& v) {
  auto b = std::as_bytes(std::span(v));
  return {b.begin(), b.end()};
}
template <typename T>
std::vector<T> from_bytes(const std::vector<std::byte>& b) {
  std::vector<T> v(b.size() / sizeof(T));
  std::memcpy(v.data(), b.data(), v.size() * sizeof(T));
  return v;
}
class NodeTest : public testing::NodeFixture {
 protected:
  NodeTest() : NodeFixture("test-") {}
};

TEST_F(NodeTest, StartsOnceUnderAName) {
  start_node(options());
  EXPECT_TRUE(alive(name_));
  auto again = start(options());
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().code, Errc::already_exists);
  EXPECT_NE(again.error().message.find(name_), std::string::npos);
  auto s = status(name_);
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->health, NodeHealth::ready);
  EXPECT_FALSE(s->device_name.empty());
  EXPECT_GE(s->kernel_count, all_builtin_kernels().size());
}

TEST_F(NodeTest, NodeDeadAfterStopAndForUnknownNames) {
  start_node(options());
  ASSERT_TRUE(stop(name_).has_value());
  EXPECT_FALSE(alive(name_));
  auto r = with_node([](Context&) { return 1; }, call_);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Errc::node_dead);
  CallOptions unknown;
  unknown.node = "no-such-node";
  EXPECT_EQ(with_node([](Context&) {}, unknown).error().code, Errc::node_dead);
  EXPECT_EQ(status("no-such-node").error().code, Errc::node_dead);
  EXPECT_EQ(stop("no-such-node").error().code, Errc::node_dead);
  EXPECT_FALSE(alive("no-such-node"));
}

TEST_F(NodeTest, WithNodeReturnsValuesAndResultsAndVoid) {
  start_node(options());
  auto v = with_node([](Context& ctx) { return ctx.device().info().name.size(); }, call_);
  ASSERT_TRUE(v.has_value());
  EXPECT_GT(*v, 0u);
  auto e = with_node([](Context&) -> Result<int> { return fail(Errc::not_found, "custom"); }, call_);
  ASSERT_FALSE(e.has_value());
  EXPECT_EQ(e.error().code, Errc::not_found);
  auto ok = with_node([](Context&) -> Result<int> { return 7; }, call_);
  EXPECT_EQ(ok.value(), 7);
  EXPECT_TRUE(with_node([](Context&) {}, call_).has_value());
}

TEST_F(NodeTest, ManyThreadsRunOneJobAtATime) {
  start_node(options());
  std::atomic<int> inside{0};
  std::atomic<int> overlaps{0};
  std::atomic<int> done{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 25; ++i) {
        auto r = with_node([&](Context&) {
          if (inside.fetch_add(1) != 0) overlaps.fetch_add(1);
          std::this_thread::sleep_for(50us);
          inside.fetch_sub(1);
        }, call_);
        if (r) done.fetch_add(1);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(done.load(), 200);
  EXPECT_EQ(overlaps.load(), 0);
  EXPECT_EQ(status(name_)->job_count, 200u);
}

TEST_F(NodeTest, ExceptionsBecomeJobFailedAndTheNodeKeepsRunning) {
  start_node(options());
  auto r = with_node([](Context&) -> int { throw std::runtime_error("boom"); }, call_);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Errc::job_failed);
  EXPECT_NE(r.error().message.find("boom"), std::string::npos);
  EXPECT_TRUE(alive(name_));
  EXPECT_EQ(with_node([](Context&) { return 3; }, call_).value(), 3);
}

TEST_F(NodeTest, QueuedJobIsWithdrawnAtItsDeadlineAndNeverRuns) {
  start_node(options());
  std::atomic<bool> release{false};
  std::atomic<bool> second_ran{false};
  std::thread blocker([&] {
    (void)with_node([&](Context&) {
      while (!release.load()) std::this_thread::sleep_for(1ms);
    }, call_);
  });
  while (status(name_)->inflight_age == 0ms && status(name_)->job_count == 0) std::this_thread::sleep_for(1ms);
  CallOptions quick = call_;
  quick.timeout = 30ms;
  auto r = with_node([&](Context&) { second_ran = true; }, quick);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Errc::node_timeout);
  EXPECT_NE(r.error().message.find("withdrawn"), std::string::npos);
  release = true;
  blocker.join();
  EXPECT_TRUE(with_node([](Context&) {}, call_).has_value());  // runs after the blocker
  EXPECT_FALSE(second_ran.load());
  EXPECT_EQ(status(name_)->withdrawn, 1u);
}

TEST_F(NodeTest, RunningJobFinishesAfterTimeoutAndLaterJobsRunAfterIt) {
  start_node(options());
  std::atomic<bool> finished{false};
  CallOptions quick = call_;
  quick.timeout = 20ms;
  auto r = with_node([&](Context&) {
    std::this_thread::sleep_for(200ms);
    finished = true;
    return 1;
  }, quick);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Errc::node_timeout);
  EXPECT_FALSE(finished.load());
  auto after = with_node([&](Context&) { return finished.load(); }, call_);
  ASSERT_TRUE(after.has_value());
  EXPECT_TRUE(*after);  // the timed-out job ran to completion first
  EXPECT_EQ(status(name_)->timeouts, 1u);
}

TEST_F(NodeTest, DefaultTimeoutComesFromTheEnvironment) {
  setenv("VKNODE_TIMEOUT_MS", "25", 1);
  start_node(options());
  unsetenv("VKNODE_TIMEOUT_MS");
  auto r = with_node([](Context&) { std::this_thread::sleep_for(150ms); }, call_);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Errc::node_timeout);
  CallOptions longer = call_;
  longer.timeout = 10s;
  EXPECT_TRUE(with_node([](Context&) { std::this_thread::sleep_for(50ms); }, longer).has_value());
}

TEST_F(NodeTest, ScratchStorePersistsPerClient) {
  start_node(options());
  CallOptions a = call_, b = call_;
  a.client = "a";
  b.client = "b";
  auto bump = [](Context& ctx) { return ++ctx.scratch().get_or_create<int>("counter", [] { return 0; }); };
  EXPECT_EQ(with_node(bump, a).value(), 1);
  EXPECT_EQ(with_node(bump, a).value(), 2);
  EXPECT_EQ(with_node(bump, b).value(), 1);
}

TEST_F(NodeTest, ExecRunsAProgramAndReturnsDownloads) {
  start_node(options());
  ASSERT_TRUE(create_buffer("x", {4096, ElementType::f32, {1024}}, call_).has_value());
  ASSERT_TRUE(create_buffer("y", {4096, ElementType::f32, {1024}}, call_).has_value());
  std::vector<float> x(1024), y(1024);
  for (int i = 0; i < 1024; ++i) x[i] = i, y[i] = 1000 - i;
  Program p;
  p.upload("x", 0, as_bytes_vec(x))
      .upload("y", 0, as_bytes_vec(y))
      .dispatch(builtin_kernel_id(BuiltinKernel::axpy_f32), {{0, "x"}, {1, "y"}}, push_bytes(AxpyPush{1024, 2.0f}),
                {4, 1, 1})
      .download("y", 0, 4096)
      .download("x", 4, 8);
  auto r = exec(p, call_);
  ASSERT_TRUE(r.has_value()) << r.error().to_string();
  ASSERT_EQ(r->downloads.size(), 2u);
  const auto got = from_bytes<float>(r->downloads[0]);
  for (int i = 0; i < 1024; ++i) ASSERT_EQ(got[i], 2.0f * i + (1000 - i));
  EXPECT_EQ(from_bytes<float>(r->downloads[1]), (std::vector<float>{1, 2}));
  EXPECT_EQ(status(name_)->exec_count, 1u);
}

TEST_F(NodeTest, ExecValidatesEverythingBeforeRunningAnything) {
  start_node(options());
  ASSERT_TRUE(create_buffer("b", {256}, call_).has_value());
  const std::vector<std::byte> ones(256, std::byte{1});
  auto bad = [&](Program p, Errc code) {
    auto r = exec(p, call_);
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().code, code) << r.error().to_string();
    // The upload at step 0 must not have happened.
    auto now = read_buffer("b", 0, 0, call_);
    ASSERT_TRUE(now.has_value());
    EXPECT_EQ((*now)[0], std::byte{0});
  };
  bad(Program().upload("b", 0, ones).download("missing", 0, 4), Errc::not_found);
  bad(Program().upload("b", 0, ones).download("b", 200, 100), Errc::invalid_argument);
  bad(Program().upload("b", 0, ones).fill("b", 2, 4, 0), Errc::invalid_argument);
  bad(Program().upload("b", 0, ones).copy("b", 0, "b", 8, 16), Errc::invalid_argument);
  KernelId unknown{};
  unknown[0] = 1;
  bad(Program().upload("b", 0, ones).dispatch(unknown, {}, {}, {1, 1, 1}), Errc::not_found);
  bad(Program().upload("b", 0, ones).dispatch(builtin_kernel_id(BuiltinKernel::fill_u32), {{0, "b"}},
                                              push_bytes(uint32_t{1}), {1, 1, 1}),
      Errc::invalid_argument);
}

TEST_F(NodeTest, RegistryHonoursTheBudgetAndReportsNames) {
  NodeOptions o = options();
  o.memory_budget = 1 << 20;
  start_node(o);
  ASSERT_TRUE(create_buffer("a", {600 << 10}, call_).has_value());
  auto over = create_buffer("b", {600 << 10}, call_);
  ASSERT_FALSE(over.has_value());
  EXPECT_EQ(over.error().code, Errc::quota_exceeded);
  EXPECT_EQ(create_buffer("a", {16}, call_).error().code, Errc::already_exists);
  EXPECT_EQ(create_buffer("bad name!", {16}, call_).error().code, Errc::invalid_argument);
  EXPECT_EQ(create_buffer("s", {16, ElementType::f32, {5}}, call_).error().code, Errc::invalid_argument);
  auto list = list_buffers(call_);
  ASSERT_TRUE(list.has_value());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].name, "a");
  EXPECT_EQ(status(name_)->registry_bytes, 600u << 10);
  ASSERT_TRUE(delete_buffer("a", call_).has_value());
  EXPECT_EQ(delete_buffer("a", call_).error().code, Errc::not_found);
  EXPECT_TRUE(create_buffer("b", {600 << 10}, call_).has_value());
}

// Calls find a node by name each time: after a stop they get node_dead, and after a start
// under the same name they reach the new node (not one remembered from before).
TEST_F(NodeTest, CallsFollowANodeRestartedUnderItsName) {
  start_node(options());
  ASSERT_TRUE(with_node([](Context&) {}, call_).has_value());
  ASSERT_TRUE(exec(Program{}, call_).has_value());
  ASSERT_TRUE(stop(name_).has_value());
  EXPECT_EQ(with_node([](Context&) {}, call_).error().code, Errc::node_dead);
  EXPECT_EQ(exec(Program{}, call_).error().code, Errc::node_dead);
  start_node(options());
  ASSERT_TRUE(with_node([](Context&) {}, call_).has_value());
  ASSERT_TRUE(exec(Program{}, call_).has_value());
  const auto s = status(name_);
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->job_count, 2u);  // this node's own, not the first one's
  EXPECT_EQ(s->exec_count, 1u);
  // A node started under another name in between moves every thread's lookup on.
  NodeOptions other = options();
  other.name = name_ + "-other";
  ASSERT_TRUE(start(other).has_value());
  CallOptions to_other = call_;
  to_other.node = other.name;
  ASSERT_TRUE(with_node([](Context&) {}, to_other).has_value());
  ASSERT_TRUE(with_node([](Context&) {}, call_).has_value());
  EXPECT_EQ(status(name_)->job_count, 3u);
  EXPECT_EQ(status(other.name)->job_count, 1u);
  ASSERT_TRUE(stop(other.name).has_value());
}

// ctx.kernel() answers from what it found lately only while the kernel cache is unchanged:
// a kernel erased from it is not_found at once, and one built again is the new one.
TEST_F(NodeTest, KernelLookupFollowsTheKernelCache) {
  start_node(options());
  const KernelId copy = builtin_kernel_id(BuiltinKernel::copy_u32);
  auto r = with_node([&](Context& ctx) -> Result<void> {
    auto first = ctx.kernel(copy);
    if (!first) return fail(first.error());
    auto again = ctx.kernel(copy);
    if (!again || *again != *first) return fail(Errc::job_failed, "a second lookup found another kernel");
    if (!ctx.kernels().erase(copy)) return fail(Errc::job_failed, "copy_u32 was not in the cache");
    auto gone = ctx.kernel(copy);
    if (gone || gone.error().code != Errc::not_found) return fail(Errc::job_failed, "an erased kernel was still found");
    auto rebuilt = ctx.kernels().get_or_create(builtin_spirv(BuiltinKernel::copy_u32), {}, "copy_u32");
    if (!rebuilt) return fail(rebuilt.error());
    auto found = ctx.kernel(copy);
    if (!found || *found != rebuilt->get()) return fail(Errc::job_failed, "the lookup did not find the rebuilt kernel");
    return {};
  }, call_);
  ASSERT_TRUE(r.has_value()) << r.error().to_string();
  // A Program using it runs (its lookup goes through the same path).
  ASSERT_TRUE(create_buffer("src", {256}, call_).has_value());
  ASSERT_TRUE(create_buffer("dst", {256}, call_).has_value());
  const std::vector<uint32_t> words(64, 7);
  Program p;
  p.upload("src", 0, as_bytes_vec(words));
  p.dispatch(copy, {{0, "src"}, {1, "dst"}}, push_bytes(CopyPush{64}), {1, 1, 1});
  p.download("dst", 0, 256);
  auto out = exec(p, call_);
  ASSERT_TRUE(out.has_value()) << out.error().to_string();
  EXPECT_EQ(from_bytes<uint32_t>(out->downloads[0]), words);
}

// status() shows what a with_node job changed (buffers, kernels, pipelines) once the job
// returns; a job that changes nothing leaves every figure as it was.
TEST_F(NodeTest, StatusShowsWhatEachJobChanged) {
  start_node(options());
  const auto before = status(name_);
  ASSERT_TRUE(before.has_value());
  ASSERT_TRUE(with_node([](Context&) {}, call_).has_value());
  const auto unchanged = status(name_);
  EXPECT_EQ(unchanged->registry_bytes, before->registry_bytes);
  EXPECT_EQ(unchanged->buffer_count, before->buffer_count);
  EXPECT_EQ(unchanged->kernel_count, before->kernel_count);

  const KernelId copy = builtin_kernel_id(BuiltinKernel::copy_u32);
  ASSERT_TRUE(with_node([&](Context& ctx) -> Result<void> {
    if (!ctx.kernels().erase(copy)) return fail(Errc::not_found, "copy_u32 was not in the cache");
    return ctx.buffers().create(ctx.device(), "made_in_a_job", {4096});
  }, call_).has_value());
  const auto grown = status(name_);
  EXPECT_EQ(grown->registry_bytes, before->registry_bytes + 4096);
  EXPECT_EQ(grown->buffer_count, before->buffer_count + 1);
  EXPECT_EQ(grown->kernel_count, before->kernel_count - 1);

  ASSERT_TRUE(with_node([&](Context& ctx) -> Result<void> {
    auto kernel = ctx.kernels().get_or_create(builtin_spirv(BuiltinKernel::copy_u32), {}, "copy_u32");
    if (!kernel) return fail(kernel.error());
    return ctx.buffers().remove("made_in_a_job");
  }, call_).has_value());
  const auto back = status(name_);
  EXPECT_EQ(back->registry_bytes, before->registry_bytes);
  EXPECT_EQ(back->buffer_count, before->buffer_count);
  EXPECT_EQ(back->kernel_count, before->kernel_count);
}

TEST_F(NodeTest, ReadsAndWritesRanges) {
  start_node(options());
  ASSERT_TRUE(create_buffer("r", {1024}, call_).has_value());
  std::vector<std::byte> data(100);
  for (int i = 0; i < 100; ++i) data[i] = std::byte(i);
  ASSERT_TRUE(write_buffer("r", 500, data, call_).has_value());
  auto back = read_buffer("r", 500, 100, call_);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(*back, data);
  EXPECT_EQ(read_buffer("r", 1000, 100, call_).error().code, Errc::invalid_argument);
  EXPECT_EQ(write_buffer("r", 1000, data, call_).error().code, Errc::invalid_argument);
  EXPECT_EQ(read_buffer("nope", 0, 0, call_).error().code, Errc::not_found);
}

TEST_F(NodeTest, ZeroCopyReadsAndWritesHonourDeadlines) {
  start_node(options());
  ASSERT_TRUE(create_buffer("z", {8 << 20}, call_).has_value());  // above the in-place write limit
  auto src = std::make_shared<std::vector<std::byte>>(8 << 20);
  for (size_t i = 0; i < src->size(); ++i) (*src)[i] = std::byte(i * 13);
  CallOptions timed = call_;
  timed.timeout = 30s;
  ASSERT_TRUE(write_buffer("z", 0, *src, src, timed).has_value());
  auto dst = std::make_shared<std::vector<std::byte>>(src->size());
  ASSERT_TRUE(read_buffer_into("z", 0, *dst, dst, timed).has_value());
  EXPECT_EQ(*dst, *src);
  // Without an owner, a deadline is refused: the node could write memory the caller freed.
  std::vector<std::byte> plain(16);
  EXPECT_EQ(read_buffer_into("z", 0, plain, nullptr, timed).error().code, Errc::invalid_argument);
  ASSERT_TRUE(read_buffer_into("z", 16, plain, nullptr, call_).has_value());  // no deadline: fine
  EXPECT_TRUE(std::equal(plain.begin(), plain.end(), src->begin() + 16));
  // The copying write (with a deadline) and the borrowing one (without) land alike.
  std::vector<std::byte> small(64, std::byte{9});
  ASSERT_TRUE(write_buffer("z", 100, small, timed).has_value());
  ASSERT_TRUE(write_buffer("z", 200, small, call_).has_value());
  auto back = read_buffer("z", 100, 164, call_);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ((*back)[0], std::byte{9});
  EXPECT_EQ((*back)[163], std::byte{9});
}

TEST_F(NodeTest, DeviceLossRecoversWithDurableBuffersIntact) {
  start_node(options());
  ASSERT_TRUE(create_buffer("keep", {1024, ElementType::u32, {256}, true}, call_).has_value());
  ASSERT_TRUE(create_buffer("lose", {1024}, call_).has_value());
  std::vector<uint32_t> v(256);
  for (uint32_t i = 0; i < 256; ++i) v[i] = i * 3 + 1;
  ASSERT_TRUE(write_buffer("keep", 0, as_bytes_vec(v), call_).has_value());
  ASSERT_TRUE(TEST_inject(name_, 1, 0, 0).has_value());
  auto lost = exec(Program().fill("lose", 0, 1024, 5), call_);
  ASSERT_FALSE(lost.has_value());
  EXPECT_EQ(lost.error().code, Errc::device_lost);
  // The node rebuilt its device and serves again.
  auto keep = read_buffer("keep", 0, 0, call_);
  ASSERT_TRUE(keep.has_value()) << keep.error().to_string();
  EXPECT_EQ(from_bytes<uint32_t>(*keep), v);
  auto gone = read_buffer("lose", 0, 0, call_);
  ASSERT_FALSE(gone.has_value());
  EXPECT_EQ(gone.error().code, Errc::device_lost);
  auto s = status(name_);  // the reads above were queued behind the recovery
  EXPECT_EQ(s->device_resets, 1u);
  EXPECT_EQ(s->health, NodeHealth::ready);
  // Built-in kernels came back too.
  EXPECT_TRUE(exec(Program().fill("keep", 0, 4, 9).download("keep", 0, 4), call_).has_value());
}

TEST_F(NodeTest, SurvivesManyDeviceResetsInOneProcess) {
  start_node(options());
  ASSERT_TRUE(create_buffer("keep", {256, ElementType::u32, {64}, true}, call_).has_value());
  ASSERT_TRUE(exec(Program().fill("keep", 0, 256, 42), call_).has_value());
  constexpr int kResets = 40;  // more than some drivers allow instances per process
  for (int i = 0; i < kResets; ++i) {
    ASSERT_TRUE(TEST_inject(name_, 1, 0, 0).has_value());
    auto lost = exec(Program().fill("keep", 0, 4, 1), call_);
    ASSERT_FALSE(lost.has_value());
    ASSERT_EQ(lost.error().code, Errc::device_lost) << "reset " << i;
  }
  auto keep = read_buffer("keep", 0, 0, call_);
  ASSERT_TRUE(keep.has_value()) << keep.error().to_string();
  EXPECT_EQ(from_bytes<uint32_t>(*keep), std::vector<uint32_t>(64, 42));
  EXPECT_EQ(status(name_)->device_resets, static_cast<uint64_t>(kResets));
}

TEST_F(NodeTest, HungGpuWaitIsTreatedAsDeviceLoss) {
  NodeOptions o = options();
  o.hang_limit = 50ms;
  start_node(o);
  ASSERT_TRUE(create_buffer("spin_out", {64 * 16 * 4}, call_).has_value());
  ASSERT_TRUE(TEST_inject(name_, 0, 1, 0).has_value());
  auto r = exec(spin_program(10), call_);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Errc::device_lost);
  EXPECT_NE(r.error().message.find("hang"), std::string::npos);
  ASSERT_TRUE(with_node([](Context&) {}, call_).has_value());  // queued behind the recovery
  EXPECT_EQ(status(name_)->device_resets, 1u);
  EXPECT_TRUE(alive(name_));
}

TEST_F(NodeTest, KernelIsQuarantinedAfterConsecutiveTimeouts) {
  NodeOptions o = options();
  o.quarantine_after = 2;
  o.quarantine_cooldown = 60s;
  start_node(o);
  ASSERT_TRUE(create_buffer("spin_out", {64 * 16 * 4}, call_).has_value());
  CallOptions quick = call_;
  quick.timeout = 10ms;
  const KernelId spin = builtin_kernel_id(BuiltinKernel::spin);
  // A call only counts when its job was running at the deadline; under load one may still
  // be queued then (withdrawn, not counted), so try until two running jobs timed out.
  for (int attempt = 0; attempt < 10; ++attempt) {
    const auto s = status(name_);
    if (s->timeouts - s->withdrawn >= 2) break;
    auto r = exec(spin_program(10'000'000), quick);
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().code, Errc::node_timeout);
    // Drain, so that the next call starts running at once.
    ASSERT_TRUE(with_node([](Context&) {}, call_).has_value());
  }
  ASSERT_GE(status(name_)->timeouts - status(name_)->withdrawn, 2u);
  // Now a call using the kernel fails fast.
  auto q = exec(spin_program(1), call_);
  ASSERT_FALSE(q.has_value());
  EXPECT_EQ(q.error().code, Errc::kernel_quarantined);
  EXPECT_EQ(status(name_)->quarantined_kernels, 1u);
  ASSERT_TRUE(clear_quarantine(spin, name_).has_value());
  EXPECT_TRUE(exec(spin_program(1), call_).has_value());
}

TEST_F(NodeTest, SupervisorRestartsACrashedNode) {
  start_node(options());
  ASSERT_TRUE(create_buffer("d", {64, ElementType::bytes, {}, true}, call_).has_value());
  ASSERT_TRUE(TEST_crash(name_).has_value());
  // Calls during the restart get node_dead at once or succeed after it.
  for (int i = 0; i < 500 && status(name_)->restarts == 0; ++i) std::this_thread::sleep_for(5ms);
  for (int i = 0; i < 500 && !alive(name_); ++i) std::this_thread::sleep_for(5ms);
  EXPECT_TRUE(alive(name_));
  EXPECT_GE(status(name_)->restarts, 1u);
  EXPECT_TRUE(read_buffer("d", 0, 0, call_).has_value());  // durable buffer restored
}

TEST_F(NodeTest, SupervisorRetriesFailedInitialisationThenGivesUp) {
  NodeOptions o = options();
  o.TEST_fail_initializations = 2;
  o.max_restarts = 5;
  auto r = start(o);
  ASSERT_FALSE(r.has_value());  // the first failure is reported to the starter
  for (int i = 0; i < 500 && !alive(name_); ++i) std::this_thread::sleep_for(5ms);
  EXPECT_TRUE(alive(name_));
  EXPECT_EQ(status(name_)->restarts, 2u);
  ASSERT_TRUE(stop(name_).has_value());

  NodeOptions never = options();
  never.TEST_fail_initializations = 100;
  never.max_restarts = 3;
  EXPECT_FALSE(start(never).has_value());
  for (int i = 0; i < 500 && status(name_)->restarts < 3; ++i) std::this_thread::sleep_for(5ms);
  std::this_thread::sleep_for(100ms);
  EXPECT_FALSE(alive(name_));
  EXPECT_EQ(with_node([](Context&) {}, call_).error().code, Errc::node_dead);
  EXPECT_EQ(status(name_)->health, NodeHealth::down);
  EXPECT_TRUE(start(options()).has_value());  // a node that gave up can be replaced
}

TEST_F(NodeTest, ASecondProcessStartsWarmFromTheFirstOnesCache) {
  start_node(options());
  ASSERT_TRUE(register_kernel(builtin_spirv(BuiltinKernel::axpy_f32), {}, "axpy", call_).has_value());
  ASSERT_TRUE(stop(name_).has_value());  // persists the pipeline cache and the kernel layouts
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // The second process: a fresh node on the same cache directory.
    close(fds[0]);
    NodeOptions o = options();
    int code = 1;
    if (start(o)) {
      auto s = status(o.name);
      auto rebuilt = with_node([](Context& ctx) {
        return ctx.pipeline_cache().stats();
      }, CallOptions{o.name, {}, {}});
      if (s && rebuilt) {
        const std::string line = std::to_string(s->cache_hits) + " " + std::to_string(s->cache_misses) + " " +
                                 std::to_string(rebuilt->loaded_bytes) + " " + std::to_string(rebuilt->layouts);
        code = write(fds[1], line.data(), line.size()) == static_cast<ssize_t>(line.size()) ? 0 : 1;
      }
      (void)stop(o.name);
    }
    _exit(code);
  }
  close(fds[1]);
  char buf[128] = {};
  const ssize_t n = read(fds[0], buf, sizeof buf - 1);
  close(fds[0]);
  int wstatus = 0;
  ASSERT_EQ(waitpid(pid, &wstatus, 0), pid);
  ASSERT_TRUE(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0) << "child failed";
  ASSERT_GT(n, 0);
  unsigned long long hits = 0, misses = 0, loaded = 0, layouts = 0;
  ASSERT_EQ(std::sscanf(buf, "%llu %llu %llu %llu", &hits, &misses, &loaded, &layouts), 4) << buf;
  EXPECT_GT(loaded, 0u) << "the second process did not load the first one's pipeline cache";
  EXPECT_GE(layouts, all_builtin_kernels().size()) << "kernel layouts were not carried over";
  if (loaded > 32) {
    // The driver keeps pipelines in its cache (NVIDIA does; lavapipe 22.3 does not):
    // then the second process compiles nothing it had before.
    EXPECT_GE(hits, all_builtin_kernels().size());
    EXPECT_EQ(misses, 0u);
  }
}

TEST_F(NodeTest, RegisteredKernelsSurviveAndPipelineCachePersistsAtStop) {
  NodeOptions o = options();
  start_node(o);
  auto id = register_kernel(builtin_spirv(BuiltinKernel::copy_u32), {}, "my_copy", call_);
  ASSERT_TRUE(id.has_value());
  EXPECT_EQ(*id, builtin_kernel_id(BuiltinKernel::copy_u32));
  std::vector<uint32_t> bogus = {1, 2, 3};
  EXPECT_EQ(register_kernel(bogus, {}, "bad", call_).error().code, Errc::invalid_spirv);
  const std::string cache_path = status(name_)->cache_path;
  ASSERT_TRUE(stop(name_).has_value());
  EXPECT_TRUE(fs::exists(cache_path));
}


// Collects the completions of asynchronous jobs; wait_for() returns once `n` arrived.
class Completions {
 public:
  detail::JobDone callback() {
    return [this](Result<void> r) {
      std::lock_guard lock(mu_);
      results_.push_back(std::move(r));
      at_.push_back(std::chrono::steady_clock::now());
      cv_.notify_all();
    };
  }
  bool wait_for(size_t n, std::chrono::milliseconds limit = 10s) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, limit, [&] { return results_.size() >= n; });
  }
  std::vector<Result<void>> results() {
    std::lock_guard lock(mu_);
    return results_;
  }
  std::chrono::steady_clock::time_point at(size_t i) {
    std::lock_guard lock(mu_);
    return at_.at(i);
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Result<void>> results_;
  std::vector<std::chrono::steady_clock::time_point> at_;
};

TEST_F(NodeTest, ExecAsyncAnswersEveryProgramOnceOnTheNodeThread) {
  start_node(options());
  ASSERT_TRUE(create_buffer("x", {64, ElementType::u32, {16}}, call_).has_value());
  const std::thread::id node_thread = *with_node([](Context&) { return std::this_thread::get_id(); }, call_);
  constexpr int kJobs = 50;
  std::mutex mu;
  std::condition_variable cv;
  std::vector<int> answers(kJobs, 0);
  std::vector<uint32_t> got(kJobs, 0);
  int done = 0;
  bool all_on_node = true;
  for (int i = 0; i < kJobs; ++i) {
    Program p;
    p.fill("x", 0, 64, static_cast<uint32_t>(i)).download("x", 0, 4);
    auto r = exec_async(std::move(p), call_, [&, i](Result<ProgramResult> result) {
      std::lock_guard lock(mu);
      ++answers[i];
      all_on_node = all_on_node && std::this_thread::get_id() == node_thread;
      if (result && result->downloads.size() == 1) got[i] = from_bytes<uint32_t>(result->downloads[0])[0];
      ++done;
      cv.notify_all();
    });
    ASSERT_TRUE(r.has_value()) << r.error().to_string();
  }
  std::unique_lock lock(mu);
  ASSERT_TRUE(cv.wait_for(lock, 20s, [&] { return done == kJobs; }));
  lock.unlock();
  std::this_thread::sleep_for(20ms);  // a second answer would come now
  lock.lock();
  for (int i = 0; i < kJobs; ++i) {
    EXPECT_EQ(answers[i], 1) << "job " << i;
    EXPECT_EQ(got[i], static_cast<uint32_t>(i)) << "job " << i;  // in order, each its own result
  }
  EXPECT_TRUE(all_on_node);
  lock.unlock();
  EXPECT_EQ(status(name_)->exec_count, static_cast<uint64_t>(kJobs));
}

TEST_F(NodeTest, ExecAsyncReportsErrorsAndRefusesWorkOnAStoppedNode) {
  start_node(options());
  Completions c;
  Program bad;
  bad.download("missing", 0, 4);
  ASSERT_TRUE(exec_async(std::move(bad), call_, [cb = c.callback()](Result<ProgramResult> r) {
    cb(r ? Result<void>() : Result<void>(fail(r.error())));
  }).has_value());
  ASSERT_TRUE(c.wait_for(1));
  ASSERT_FALSE(c.results()[0].has_value());
  EXPECT_EQ(c.results()[0].error().code, Errc::not_found);
  ASSERT_TRUE(stop(name_).has_value());
  bool called = false;
  Program p;
  p.fill("x", 0, 4, 1);
  auto r = exec_async(std::move(p), call_, [&](Result<ProgramResult>) { called = true; });
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Errc::node_dead);
  EXPECT_FALSE(called);
}

TEST_F(NodeTest, AsyncJobQueuedPastItsDeadlineIsWithdrawnAndAnsweredOnTime) {
  start_node(options());
  std::atomic<bool> release{false}, second_ran{false};
  Completions c;
  ASSERT_TRUE(detail::submit_job(call_, [&](Context&) -> Result<void> {
    while (!release.load()) std::this_thread::sleep_for(1ms);
    return {};
  }, {}, c.callback()).has_value());
  CallOptions quick = call_;
  quick.timeout = 30ms;
  const auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(detail::submit_job(quick, [&](Context&) -> Result<void> {
    second_ran = true;
    return {};
  }, {}, c.callback()).has_value());
  ASSERT_TRUE(c.wait_for(1));  // the deadline answers while the first job still runs
  EXPECT_LT(c.at(0) - start, 2s);
  ASSERT_FALSE(c.results()[0].has_value());
  EXPECT_EQ(c.results()[0].error().code, Errc::node_timeout);
  EXPECT_NE(c.results()[0].error().message.find("withdrawn"), std::string::npos);
  release = true;
  ASSERT_TRUE(c.wait_for(2));
  EXPECT_TRUE(c.results()[1].has_value());
  EXPECT_TRUE(with_node([](Context&) {}, call_).has_value());
  EXPECT_FALSE(second_ran.load());
  EXPECT_EQ(c.results().size(), 2u);  // one answer each
  EXPECT_EQ(status(name_)->withdrawn, 1u);
}

TEST_F(NodeTest, AsyncJobRunningAtItsDeadlineIsAnsweredThenFinishesUnheard) {
  start_node(options());
  std::atomic<bool> finished{false};
  Completions c;
  CallOptions quick = call_;
  quick.timeout = 20ms;
  ASSERT_TRUE(detail::submit_job(quick, [&](Context&) -> Result<void> {
    std::this_thread::sleep_for(200ms);
    finished = true;
    return {};
  }, {}, c.callback()).has_value());
  ASSERT_TRUE(c.wait_for(1));
  EXPECT_FALSE(finished.load());
  ASSERT_FALSE(c.results()[0].has_value());
  EXPECT_EQ(c.results()[0].error().code, Errc::node_timeout);
  auto after = with_node([&](Context&) { return finished.load(); }, call_);
  ASSERT_TRUE(after.has_value());
  EXPECT_TRUE(*after);  // it ran to the end, after its caller was answered
  EXPECT_EQ(c.results().size(), 1u);  // and its result was dropped
  EXPECT_EQ(status(name_)->timeouts, 1u);
}

TEST_F(NodeTest, AsyncJobsQueuedAtStopAreEachAnsweredOnce) {
  start_node(options());
  std::atomic<bool> release{false};
  Completions c;
  ASSERT_TRUE(detail::submit_job(call_, [&](Context&) -> Result<void> {
    while (!release.load()) std::this_thread::sleep_for(1ms);
    return {};
  }, {}, c.callback()).has_value());
  CallOptions with_deadline = call_;
  with_deadline.timeout = 60s;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(detail::submit_job(with_deadline, [](Context&) -> Result<void> { return {}; }, {},
                                   c.callback()).has_value());
  }
  std::thread stopper([&] { (void)stop(name_); });
  std::this_thread::sleep_for(20ms);
  release = true;
  stopper.join();
  ASSERT_TRUE(c.wait_for(4, 1s));
  // Stopping finishes queued work (node.h); each job is answered exactly once either way.
  EXPECT_EQ(c.results().size(), 4u);
}

}  // namespace
}  // namespace vkn
