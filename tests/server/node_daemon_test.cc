// The daemon over a real node (lavapipe in CI): in-process for the data path, and as
// a child process (`vknode serve`) killed with SIGKILL and stopped with SIGTERM.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "server/snapshot.h"
#include "server_fixture.h"
#include "vknode/gpu/builtin_kernels.h"

namespace vkn::server::testing {
namespace {

using std::chrono::milliseconds;

template <typename T>
std::vector<std::byte> bytes_of(const T& v) {
  std::vector<std::byte> out(sizeof(v));
  std::memcpy(out.data(), &v, sizeof(v));
  return out;
}

// A job that keeps the device busy for a while: `steps` dispatches of philox_f32
// producing normals over an 8 Mi-element buffer (compute-heavy on lavapipe).
constexpr uint32_t kSlowJobElements = 8u << 20;
Program slow_job(const KernelId& philox, const std::string& buffer, int steps) {
  Program p;
  for (int i = 0; i < steps; ++i) {
    const PhiloxPush push{kSlowJobElements, 1, 2, static_cast<uint32_t>(i), 0, 1};
    p.steps.push_back(DispatchStep{philox,
                                   {NamedBinding{0, buffer, 0, 0}},
                                   bytes_of(push),
                                   {kSlowJobElements / kBuiltinWorkgroupSize, 1, 1}});
  }
  return p;
}

class NodeDaemonTest : public ServerFixture {
 protected:
  ServerOptions options() override {
    ServerOptions o = ServerFixture::options();
    o.TEST_backend = nullptr;  // a real node
    o.node.cache_dir = dir_ / "cache";
    return o;
  }

  // Starts `vknode serve` on this test's socket; waits until it answers.
  pid_t spawn_daemon(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"vknode", "serve", "--socket", socket(), "--state-dir", (dir_ / "state").native(),
                                     "--cache-dir", (dir_ / "cache").native(), "--snapshot-interval", "0"};
    args.insert(args.end(), extra.begin(), extra.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::execv(VKNODE_CLI, argv.data());
      ::_exit(127);
    }
    for (int i = 0; i < 600; ++i) {
      if (connect()) return pid;
      int status;
      if (::waitpid(pid, &status, WNOHANG) == pid) return -1;
      std::this_thread::sleep_for(milliseconds(50));
    }
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    return -1;
  }

  static int wait_exit(pid_t pid) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
};

TEST_F(NodeDaemonTest, BuiltinKernelAndTransfersThroughTheDaemon) {
  start_server();
  VKN_ASSERT_OK_AND_ASSIGN(client, connect(std::chrono::seconds(60)));
  VKN_ASSERT_OK_AND_ASSIGN(status, client->status());
  EXPECT_TRUE(status.ready);
  ASSERT_EQ(status.devices.size(), 1u);
  EXPECT_EQ(status.devices[0].health, NodeHealth::ready);

  // fill_u32 through exec, read back inline.
  constexpr uint32_t kCount = 1000;
  VKN_ASSERT_OK(client->create_buffer("f", BufferSpec{kCount * 4, ElementType::u32, {kCount}}));
  VKN_ASSERT_OK_AND_ASSIGN(fill, client->builtin_kernel_id(BuiltinKernel::fill_u32));
  Program p;
  p.steps.push_back(
      DispatchStep{fill,
                   {NamedBinding{0, "f", 0, 0}},
                   bytes_of(FillPush{kCount, 0xabcd1234u}),
                   {(kCount + kBuiltinWorkgroupSize - 1) / kBuiltinWorkgroupSize, 1, 1}});
  p.steps.push_back(DownloadStep{"f", 0, 16});
  VKN_ASSERT_OK_AND_ASSIGN(result, client->exec(p));
  ASSERT_EQ(result.downloads.size(), 1u);
  uint32_t first;
  std::memcpy(&first, result.downloads[0].data(), 4);
  EXPECT_EQ(first, 0xabcd1234u);

  // 4 MiB through memfds both ways.
  const size_t n = 4u << 20;
  std::vector<std::byte> data(n);
  for (size_t i = 0; i < n; ++i) data[i] = static_cast<std::byte>(i * 13 + 1);
  VKN_ASSERT_OK(client->create_buffer("big", BufferSpec{n}));
  VKN_ASSERT_OK(client->write_buffer("big", 0, data));
  std::vector<std::byte> back(n);
  VKN_ASSERT_OK(client->read_buffer_into("big", 0, back));
  EXPECT_TRUE(back == data);

  // Node errors come through unchanged.
  std::vector<uint32_t> junk{0x07230203u, 1, 2, 3, 4, 5};
  auto bad = client->register_kernel(junk);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, Errc::invalid_spirv);
  Program wrong;
  wrong.steps.push_back(
      DispatchStep{fill, {}, bytes_of(FillPush{1, 0}), {1, 1, 1}});  // binding 0 missing
  auto w = client->exec(wrong);
  ASSERT_FALSE(w);
  EXPECT_EQ(w.error().code, Errc::invalid_argument);
}

