// NodeBackend: the Backend over a real node, started under a name unique to this
// daemon ("vknoded-<pid>-<n>") so that a daemon can share a process with other
// nodes (tests). Thread-safe, as the node functions are.
#pragma once

#include <memory>
#include <string>

#include "server/backend.h"

namespace vkn::server {

class NodeBackend final : public Backend {
 public:
  // Starts the node (options.name is replaced). Errors: from vkn::start.
  [[nodiscard]] static Result<std::unique_ptr<NodeBackend>> start(NodeOptions options);
  ~NodeBackend() override;

  std::vector<NodeStatus> status() override;
  bool is_ready() override;
  std::vector<KernelEntry> builtin_kernels() override;
  Result<KernelId> register_kernel(std::span<const uint32_t> spirv,
                                   std::span<const SpecConstant> spec, std::string_view name,
                                   Timeout timeout) override;
  Result<void> create_buffer(std::string_view name, const BufferSpec& spec,
                             Timeout timeout) override;
  Result<void> delete_buffer(std::string_view name, Timeout timeout) override;
  Result<void> write_buffer(std::string_view name, uint64_t offset, std::span<const std::byte> data,
                            std::shared_ptr<const void> keepalive, Timeout timeout) override;
  Result<void> read_buffer(std::string_view name, uint64_t offset, std::span<std::byte> out,
                           std::shared_ptr<const void> keepalive, Timeout timeout) override;
  Result<std::vector<BufferEntryInfo>> list_buffers(Timeout timeout) override;
  Result<ProgramResult> exec(const Program& program, Timeout timeout) override;
  // On the node's thread, through vkn::exec_async.
  void exec_async(Program program, Timeout timeout, ExecDone done) override;
  Result<std::string> persist_pipeline_cache() override;
  Result<std::vector<DurableImage>> durable_images(Timeout timeout) override;
  void stop() override;

  std::string node_name() const override { return name_; }

 private:
  explicit NodeBackend(std::string name) : name_(std::move(name)) {}
  CallOptions call(Timeout timeout) const;

  const std::string name_;
  bool stopped_ = false;
};

}  // namespace vkn::server
