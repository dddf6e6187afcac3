// GpuLeapfrogBackend through the daemon (a NodeTarget over vkn::Client): a daemon with a real
// node (lavapipe in CI) on a temporary socket, in this process. A run through it recovers a
// known posterior and agrees with a CPU run of the same seed; the backend's buffers live in the
// daemon only as long as the backend; daemon errors come back unchanged; a daemon that stops
// mid-run, or a `vknode serve` child killed with SIGKILL mid-run, makes the run finish on the
// CPU.
#include "vknode/sampler/daemon_target.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <functional>

#include "sampler/test_models.h"
#include "server_fixture.h"
#include "vknode/sampler/hmc.h"
#include "vknode/sampler/models.h"

namespace vkn::sampler {
namespace {

using server::testing::ServerFixture;

// Mean and variance of every output over all chains and draws.
struct Moments {
  std::vector<double> mean, var;
};
Moments moments(const SampleResult& r) {
  Moments m;
  for (size_t k = 0; k < r.num_params(); ++k) {
    const auto x = r.param_draws(k);
    double mean = 0, var = 0;
    for (double v : x) mean += v;
    mean /= static_cast<double>(x.size());
    for (double v : x) var += (v - mean) * (v - mean);
    m.mean.push_back(mean);
    m.var.push_back(var / static_cast<double>(x.size() - 1));
  }
  return m;
}

// Forwards to a backend and calls `before(n)` before its n-th advance() (from 0): how a test
// stops the daemon between two calls of a run.
class HookedBackend final : public LeapfrogBackend {
 public:
  HookedBackend(LeapfrogBackend& inner, std::function<void(int)> before)
      : inner_(inner), before_(std::move(before)) {}
  std::string_view name() const override { return inner_.name(); }
  Result<void> advance(std::span<ChainState> states, const AdvanceRequest& request,
                       AdvanceOutput& out) override {
    before_(advances_++);
    return inner_.advance(states, request, out);
  }
  Result<TrajectoryBatch> trajectories(const TrajectoryRequest& request) override {
    return inner_.trajectories(request);
  }
  int advances() const { return advances_; }

 private:
  LeapfrogBackend& inner_;
  std::function<void(int)> before_;
  int advances_ = 0;
};

class DaemonTargetTest : public ServerFixture {
 protected:
  server::ServerOptions options() override {
    server::ServerOptions o = ServerFixture::options();
    o.TEST_backend = nullptr;  // a real node
    o.node.cache_dir = dir_ / "cache";
    return o;
  }
  void TearDown() override {
    if (server_) {
      auto c = connect();
      if (c) {
        auto st = (*c)->status();
        ASSERT_TRUE(st.has_value()) << st.error().to_string();
        for (const NodeStatus& n : st->devices) {
          EXPECT_EQ(n.validation_errors, 0u) << "validation errors on the daemon's device";
        }
      }
    }
    ServerFixture::TearDown();
  }

