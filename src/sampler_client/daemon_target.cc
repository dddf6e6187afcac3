// NodeTarget over a vkn::Client, and create_daemon_backend(); see daemon_target.h.
#include "vknode/sampler/daemon_target.h"

#include <utility>

#include "util/log.h"
#include "util/strformat.h"

namespace vkn::sampler {
namespace {

// The daemon answers `cancelled` only to requests it will not run because it is shutting
// down: for the sampler that is a node going away, so it becomes node_dead (the CPU fallback).
Error for_sampler(Error e) {
  if (e.code == Errc::cancelled) {
    e.code = Errc::node_dead;
    e.message = "daemon shutting down (cancelled): " + e.message;
  }
  return e;
}

template <typename T>
Result<T> passed(Result<T> r) {
  if (!r) return fail(for_sampler(std::move(r.error())));
  return r;
}

class DaemonNodeTarget final : public NodeTarget {
 public:
  DaemonNodeTarget(std::shared_ptr<Client> client, DaemonTargetOptions options)
      : client_(std::move(client)), device_(options.device) {
    request_.timeout = options.timeout;
    request_.device = options.device;
  }

  std::string describe() const override {
    return vkn::format("daemon (pid {}) device {}", client_->daemon().daemon_pid, device_);
  }

  Result<TargetDevice> device() override {
    auto st = passed(client_->status(request_));
    if (!st) return fail(st.error());
    if (device_ >= st->devices.size()) {
      return fail(Errc::not_found, "the daemon has no such device node",
                  vkn::format("{} of {}", device_, st->devices.size()));
    }
    const NodeStatus& node = st->devices[device_];
    auto local = local_device(node.device_uuid);
    if (local) return local;
    // The daemon's device is not visible here (another container, no driver): assume only
    // what every Vulkan device guarantees.
    log(LogLevel::warn, "sampler: daemon device {} ({}) not found here: {}; using Vulkan minimums",
        node.device_name, node.device_uuid, local.error().to_string());
    TargetDevice minimal;
    minimal.name = node.device_name;
    return minimal;
  }
  Result<KernelId> register_kernel(std::span<const uint32_t> spirv,
                                   std::string_view kernel_name) override {
    return passed(client_->register_kernel(spirv, {}, kernel_name, request_));
  }
  Result<void> create_buffer(std::string_view name, const BufferSpec& spec) override {
    // Durable buffers cannot be session-scoped; the others die with this process's connection.
    const BufferScope scope = spec.durable ? BufferScope::daemon : BufferScope::session;
    return passed(client_->create_buffer(name, spec, scope, request_));
  }
  Result<void> delete_buffer(std::string_view name) override {
    return passed(client_->delete_buffer(name, request_));
  }
  Result<void> write_buffer(std::string_view name, uint64_t offset,
                            std::span<const std::byte> data) override {
    return passed(client_->write_buffer(name, offset, data, request_));
  }
  Result<ProgramResult> exec(Program&& program) override {
    return passed(client_->exec(program, request_));
  }

 private:
  // Fixed after construction.
  const std::shared_ptr<Client> client_;
  const uint32_t device_;
  RequestOptions request_;
};

}  // namespace

std::shared_ptr<NodeTarget> make_daemon_target(std::shared_ptr<Client> client,
                                               DaemonTargetOptions options) {
  return std::make_shared<DaemonNodeTarget>(std::move(client), options);
}

Result<std::unique_ptr<GpuLeapfrogBackend>> create_daemon_backend(const Model& model,
                                                                  GpuBackendOptions options,
                                                                  ClientOptions client_options) {
  if (client_options.name.empty()) client_options.name = "vknode-sampler";
  const uint32_t device = client_options.device;
  auto client = Client::connect(std::move(client_options));
  if (!client) return fail(client.error());
  DaemonTargetOptions to;
  to.timeout = options.call.timeout;
  to.device = device;
  options.target = make_daemon_target(std::shared_ptr<Client>(std::move(*client)), to);
  return GpuLeapfrogBackend::create(model, options);
}

}  // namespace vkn::sampler
