// A daemon with several device nodes: requests name their node (protocol version 2),
// buffers live on one node, kernels on all, version-1 clients keep working on node 0.
// Over FakeBackends for the protocol paths; over two real nodes on one device
// (lavapipe in CI) for the data path, status and the metrics endpoint.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>

#include "http_get.h"
#include "raw_connection.h"
#include "server_fixture.h"
#include "vknode/gpu/builtin_kernels.h"
#include "vknode_test_shaders/intake_saxpy_spv.h"

namespace vkn::server::testing {
namespace {

using protocol::MessageType;

template <typename T>
std::vector<std::byte> bytes_of(const T& v) {
  std::vector<std::byte> out(sizeof(v));
  std::memcpy(out.data(), &v, sizeof(v));
  return out;
}

RequestOptions on_device(uint32_t device) {
  RequestOptions o;
  o.device = device;
  return o;
}

class FakeDeviceNodesTest : public ServerFixture {
 protected:
  ServerOptions options() override {
    ServerOptions o = ServerFixture::options();
    o.devices = {"a", "b"};  // two FakeBackends over one shared fake store
    return o;
  }
  void SetUp() override {
    ServerFixture::SetUp();
    start_server();
  }
};

TEST_F(FakeDeviceNodesTest, EachNodeKeepsItsOwnNamespace) {
  VKN_ASSERT_OK_AND_ASSIGN(client, connect());
  ASSERT_EQ(server_->device_count(), 2u);
  VKN_ASSERT_OK(client->create_buffer("x", BufferSpec{8}));
  VKN_ASSERT_OK(client->create_buffer("x", BufferSpec{16}, BufferScope::daemon, on_device(1)));
  const std::string uid = std::to_string(::getuid());
  {
    std::lock_guard lock(fake_->mu);
    EXPECT_EQ(fake_->buffers.at("u" + uid + "/x").spec.bytes, 8u);
    EXPECT_EQ(fake_->buffers.at("d1/u" + uid + "/x").spec.bytes, 16u);
  }
  // A kernel registered through node 0 runs on node 1, on node 1's buffer.
  VKN_ASSERT_OK_AND_ASSIGN(kernel, client->register_kernel(fake_spirv(11)));
  VKN_ASSERT_OK(client->exec(slow_program(kernel, "x", 0), on_device(1)));
  {
    std::lock_guard lock(fake_->mu);
    ASSERT_FALSE(fake_->exec_log.empty());
    EXPECT_EQ(fake_->exec_log.back(), "d1/u" + uid + "/x");
  }
  VKN_ASSERT_OK_AND_ASSIGN(on1, client->list_buffers(false, on_device(1)));
  ASSERT_EQ(on1.size(), 1u);
  EXPECT_EQ(on1[0].info.spec.bytes, 16u);
  VKN_ASSERT_OK(client->delete_buffer("x", on_device(1)));
  auto gone = client->read_buffer("x", 0, 0, on_device(1));
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().code, Errc::not_found);
  VKN_ASSERT_OK(client->read_buffer("x"));  // node 0's is untouched
}

TEST_F(FakeDeviceNodesTest, AnUnknownDeviceIsNotFound) {
  VKN_ASSERT_OK_AND_ASSIGN(client, connect());
  auto created = client->create_buffer("x", BufferSpec{8}, BufferScope::daemon, on_device(2));
  ASSERT_FALSE(created);
  EXPECT_EQ(created.error().code, Errc::not_found);
  EXPECT_NE(created.error().message.find("no device node 2"), std::string::npos)
      << created.error().message;
  auto listed = client->list_buffers(false, on_device(99));
  ASSERT_FALSE(listed);
  EXPECT_EQ(listed.error().code, Errc::not_found);
  // A client whose default device does not exist fails the same way, per call.
  ClientOptions o;
  o.socket_path = socket();
  o.device = 5;
  VKN_ASSERT_OK_AND_ASSIGN(far, Client::connect(o));
  VKN_ASSERT_OK(far->ping());  // touches no node
  auto exec = far->exec(Program{});
  ASSERT_FALSE(exec);
  EXPECT_EQ(exec.error().code, Errc::not_found);
}

TEST_F(FakeDeviceNodesTest, ADeviceOnARequestThatTouchesNoNodeIsRefused) {
  VKN_ASSERT_OK_AND_ASSIGN(raw, RawConnection::open(socket()));
  VKN_ASSERT_OK(raw.hello());
  protocol::FrameHeader h;
  h.type = MessageType::ping;
  h.request_id = 7;
  h.device = 1;
  auto frame = protocol::make_frame(h, {});
  ASSERT_TRUE(frame);
  VKN_ASSERT_OK(protocol::send_frame(raw.fd(), *frame));
  VKN_ASSERT_OK_AND_ASSIGN(reply, raw.recv());
  EXPECT_EQ(RawConnection::code_of(reply), Errc::invalid_argument);
  VKN_ASSERT_OK(raw.send(MessageType::ping, 8, {}));  // the connection stays usable
  VKN_ASSERT_OK_AND_ASSIGN(pong, raw.recv());
  EXPECT_EQ(RawConnection::code_of(pong), Errc::ok);
}

TEST_F(FakeDeviceNodesTest, VersionOneClientsUseNodeZero) {
  VKN_ASSERT_OK_AND_ASSIGN(raw, RawConnection::open(socket()));
  VKN_ASSERT_OK(raw.send_message(MessageType::hello, 1, protocol::HelloRequest{1, 1, "old"}));
  VKN_ASSERT_OK_AND_ASSIGN(hello, raw.recv());
  ASSERT_EQ(RawConnection::code_of(hello), Errc::ok);
  protocol::Writer w;
  protocol::encode(w, protocol::CreateBufferRequest{"old", BufferSpec{4}, false});
  protocol::FrameHeader h;
  h.version = 1;
  h.type = MessageType::create_buffer;
  h.request_id = 2;
  auto frame = protocol::make_frame(h, w.take());
  ASSERT_TRUE(frame);
  VKN_ASSERT_OK(protocol::send_frame(raw.fd(), *frame));
  VKN_ASSERT_OK_AND_ASSIGN(reply, raw.recv());
  EXPECT_EQ(RawConnection::code_of(reply), Errc::ok);
  EXPECT_EQ(reply.header.version, 1);
  std::lock_guard lock(fake_->mu);
  EXPECT_TRUE(fake_->buffers.count("u" + std::to_string(::getuid()) + "/old"));
}

// Two real nodes on the same device: the selector given twice.
class RealDeviceNodesTest : public ServerFixture {
 protected:
  ServerOptions options() override {
    ServerOptions o = ServerFixture::options();
    o.TEST_backend = nullptr;
    o.node.cache_dir = dir_ / "cache";
    o.devices = {"0", "0"};
    o.metrics_port = 0;
    return o;
  }
};

TEST_F(RealDeviceNodesTest, BuffersStaySeparateAndExecRunsOnTheChosenNode) {
  start_server();
  VKN_ASSERT_OK_AND_ASSIGN(client, connect(std::chrono::seconds(60)));
  VKN_ASSERT_OK_AND_ASSIGN(before, client->status());
  ASSERT_EQ(before.devices.size(), 2u);
  EXPECT_TRUE(before.ready);
  for (const NodeStatus& d : before.devices) {
    EXPECT_EQ(d.health, NodeHealth::ready);
    EXPECT_FALSE(d.device_name.empty());
    EXPECT_FALSE(d.device_uuid.empty());
  }
  EXPECT_NE(before.devices[0].name, before.devices[1].name);

  constexpr uint32_t kCount = 256;
  const BufferSpec spec{kCount * 4, ElementType::u32, {kCount}};
  VKN_ASSERT_OK(client->create_buffer("v", spec));
  VKN_ASSERT_OK(client->create_buffer("v", spec, BufferScope::daemon, on_device(1)));
  VKN_ASSERT_OK_AND_ASSIGN(fill, client->builtin_kernel_id(BuiltinKernel::fill_u32));
  auto fill_with = [&](uint32_t value) {
    Program p;
    p.steps.push_back(DispatchStep{fill,
                                   {NamedBinding{0, "v", 0, 0}},
                                   bytes_of(FillPush{kCount, value}),
                                   {kCount / kBuiltinWorkgroupSize, 1, 1}});
    return p;
  };
  VKN_ASSERT_OK(client->exec(fill_with(11)));
  VKN_ASSERT_OK(client->exec(fill_with(22), on_device(1)));
  auto first_u32 = [&](uint32_t device) {
    auto bytes = client->read_buffer("v", 0, 4, on_device(device));
    uint32_t v = 0;
    if (bytes) std::memcpy(&v, bytes->data(), 4);
    return v;
  };
  EXPECT_EQ(first_u32(0), 11u);
  EXPECT_EQ(first_u32(1), 22u);
  VKN_ASSERT_OK_AND_ASSIGN(after, client->status());
  EXPECT_EQ(after.devices[0].exec_count - before.devices[0].exec_count, 1u);
  EXPECT_EQ(after.devices[1].exec_count - before.devices[1].exec_count, 1u);
  EXPECT_EQ(after.devices[1].buffer_count, 1u);

  // A kernel registered by the client with node 0 as its target dispatches on node 1.
  ClientOptions o;
  o.socket_path = socket();
  o.default_timeout = std::chrono::seconds(60);
  o.device = 1;  // this client's calls go to node 1
  VKN_ASSERT_OK_AND_ASSIGN(second, Client::connect(o));
  VKN_ASSERT_OK_AND_ASSIGN(saxpy, client->register_kernel(kIntakeSaxpySpv));
  const std::vector<float> x(kCount, 2.0f), y(kCount, 1.0f);
  for (const char* name : {"x", "s", "y"})
    VKN_ASSERT_OK(second->create_buffer(name, BufferSpec{kCount * 4, ElementType::f32, {kCount}}));
  VKN_ASSERT_OK(second->write_buffer("x", 0, std::as_bytes(std::span(x))));
  VKN_ASSERT_OK(second->write_buffer("y", 0, std::as_bytes(std::span(y))));
  struct {
    uint32_t n;
    float a;
  } push{kCount, 3.0f};
  Program p;
  p.steps.push_back(DispatchStep{
      saxpy,
      {NamedBinding{0, "x", 0, 0}, NamedBinding{1, "s", 0, 0}, NamedBinding{2, "y", 0, 0}},
      bytes_of(push),
      {kCount / 64, 1, 1}});
  p.steps.push_back(DownloadStep{"y", 0, 4});
  VKN_ASSERT_OK_AND_ASSIGN(result, second->exec(p));
  float y0 = 0;
  std::memcpy(&y0, result.downloads.at(0).data(), 4);
  EXPECT_EQ(y0, 7.0f);
  // Node 0 has no such buffers.
  auto missing = client->read_buffer("x");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Errc::not_found);
}

