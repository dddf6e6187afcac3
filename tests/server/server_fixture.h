// ServerFixture: an in-process daemon (Server over a FakeBackend, or the real node)
// on a temporary socket and state dir, with helpers to connect clients, build slow
// jobs and stop or restart the daemon. The temporary directory is removed after
// each test.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <thread>

#include "fake_backend.h"
#include "server/server.h"
#include "vknode/client/client.h"

namespace vkn::server::testing {

#define VKN_ASSERT_OK(expr)                                      \
  do {                                                           \
    auto vkn_r = (expr);                                         \
    ASSERT_TRUE(vkn_r.has_value()) << vkn_r.error().to_string(); \
  } while (0)

#define VKN_ASSERT_OK_AND_ASSIGN(lhs, expr)                                  \
  auto lhs##_result = (expr);                                                \
  ASSERT_TRUE(lhs##_result.has_value()) << lhs##_result.error().to_string(); \
  auto lhs = std::move(*lhs##_result)

inline std::vector<uint32_t> fake_spirv(uint32_t salt) {
  return {0x07230203u, 0x00010000u, salt, 7, 0};
}

inline std::vector<std::byte> u32_bytes(uint32_t v) {
  std::vector<std::byte> out(4);
  std::memcpy(out.data(), &v, 4);
  return out;
}

// An exec that the FakeBackend runs for `ms` milliseconds, logging `buffer`.
inline Program slow_program(const KernelId& kernel, const std::string& buffer, uint32_t ms) {
  Program p;
  p.steps.push_back(
      DispatchStep{kernel, {NamedBinding{0, buffer, 0, 0}}, u32_bytes(ms), {1, 1, 1}});
  return p;
}

class ServerFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/vknode-srv-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    ::chmod(dir_.c_str(), 0755);
    fake_ = std::make_shared<FakeBackend::Shared>();
  }
  void TearDown() override {
    stop_server();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  virtual ServerOptions options() {
    ServerOptions o;
    o.socket_path = (dir_ / "vknode.sock").native();
    o.state_dir = dir_ / "state";
    o.socket_mode = 0666;
    o.snapshot_interval = std::chrono::milliseconds(0);
    auto shared = fake_;
    o.TEST_backend = [shared]() -> Result<std::unique_ptr<Backend>> {
      return std::make_unique<FakeBackend>(shared);
    };
    return o;
  }

  void start_server(std::optional<ServerOptions> o = std::nullopt) {
    auto s = Server::create(o ? *o : options());
    ASSERT_TRUE(s) << s.error().to_string();
    server_ = std::move(*s);
    thread_ = std::thread([this] { (void)server_->run(); });
  }

  void stop_server() {
    if (!server_) return;
    server_->request_stop();
    thread_.join();
    server_.reset();
  }

  std::string socket() const { return (dir_ / "vknode.sock").native(); }

  Result<std::unique_ptr<Client>> connect(
      std::optional<std::chrono::milliseconds> timeout = std::nullopt) {
    ClientOptions o;
    o.socket_path = socket();
    o.name = "test";
    o.default_timeout = timeout;
    return Client::connect(o);
  }

  std::filesystem::path dir_;
  std::shared_ptr<FakeBackend::Shared> fake_;
  std::unique_ptr<Server> server_;
  std::thread thread_;
};

}  // namespace vkn::server::testing
