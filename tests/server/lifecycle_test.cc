// Connections that end (cleanly or killed mid-request), daemons that restart, and
// the socket's single-daemon rule.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <cstring>
#include <fstream>
#include <future>
#include <thread>

#include "protocol/messages.h"
#include "raw_connection.h"
#include "server/request.h"
#include "server/snapshot.h"
#include "server_fixture.h"

namespace vkn::server::testing {
namespace {

using protocol::MessageType;
using std::chrono::milliseconds;

std::string reg(const std::string& name) { return "u" + std::to_string(::getuid()) + "/" + name; }

class LifecycleTest : public ServerFixture {
 protected:
  bool fake_has(const std::string& name) {
    std::lock_guard lock(fake_->mu);
    return fake_->buffers.count(name) > 0;
  }
  // Waits up to 3 s for fake_has(name) to become `want`.
  bool wait_for_buffer(const std::string& name, bool want) {
    for (int i = 0; i < 300; ++i) {
      if (fake_has(name) == want) return true;
      std::this_thread::sleep_for(milliseconds(10));
    }
    return false;
  }
};

TEST_F(LifecycleTest, SessionBuffersGoWithTheirConnection) {
  start_server();
  {
    VKN_ASSERT_OK_AND_ASSIGN(client, connect());
    VKN_ASSERT_OK(client->create_buffer("scratch", BufferSpec{16}, BufferScope::session));
    VKN_ASSERT_OK(client->create_buffer("kept", BufferSpec{16}));
    VKN_ASSERT_OK(client->create_buffer("durable", BufferSpec{16, ElementType::bytes, {}, true}));
    VKN_ASSERT_OK_AND_ASSIGN(list, client->list_buffers());
    ASSERT_EQ(list.size(), 3u);
    int sessions = 0;
    for (const auto& e : list) sessions += e.session;
    EXPECT_EQ(sessions, 1);
  }
  EXPECT_TRUE(wait_for_buffer(reg("scratch"), false));
  EXPECT_TRUE(fake_has(reg("kept")));
  EXPECT_TRUE(fake_has(reg("durable")));
}

TEST_F(LifecycleTest, ClientKilledMidRequestLetsJobFinishThenFreesItsSession) {
  start_server();
  VKN_ASSERT_OK_AND_ASSIGN(observer, connect());
  VKN_ASSERT_OK_AND_ASSIGN(kernel, observer->register_kernel(fake_spirv(3)));
  const std::string sock = socket();
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t child = ::fork();
  if (child == 0) {
    // A client process: raw protocol only (no threads), so it is safe after fork.
    auto raw = RawConnection::open(sock);
    if (!raw || !raw->hello()) ::_exit(1);
    protocol::RegisterKernelRequest rk;
    const auto spirv = fake_spirv(3);
    rk.spirv = std::as_bytes(std::span(spirv));
    if (!raw->send_message(MessageType::register_kernel, 2, rk) || !raw->recv()) ::_exit(2);
    protocol::CreateBufferRequest cb{"victim", BufferSpec{16}, true};
    if (!raw->send_message(MessageType::create_buffer, 3, cb) || !raw->recv()) ::_exit(3);
    if (!raw->send_message(MessageType::exec, 4, slow_program(kernel, "victim", 400))) ::_exit(4);
    char c = 'x';
    [[maybe_unused]] auto n = ::write(ready[1], &c, 1);
    ::pause();
    ::_exit(0);
  }
  ::close(ready[1]);
  char c;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  ::close(ready[0]);
  // Wait until its job runs, then kill the client.
  bool running = false;
  for (int i = 0; i < 300 && !running; ++i) {
    std::this_thread::sleep_for(milliseconds(5));
    std::lock_guard lock(fake_->mu);
    running = !fake_->exec_log.empty();
  }
  ASSERT_TRUE(running);
  ::kill(child, SIGKILL);
  int status;
  ::waitpid(child, &status, 0);
  // The daemon keeps serving while the orphaned job finishes...
  VKN_ASSERT_OK(observer->ping());
  EXPECT_TRUE(fake_has(reg("victim")));  // the job still runs: its buffers stay
  // ...then frees the dead client's session buffer.
  EXPECT_TRUE(wait_for_buffer(reg("victim"), false));
  VKN_ASSERT_OK_AND_ASSIGN(status_after, observer->status());
  EXPECT_EQ(status_after.running_requests, 0u);
}

TEST_F(LifecycleTest, GracefulStopSnapshotsDurableBuffersAndRestartRestoresThem) {
  start_server();
  const std::vector<std::byte> data(64, std::byte{0x77});
  {
    VKN_ASSERT_OK_AND_ASSIGN(client, connect());
    VKN_ASSERT_OK(client->create_buffer("keep", BufferSpec{64, ElementType::f32, {4, 4}, true}));
    VKN_ASSERT_OK(client->write_buffer("keep", 0, data));
    VKN_ASSERT_OK(client->create_buffer("lose", BufferSpec{64}));
  }
  stop_server();
  EXPECT_TRUE(fake_->stopped);
  EXPECT_EQ(fake_->persists, 1);
  ASSERT_TRUE(std::filesystem::exists(dir_ / "state" / kSnapshotFileName));
  EXPECT_FALSE(std::filesystem::exists(socket()));

  fake_ = std::make_shared<FakeBackend::Shared>();  // a fresh "device"
  start_server();
  VKN_ASSERT_OK_AND_ASSIGN(client, connect());
  VKN_ASSERT_OK_AND_ASSIGN(list, client->list_buffers());
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].info.name, "keep");
  EXPECT_EQ(list[0].info.spec.element, ElementType::f32);
  EXPECT_EQ(list[0].info.spec.shape, (std::vector<uint64_t>{4, 4}));
  VKN_ASSERT_OK_AND_ASSIGN(back, client->read_buffer("keep"));
  EXPECT_EQ(back, data);
  VKN_ASSERT_OK_AND_ASSIGN(status, client->status());
  EXPECT_EQ(status.usage.buffers, 1u);  // counted against its owner again
}