TEST_F(RealDeviceNodesTest, MetricsCountRequestsAndShowEveryNode) {
  start_server();
  const uint16_t port = server_->metrics_port();
  ASSERT_NE(port, 0);
  auto scrape = [&](std::map<std::string, double>* samples) {
    auto r = http_get(port, "/metrics");
    ASSERT_TRUE(r);
    ASSERT_TRUE(r->starts_with("HTTP/1.1 200 OK")) << *r;
    const std::string problem = check_exposition(http_body(*r), samples);
    ASSERT_EQ(problem, "") << http_body(*r);
  };
  std::map<std::string, double> before, after;
  scrape(&before);
  VKN_ASSERT_OK_AND_ASSIGN(client, connect(std::chrono::seconds(60)));
  VKN_ASSERT_OK(client->create_buffer("m", BufferSpec{1024}));
  VKN_ASSERT_OK(client->create_buffer("m", BufferSpec{4096}, BufferScope::daemon, on_device(1)));
  VKN_ASSERT_OK(client->exec(Program{}, on_device(1)));
  EXPECT_FALSE(client->read_buffer("nope"));
  EXPECT_FALSE(client->exec(Program{}, on_device(7)));
  scrape(&after);

  const auto moved = [&](const std::string& key) { return after[key] - before[key]; };
  EXPECT_EQ(moved("vknode_requests_total{type=\"create_buffer\"}"), 2);
  EXPECT_EQ(moved("vknode_requests_total{type=\"exec\"}"), 2);
  EXPECT_EQ(moved("vknode_request_errors_total{code=\"not_found\"}"), 2);
  EXPECT_GE(moved("vknode_request_duration_seconds_count"), 6);
  EXPECT_EQ(after["vknode_clients_connected"], 1);
  EXPECT_EQ(after["vknode_buffers"], 2);
  EXPECT_EQ(after["vknode_buffer_bytes"], 5120);
  EXPECT_EQ(after["vknode_device_buffers{device=\"1\"}"], 1);
  EXPECT_EQ(moved("vknode_device_execs_total{device=\"1\"}"), 1);
  EXPECT_EQ(moved("vknode_device_execs_total{device=\"0\"}"), 0);
  EXPECT_GT(after["vknode_uptime_seconds"], 0);
  EXPECT_TRUE(after.count("vknode_queue_depth"));
  EXPECT_TRUE(after.count("vknode_pipeline_cache_hits_total{device=\"0\"}"));
  EXPECT_TRUE(after.count("vknode_pipeline_cache_misses_total{device=\"1\"}"));
  int ready_nodes = 0;
  for (const auto& [key, value] : after) {
    if (key.starts_with("vknode_device_ready{")) ready_nodes += value == 1;
  }
  EXPECT_EQ(ready_nodes, 2);
}

}  // namespace
}  // namespace vkn::server::testing