TEST_F(NodeDaemonTest, ExecsFromManyClientsAreAnsweredFromTheNodeEachWithItsOwnResult) {
  start_server();
  constexpr int kClients = 3, kCalls = 20;
  std::vector<std::unique_ptr<Client>> clients;
  for (int c = 0; c < kClients; ++c) {
    VKN_ASSERT_OK_AND_ASSIGN(client, connect(std::chrono::seconds(60)));
    const std::string v = "v" + std::to_string(c);  // every client is the same user
    VKN_ASSERT_OK(client->create_buffer(v, BufferSpec{64, ElementType::u32, {16}}, BufferScope::session));
    clients.push_back(std::move(client));
  }
  VKN_ASSERT_OK_AND_ASSIGN(fill, clients[0]->builtin_kernel_id(BuiltinKernel::fill_u32));
  std::atomic<int> right{0};
  std::vector<std::thread> threads;
  for (int c = 0; c < kClients; ++c) {
    threads.emplace_back([&, c] {
      for (int i = 0; i < kCalls; ++i) {
        const uint32_t v = static_cast<uint32_t>(c * 1000 + i);
        Program p;
        const std::string b = "v" + std::to_string(c);
        p.steps.push_back(DispatchStep{fill, {NamedBinding{0, b, 0, 0}}, bytes_of(FillPush{16, v}), {1, 1, 1}});
        p.steps.push_back(DownloadStep{b, 60, 4});
        auto r = clients[c]->exec(p);
        if (r && r->downloads.size() == 1 && r->downloads[0] == bytes_of(v)) right.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(right.load(), kClients * kCalls);
  VKN_ASSERT_OK_AND_ASSIGN(status, clients[0]->status());
  EXPECT_EQ(status.running_requests, 0u);
  ASSERT_EQ(status.devices.size(), 1u);
  EXPECT_EQ(status.devices[0].exec_count, static_cast<uint64_t>(kClients * kCalls));
}

TEST_F(NodeDaemonTest, DISABLED_SlowJobCalibration) {
  start_server();
  VKN_ASSERT_OK_AND_ASSIGN(client, connect());
  VKN_ASSERT_OK_AND_ASSIGN(philox, client->builtin_kernel_id(BuiltinKernel::philox_f32));
  VKN_ASSERT_OK(client->create_buffer("s", BufferSpec{kSlowJobElements * 4}));
  for (int steps : {1, 2, 4, 8}) {
    const auto start = std::chrono::steady_clock::now();
    auto r = client->exec(slow_job(philox, "s", steps));
    const auto ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    std::printf("%d steps: %.1f ms %s\n", steps, ms, r ? "" : r.error().to_string().c_str());
  }
}

TEST_F(NodeDaemonTest, DeadlineOnARealNodeIsNodeTimeout) {
  start_server();
  VKN_ASSERT_OK_AND_ASSIGN(client, connect());
  VKN_ASSERT_OK_AND_ASSIGN(philox, client->builtin_kernel_id(BuiltinKernel::philox_f32));
  VKN_ASSERT_OK(client->create_buffer("s", BufferSpec{kSlowJobElements * 4}));
  const auto start = std::chrono::steady_clock::now();
  auto r = client->exec(slow_job(philox, "s", 2), RequestOptions{milliseconds(50)});
  const auto took = std::chrono::steady_clock::now() - start;
  if (r) GTEST_SKIP() << "the device finished the slow job within 50 ms";
  EXPECT_EQ(r.error().code, Errc::node_timeout);
  EXPECT_LT(took, milliseconds(1000));
  VKN_ASSERT_OK(client->ping());
}

TEST_F(NodeDaemonTest, SigkillGivesNodeDeadAndANewDaemonStartsOnTheStaleSocket) {
  const pid_t daemon = spawn_daemon();
  ASSERT_GT(daemon, 0);
  VKN_ASSERT_OK_AND_ASSIGN(client, connect());
  VKN_ASSERT_OK_AND_ASSIGN(philox, client->builtin_kernel_id(BuiltinKernel::philox_f32));
  VKN_ASSERT_OK(client->create_buffer("s", BufferSpec{kSlowJobElements * 4}));
  // A call in flight when the daemon dies.
  auto inflight =
      std::async(std::launch::async, [&] { return client->exec(slow_job(philox, "s", 6)); });
  std::this_thread::sleep_for(milliseconds(100));
  ::kill(daemon, SIGKILL);
  EXPECT_EQ(wait_exit(daemon), 128 + SIGKILL);
  auto r = inflight.get();
  if (r) {
    std::puts(
        "note: the slow job finished before the kill (a fast device); in-flight case not covered");
  } else {
    EXPECT_EQ(r.error().code, Errc::node_dead) << r.error().to_string();
  }
  auto after = client->ping();
  ASSERT_FALSE(after);
  EXPECT_EQ(after.error().code, Errc::node_dead);
  EXPECT_TRUE(std::filesystem::exists(socket()));  // stale

  const pid_t second = spawn_daemon();
  ASSERT_GT(second, 0);
  VKN_ASSERT_OK(client->ping());  // reconnected
  ::kill(second, SIGTERM);
  EXPECT_EQ(wait_exit(second), 0);
}

TEST_F(NodeDaemonTest, CachePersistWritesTheCacheOfEveryDeviceNode) {
  const pid_t pid = spawn_daemon({"--device", "0", "--device", "0"});
  ASSERT_GT(pid, 0);
  const std::string command = std::string(VKNODE_CLI) + " cache persist --socket " + socket() + " 2>&1";
  std::string out;
  FILE* p = ::popen(command.c_str(), "r");
  ASSERT_NE(p, nullptr);
  char buf[512];
  while (std::fgets(buf, sizeof buf, p)) out += buf;
  const int status = ::pclose(p);
  ::kill(pid, SIGTERM);
  ::waitpid(pid, nullptr, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << out;
  // Both nodes run on one device, so they share one file: one line, and the file is there.
  ASSERT_FALSE(out.empty());
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;
  out.pop_back();
  EXPECT_TRUE(std::filesystem::exists(out)) << out;
}

TEST_F(NodeDaemonTest, SigtermSnapshotsDurableBuffersForTheNextDaemon) {
  const pid_t daemon = spawn_daemon();
  ASSERT_GT(daemon, 0);
  std::vector<std::byte> data(4096);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<std::byte>(i ^ 0x5a);
  {
    VKN_ASSERT_OK_AND_ASSIGN(client, connect());
    VKN_ASSERT_OK(
        client->create_buffer("weights", BufferSpec{4096, ElementType::f32, {1024}, true}));
    VKN_ASSERT_OK(client->write_buffer("weights", 0, data));
    VKN_ASSERT_OK(client->create_buffer("scratch", BufferSpec{4096}));
  }
  ::kill(daemon, SIGTERM);
  EXPECT_EQ(wait_exit(daemon), 0);
  EXPECT_FALSE(std::filesystem::exists(socket()));
  auto images = read_snapshot(posix_file_ops(), dir_ / "state" / kSnapshotFileName);
  ASSERT_TRUE(images) << images.error().to_string();
  ASSERT_EQ(images->size(), 1u);

  const pid_t second = spawn_daemon();
  ASSERT_GT(second, 0);
  VKN_ASSERT_OK_AND_ASSIGN(client, connect());
  VKN_ASSERT_OK_AND_ASSIGN(back, client->read_buffer("weights"));
  EXPECT_TRUE(back == data);
  auto gone = client->read_buffer("scratch");
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().code, Errc::not_found);
  VKN_ASSERT_OK_AND_ASSIGN(list, client->list_buffers());
  ASSERT_EQ(list.size(), 1u);
  EXPECT_TRUE(list[0].info.spec.durable);
  ::kill(second, SIGTERM);
  EXPECT_EQ(wait_exit(second), 0);
}

}  // namespace
}  // namespace vkn::server::testing