TEST_F(LifecycleTest, CorruptSnapshotIsReportedAndSkipped) {
  std::filesystem::create_directories(dir_ / "state");
  std::ofstream(dir_ / "state" / kSnapshotFileName)
      << "VKNSNAP1 but not really a snapshot at all, no no no";
  start_server();
  VKN_ASSERT_OK_AND_ASSIGN(client, connect());
  VKN_ASSERT_OK_AND_ASSIGN(status, client->status());
  EXPECT_NE(status.last_snapshot_error, "");
  VKN_ASSERT_OK_AND_ASSIGN(list, client->list_buffers());
  EXPECT_TRUE(list.empty());
}

TEST_F(LifecycleTest, PeriodicSnapshotCapturesChanges) {
  ServerOptions o = options();
  o.snapshot_interval = milliseconds(50);
  start_server(o);
  VKN_ASSERT_OK_AND_ASSIGN(client, connect());
  VKN_ASSERT_OK(client->create_buffer("p", BufferSpec{8, ElementType::bytes, {}, true}));
  VKN_ASSERT_OK(client->write_buffer("p", 0, std::vector<std::byte>(8, std::byte{3})));
  const auto path = dir_ / "state" / kSnapshotFileName;
  bool found = false;
  for (int i = 0; i < 100 && !found; ++i) {
    std::this_thread::sleep_for(milliseconds(20));
    auto images = read_snapshot(posix_file_ops(), path);
    found = images && images->size() == 1 &&
            (*images)[0].data == std::vector<std::byte>(8, std::byte{3});
  }
  EXPECT_TRUE(found);
}

TEST_F(LifecycleTest, ClientReconnectsAfterRestartAndReregistersKernels) {
  start_server();
  VKN_ASSERT_OK_AND_ASSIGN(client, connect());
  VKN_ASSERT_OK_AND_ASSIGN(kernel, client->register_kernel(fake_spirv(5)));
  stop_server();
  auto dead = client->ping();
  ASSERT_FALSE(dead);
  EXPECT_EQ(dead.error().code, Errc::node_dead);
  start_server();
  VKN_ASSERT_OK(client->ping());
  VKN_ASSERT_OK(client->create_buffer("after", BufferSpec{16}));
  VKN_ASSERT_OK(client->exec(slow_program(kernel, "after", 0)));
}

// No thread watches an idle connection: the first call after a restart finds the old
// connection dead before sending anything, and goes out again on a new one.
TEST_F(LifecycleTest, IdleClientsFirstCallAfterRestartSucceeds) {
  start_server();
  VKN_ASSERT_OK_AND_ASSIGN(client, connect());
  VKN_ASSERT_OK_AND_ASSIGN(kernel, client->register_kernel(fake_spirv(6)));
  VKN_ASSERT_OK(client->ping());
  stop_server();
  start_server();
  VKN_ASSERT_OK(client->ping());
  VKN_ASSERT_OK(client->create_buffer("again", BufferSpec{16}));
  VKN_ASSERT_OK(client->exec(slow_program(kernel, "again", 0)));
}