  ClientOptions client_options() const {
    ClientOptions o;
    o.socket_path = socket();
    o.name = "sampler-test";
    return o;
  }
  static GpuBackendOptions backend_options() {
    GpuBackendOptions o;
    o.call.timeout = std::chrono::seconds(120);
    return o;
  }
  std::unique_ptr<GpuLeapfrogBackend> backend(const Model& model) {
    auto b = create_daemon_backend(model, backend_options(), client_options());
    EXPECT_TRUE(b.has_value()) << b.error().to_string();
    return b ? std::move(*b) : nullptr;
  }
  // The daemon's count of Programs run on its node.
  uint64_t daemon_execs() {
    auto c = connect();
    if (!c) return 0;
    auto st = (*c)->status();
    return st && !st->devices.empty() ? st->devices[0].exec_count : 0;
  }
  // This user's buffers in the daemon whose names start with "sampler.<this pid>.".
  std::vector<std::string> sampler_buffers() {
    std::vector<std::string> names;
    auto c = connect();
    EXPECT_TRUE(c.has_value());
    if (!c) return names;
    auto list = (*c)->list_buffers();
    EXPECT_TRUE(list.has_value()) << list.error().to_string();
    if (!list) return names;
    const std::string prefix = "sampler." + std::to_string(::getpid()) + ".";
    for (const BufferListEntry& e : *list) {
      if (e.info.name.rfind(prefix, 0) == 0) names.push_back(e.info.name);
    }
    return names;
  }
};

TEST_F(DaemonTargetTest, RecoversKnownPosteriorLikeTheCpu) {
  // theta ~ N(1, 2^2) in 4 dimensions; 64 chains x 200 draws, as GpuBackendTest's
  // RecoversKnownPosteriorMoments: mean's MC sd about 0.045 (bound 0.2), variance's about 0.13
  // (bound 0.8). The CPU run of the same seed is statistically equal, not identical (f32, GLSL
  // sin/cos): its moments differ from the daemon run's by at most the sum of both errors.
  start_server();
  auto model = testing::must(make_normal(4, 1.0, 2.0));
  auto gpu = backend(*model);
  ASSERT_NE(gpu, nullptr);
  EXPECT_EQ(gpu->name().rfind("gpu:", 0), 0u) << gpu->name();
  const uint64_t execs_before = daemon_execs();
  SamplerConfig config = testing::sampler_config(64, 150, 200, 8, 99, 2);
  auto r = sample(*model, config, gpu.get());
  ASSERT_TRUE(r.has_value()) << r.error().to_string();
  EXPECT_EQ(r->backend.rfind("gpu:", 0), 0u) << r->backend;
  EXPECT_TRUE(r->fallback_reason.empty()) << r->fallback_reason;
  // Every Program went through the daemon's node.
  EXPECT_GT(gpu->stats().programs, 0u);
  EXPECT_GE(daemon_execs() - execs_before, gpu->stats().programs);

  auto cpu = sample(*model, config, nullptr);
  ASSERT_TRUE(cpu.has_value()) << cpu.error().to_string();
  EXPECT_EQ(cpu->backend, "cpu");
  const Moments g = moments(*r), c = moments(*cpu);
  for (size_t k = 0; k < 4; ++k) {
    EXPECT_NEAR(g.mean[k], 1.0, 0.2) << k;
    EXPECT_NEAR(g.var[k], 4.0, 0.8) << k;
    EXPECT_NEAR(g.mean[k], c.mean[k], 0.3) << k;
    EXPECT_NEAR(g.var[k], c.var[k], 1.2) << k;
  }
}

TEST_F(DaemonTargetTest, LogisticPosteriorMatchesACpuRun) {
  // A model with data sets (durable daemon buffers): as GpuBackendTest's
  // LogisticPosteriorMatchesACpuRun (posterior sds about 0.25, bound 0.06 on 32 x 100 draws).
  start_server();
  const auto data = testing::make_logistic_data(100, 3, 21);
  auto model = testing::must(make_logistic_regression(3, data.x, data.y));
  auto gpu = backend(*model);
  ASSERT_NE(gpu, nullptr);
  SamplerConfig config = testing::sampler_config(32, 100, 100, 8, 1, 2);
  auto g = sample(*model, config, gpu.get());
  ASSERT_TRUE(g.has_value()) << g.error().to_string();
  EXPECT_EQ(g->backend.rfind("gpu:", 0), 0u) << g->backend;
  EXPECT_TRUE(g->fallback_reason.empty()) << g->fallback_reason;
  auto c = sample(*model, config, nullptr);
  ASSERT_TRUE(c.has_value()) << c.error().to_string();
  const Moments gm = moments(*g), cm = moments(*c);
  ASSERT_GE(gm.mean.size(), data.beta.size());
  for (size_t k = 0; k < data.beta.size(); ++k) {
    EXPECT_NEAR(gm.mean[k], cm.mean[k], 0.06) << k;
    EXPECT_NEAR(gm.mean[k], data.beta[k], 1.0) << k;
  }
}

TEST_F(DaemonTargetTest, HeldOutputIsWhatAdvanceWouldHaveReturned) {
  // As GpuBackendTest's test of the same name: held through the daemon, collected in one go.
  start_server();
  const auto data = testing::make_logistic_data(50, 3, 5);
  auto model = testing::must(make_logistic_regression(3, data.x, data.y));
  auto gpu = backend(*model);
  ASSERT_NE(gpu, nullptr);
  auto sa = testing::chain_states(*model, 8, 0.05, 0.1), sb = sa;
  const std::vector<uint32_t> steps(12, 4);
  AdvanceOutput oa, ob, held;
  ASSERT_TRUE(gpu->advance(sa, {3, steps, 0.0, true, false}, oa).has_value());
  for (auto part : {std::span(steps).first(5), std::span(steps).subspan(5)}) {
    AdvanceRequest r{3, part, 0.0, true, false};
    r.hold_output = true;
    ASSERT_TRUE(gpu->advance(sb, r, held).has_value());
  }
  ASSERT_TRUE(gpu->collect(ob).has_value());
  EXPECT_EQ(ob.draws, oa.draws);
  ASSERT_EQ(ob.stats.size(), oa.stats.size());
  for (size_t i = 0; i < oa.stats.size(); ++i) EXPECT_EQ(ob.stats[i].energy, oa.stats[i].energy) << i;
}

TEST_F(DaemonTargetTest, BuffersLiveAsLongAsTheBackend) {
  start_server();
  const auto data = testing::make_logistic_data(50, 3, 5);
  auto model = testing::must(make_logistic_regression(3, data.x, data.y));
  auto gpu = backend(*model);
  ASSERT_NE(gpu, nullptr);
  std::vector<ChainState> states(4);
  for (uint32_t c = 0; c < states.size(); ++c) {
    states[c].chain = c;
    states[c].q.assign(model->dimension(), 0.1);
    states[c].grad.assign(model->dimension(), 0.0);
    states[c].inv_metric.assign(model->dimension(), 1.0);
    states[c].lp = model->log_density(states[c].q, states[c].grad);
    states[c].step_size = 0.1;
  }
  AdvanceRequest request;
  const uint32_t steps[] = {4, 4};
  request.steps = steps;
  request.seed = 3;
  AdvanceOutput out;
  auto r = gpu->advance(states, request, out);
  ASSERT_TRUE(r.has_value()) << r.error().to_string();
  EXPECT_EQ(states[0].iteration, 2u);
  const auto live = sampler_buffers();
  EXPECT_GE(live.size(), 8u + 2u);  // states, stats, ... and the data sets X and y
  bool has_data = false;
  for (const auto& n : live) has_data = has_data || n.find(".data.") != std::string::npos;
  EXPECT_TRUE(has_data);
  gpu.reset();
  EXPECT_TRUE(sampler_buffers().empty());
}

TEST_F(DaemonTargetTest, DaemonErrorsComeBackUnchanged) {
  start_server();
  VKN_ASSERT_OK_AND_ASSIGN(client, connect());
  std::shared_ptr<Client> shared(std::move(client));
  auto target = make_daemon_target(shared);
  VKN_ASSERT_OK_AND_ASSIGN(device, target->device());
  EXPECT_FALSE(device.name.empty());
  EXPECT_GE(device.max_workgroup_invocations, 128u);
  DaemonTargetOptions elsewhere;
  elsewhere.device = 7;  // the daemon has one device node
  auto missing = make_daemon_target(shared, elsewhere)->device();
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code, Errc::not_found);
  BufferSpec small{64};
  auto nowhere = make_daemon_target(shared, elsewhere)->create_buffer("x", small);
  ASSERT_FALSE(nowhere.has_value());
  EXPECT_EQ(nowhere.error().code, Errc::not_found);
  std::vector<uint32_t> junk{0x07230203u, 1, 2, 3, 4, 5};
  auto k = target->register_kernel(junk, "junk");
  ASSERT_FALSE(k.has_value());
  EXPECT_EQ(k.error().code, Errc::invalid_spirv);
  Program p;
  p.download("no-such-buffer", 0, 16);
  auto e = target->exec(std::move(p));
  ASSERT_FALSE(e.has_value());
  EXPECT_EQ(e.error().code, Errc::not_found);
  auto d = target->delete_buffer("no-such-buffer");
  ASSERT_FALSE(d.has_value());
  EXPECT_EQ(d.error().code, Errc::not_found);
  stop_server();
  auto dead = target->device();
  ASSERT_FALSE(dead.has_value());
  EXPECT_EQ(dead.error().code, Errc::node_dead);
}

TEST_F(DaemonTargetTest, DaemonStoppedMidRunFinishesOnTheCpu) {
  start_server();
  auto model = testing::must(make_normal(3, 1.0, 2.0));
  auto gpu = backend(*model);
  ASSERT_NE(gpu, nullptr);
  // Stops the daemon before the 20th advance (inside warm-up): that call and every later one
  // find no daemon.
  constexpr int kStopBefore = 20;
  HookedBackend hooked(*gpu, [this](int n) {
    if (n == kStopBefore) stop_server();
  });
  SamplerConfig config = testing::sampler_config(16, 100, 200, 8, 7, 2);
  auto r = sample(*model, config, &hooked);
  ASSERT_TRUE(r.has_value()) << r.error().to_string();
  EXPECT_GT(hooked.advances(), kStopBefore);
  EXPECT_EQ(r->backend, "cpu");
  EXPECT_NE(r->fallback_reason.find("node_dead"), std::string::npos) << r->fallback_reason;
  ASSERT_EQ(r->values.size(), size_t{16} * 200 * 3);
  // The CPU finished the same run: the posterior is still right (16 x 200 draws; mean's MC sd
  // about 2 / sqrt(1000) = 0.06).
  const Moments m = moments(*r);
  for (size_t k = 0; k < 3; ++k) {
    EXPECT_NEAR(m.mean[k], 1.0, 0.35) << k;
    EXPECT_NEAR(m.var[k], 4.0, 1.2) << k;
  }
  // The backend's destructor, with no daemon, only fails quietly.
  gpu.reset();
}

#ifdef VKNODE_CLI
TEST_F(DaemonTargetTest, DaemonKilledMidRunFinishesOnTheCpu) {
  // `vknode serve` as a child process on this test's socket, killed with SIGKILL during
  // sampling: the call in flight (or the next one) is node_dead.
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const std::string sock = socket(), state = (dir_ / "state").native(),
                      cache = (dir_ / "cache").native();
    ::execl(VKNODE_CLI, "vknode", "serve", "--socket", sock.c_str(), "--state-dir", state.c_str(),
            "--cache-dir", cache.c_str(), "--snapshot-interval", "0", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  bool up = false;
  for (int i = 0; i < 600 && !up; ++i) {
    up = connect().has_value();
    if (!up) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (!up) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    FAIL() << "vknode serve did not answer";
  }
  auto model = testing::must(make_normal(3, 1.0, 2.0));
  auto gpu = backend(*model);
  ASSERT_NE(gpu, nullptr);
  bool killed = false, reaped = false;
  int status = 0;
  std::thread killer;
  // Warm-up has one advance() per iteration (100 here); the 110th is a sampling block. The
  // kill comes from another thread a moment after that call starts (in it or just after it);
  // the next call starts only once the daemon is gone.
  constexpr int kKillAt = 110;
  HookedBackend hooked(*gpu, [&](int n) {
    if (n == kKillAt) {
      killed = true;
      killer = std::thread([pid] {
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
        ::kill(pid, SIGKILL);
      });
    } else if (n == kKillAt + 1) {
      killer.join();
      reaped = ::waitpid(pid, &status, 0) == pid;
    }
  });
  SamplerConfig config = testing::sampler_config(16, 100, 400, 8, 5, 2);
  config.block_size = 20;
  auto r = sample(*model, config, &hooked);
  if (killer.joinable()) killer.join();
  // When the kill lands inside call 110, that call fails and the run moves to the CPU, so
  // there is no call 111 to reap the daemon: reap it here (the killer has already sent SIGKILL).
  if (!reaped) {
    if (!killed) ::kill(pid, SIGKILL);  // the run never got there: EXPECT_TRUE(killed) reports it
    reaped = ::waitpid(pid, &status, 0) == pid;
  }
  ASSERT_TRUE(r.has_value()) << r.error().to_string();
  EXPECT_TRUE(killed);
  EXPECT_TRUE(reaped);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  EXPECT_EQ(r->backend, "cpu");
  EXPECT_NE(r->fallback_reason.find("node_dead"), std::string::npos) << r->fallback_reason;
  ASSERT_EQ(r->values.size(), size_t{16} * 400 * 3);
  const Moments m = moments(*r);
  for (size_t k = 0; k < 3; ++k) {
    EXPECT_NEAR(m.mean[k], 1.0, 0.35) << k;
    EXPECT_NEAR(m.var[k], 4.0, 1.2) << k;
  }
  gpu.reset();
}
#endif

TEST_F(DaemonTargetTest, NoDaemonIsNodeDead) {
  auto model = testing::must(make_normal(3));
  auto r = create_daemon_backend(*model, backend_options(), client_options());
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Errc::node_dead) << r.error().to_string();
  EXPECT_TRUE(is_fallback_error(r.error()));
}

}  // namespace
}  // namespace vkn::sampler
