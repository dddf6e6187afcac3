// Users cannot see or touch each other's buffers and kernels, admin operations are
// for admins, and the socket's mode keeps other users out. The second user is a
// forked child that drops to an unused uid (tests run as root).
#include <grp.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include "server_fixture.h"

namespace vkn::server::testing {
namespace {

constexpr uid_t kOtherUid = 54321;

// Runs `body` in a child process as kOtherUid; returns its exit code (0: all good).
int as_other_user(const std::function<int()>& body) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    if (::setgroups(0, nullptr) != 0 || ::setgid(kOtherUid) != 0 || ::setuid(kOtherUid) != 0)
      ::_exit(100);
    ::_exit(body());
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 200;
}

class IsolationTest : public ServerFixture {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to switch users";
    ServerFixture::SetUp();
  }
};

TEST_F(IsolationTest, SecondUserCannotReachFirstUsersObjects) {
  start_server();
  VKN_ASSERT_OK_AND_ASSIGN(owner, connect());
  VKN_ASSERT_OK(owner->create_buffer("secret", BufferSpec{16}));
  const std::vector<std::byte> secret(16, std::byte{0x5e});
  VKN_ASSERT_OK(owner->write_buffer("secret", 0, secret));
  VKN_ASSERT_OK_AND_ASSIGN(kernel, owner->register_kernel(fake_spirv(9), {}, "owners-kernel"));

  const std::string sock = socket();
  const int code = as_other_user([&]() -> int {
    ClientOptions o;
    o.socket_path = sock;
    auto c = Client::connect(o);
    if (!c) return 1;
    Client& other = **c;
    if (other.daemon().peer_uid != kOtherUid || other.daemon().peer_is_admin) return 2;
    auto read = other.read_buffer("secret");
    if (read || read.error().code != Errc::not_found) return 3;
    if (auto w = other.write_buffer("secret", 0, std::vector<std::byte>(16)); w) return 4;
    if (auto d = other.delete_buffer("secret"); d) return 5;
    auto list = other.list_buffers();
    if (!list || !list->empty()) return 6;
    auto all = other.list_buffers(true);
    if (all || all.error().code != Errc::permission_denied) return 7;
    if (!other.create_buffer("mine", BufferSpec{16})) return 8;
    auto ex = other.exec(slow_program(kernel, "mine", 0));
    if (ex || ex.error().code != Errc::permission_denied) return 9;
    auto kernels = other.list_kernels();
    if (!kernels) return 10;
    for (const auto& k : *kernels) {
      if (k.id == kernel) return 11;
    }
    auto down = other.shutdown();
    if (down || down.error().code != Errc::permission_denied) return 12;
    auto persist = other.persist_pipeline_cache();
    if (persist || persist.error().code != Errc::permission_denied) return 13;
    // Same name, separate namespace.
    if (!other.create_buffer("secret", BufferSpec{16})) return 14;
    if (!other.write_buffer("secret", 0, std::vector<std::byte>(16, std::byte{1}))) return 15;
    return 0;
  });
  EXPECT_EQ(code, 0);
  VKN_ASSERT_OK_AND_ASSIGN(back, owner->read_buffer("secret"));
  EXPECT_EQ(back, secret);
  VKN_ASSERT_OK_AND_ASSIGN(all, owner->list_buffers(true));
  int others = 0;
  for (const auto& e : all) others += e.owner_uid == kOtherUid;
  EXPECT_EQ(others, 2);
}

TEST_F(IsolationTest, SocketModeKeepsOtherUsersOut) {
  ServerOptions o = options();
  o.socket_mode = 0600;
  start_server(o);
  const std::string sock = socket();
  const int code = as_other_user([&]() -> int {
    ClientOptions co;
    co.socket_path = sock;
    auto c = Client::connect(co);
    return !c && c.error().code == Errc::permission_denied ? 0 : 1;
  });
  EXPECT_EQ(code, 0);
}

TEST_F(IsolationTest, QuotasArePerUser) {
  ServerOptions o = options();
  o.quota.buffers = 2;
  o.quota.bytes = 1000;
  start_server(o);
  VKN_ASSERT_OK_AND_ASSIGN(client, connect());
  VKN_ASSERT_OK(client->create_buffer("a", BufferSpec{600}));
  auto big = client->create_buffer("b", BufferSpec{600});
  ASSERT_FALSE(big);
  EXPECT_EQ(big.error().code, Errc::quota_exceeded);
  VKN_ASSERT_OK(client->create_buffer("b", BufferSpec{100}));
  auto third = client->create_buffer("c", BufferSpec{10});
  ASSERT_FALSE(third);
  EXPECT_EQ(third.error().code, Errc::quota_exceeded);
  VKN_ASSERT_OK_AND_ASSIGN(status, client->status());
  EXPECT_EQ(status.usage.buffers, 2u);
  EXPECT_EQ(status.usage.bytes, 700u);
  EXPECT_GE(status.rejected_quota, 2u);
  // Another user has a quota of its own.
  const std::string sock = socket();
  EXPECT_EQ(as_other_user([&]() -> int {
              ClientOptions co;
              co.socket_path = sock;
              auto c = Client::connect(co);
              if (!c) return 1;
              return (*c)->create_buffer("a", BufferSpec{600}) ? 0 : 2;
            }),
            0);
  VKN_ASSERT_OK(client->delete_buffer("a"));
  VKN_ASSERT_OK(client->create_buffer("c", BufferSpec{600}));
}

}  // namespace
}  // namespace vkn::server::testing