// Every call waiting on a connection hears of the daemon's death, not only the one
// that reads the socket.
TEST_F(LifecycleTest, DaemonDeathFailsEveryWaitingCall) {
  // A stand-in daemon: answers hello, takes four requests, and dies without answering.
  protocol::UniqueFd listener(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strcpy(addr.sun_path, socket().c_str());
  ASSERT_EQ(::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::listen(listener.get(), 4), 0);
  std::atomic<int> taken{0};
  std::thread daemon([&] {
    protocol::UniqueFd c(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
    auto hello = protocol::recv_frame(c.get(), protocol::kMaxAttachment);
    if (!hello) return;
    DaemonHello h;
    h.protocol_version = protocol::kMinVersion;
    h.max_payload = protocol::kMaxPayload;
    h.shm_threshold = 1 << 20;
    h.max_attachment = protocol::kMaxAttachment;
    ReplyWriter w(UINT64_MAX);
    protocol::encode(w.body(), h);
    if (!protocol::send_frame(c.get(), *w.finish(hello->header, protocol::kMinVersion))) return;
    while (taken.load() < 4 && protocol::recv_frame(c.get(), protocol::kMaxAttachment)) {
      taken.fetch_add(1);
    }
  });
  VKN_ASSERT_OK_AND_ASSIGN(client, connect());
  std::vector<std::future<Result<void>>> calls;
  for (int t = 0; t < 4; ++t) {
    calls.push_back(std::async(std::launch::async, [&] { return client->ping(); }));
  }
  const auto start = std::chrono::steady_clock::now();
  for (auto& c : calls) {
    auto r = c.get();
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Errc::node_dead);
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  daemon.join();
  EXPECT_EQ(taken.load(), 4);
}

TEST_F(LifecycleTest, AdminShutdownStopsTheDaemon) {
  start_server();
  VKN_ASSERT_OK_AND_ASSIGN(client, connect());
  VKN_ASSERT_OK(client->shutdown());
  thread_.join();  // run() returns
  server_.reset();
  auto r = client->ping();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::node_dead);
}

TEST_F(LifecycleTest, SecondDaemonOnTheSameSocketIsRefused) {
  start_server();
  auto second = Server::create(options());
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code, Errc::already_exists);
  VKN_ASSERT_OK_AND_ASSIGN(client, connect());  // the first one is unharmed
  VKN_ASSERT_OK(client->ping());
}

TEST_F(LifecycleTest, StaleSocketIsReplaced) {
  // A socket file nobody listens on, as a crashed daemon leaves behind.
  {
    protocol::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strcpy(addr.sun_path, socket().c_str());
    ASSERT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  }
  ASSERT_TRUE(std::filesystem::exists(socket()));
  start_server();
  VKN_ASSERT_OK_AND_ASSIGN(client, connect());
  VKN_ASSERT_OK(client->ping());
}

TEST_F(LifecycleTest, PathThatIsNotASocketIsLeftAlone) {
  std::ofstream(socket()) << "precious";
  auto s = Server::create(options());
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, Errc::already_exists);
  std::ifstream in(socket());
  std::string content;
  in >> content;
  EXPECT_EQ(content, "precious");
}

TEST_F(LifecycleTest, InheritedSocketIsServedAndLeftInPlace) {
  // As systemd's socket activation hands it over.
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strcpy(addr.sun_path, socket().c_str());
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::listen(fd, 16), 0);
  ServerOptions o = options();
  o.inherited_listen_fd = fd;
  start_server(o);
  VKN_ASSERT_OK_AND_ASSIGN(client, connect());
  VKN_ASSERT_OK(client->ping());
  stop_server();
  EXPECT_TRUE(std::filesystem::exists(socket()));  // systemd's to remove
}

TEST_F(LifecycleTest, DaemonThatNeverAnswersHelloIsNodeDeadInTime) {
  // Something listens on the socket but never accepts or answers.
  protocol::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strcpy(addr.sun_path, socket().c_str());
  ASSERT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::listen(fd.get(), 4), 0);
  ClientOptions o;
  o.socket_path = socket();
  o.connect_timeout = milliseconds(200);
  const auto start = std::chrono::steady_clock::now();
  auto c = Client::connect(o);
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code, Errc::node_dead);
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(2000));
}

TEST_F(LifecycleTest, NoDaemonIsNodeDead) {
  auto c = connect();
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code, Errc::node_dead);
}

}  // namespace
}  // namespace vkn::server::testing
