// Backend: what the daemon needs from one device node, behind an interface so that tests
// can run the server's protocol, fairness, quota and isolation logic against a fake
// (tests/server/fake_backend.h) as LevelDB tests run against a fake Env.
// NodeBackend (node_backend.h) is the real one. Implementations are thread-safe.
//
// A call that times out may leave its job running on the node (node.h: "a running
// one finishes and its result is dropped"), so calls that hand the node memory
// (writes, reads) also take `keepalive`, which the job holds until it is done.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "vknode/error.h"
#include "vknode/node/node.h"
#include "vknode/protocol/daemon_types.h"

namespace vkn::server {

using Timeout = std::optional<std::chrono::milliseconds>;

// One durable buffer's contents, for snapshots.
struct DurableImage {
  std::string name;  // registry name
  BufferSpec spec;
  std::vector<std::byte> data;
};

class Backend {
 public:
  virtual ~Backend() = default;

  // The node's name in this process (for in-process comparisons); empty for fakes.
  virtual std::string node_name() const { return {}; }
  // One entry per device node.
  virtual std::vector<NodeStatus> status() = 0;
  virtual bool is_ready() = 0;
  virtual std::vector<KernelEntry> builtin_kernels() = 0;

  // As vkn::register_kernel, create_buffer, ... (node.h), with registry names.
  [[nodiscard]] virtual Result<KernelId> register_kernel(std::span<const uint32_t> spirv,
                                                         std::span<const SpecConstant> spec,
                                                         std::string_view name,
                                                         Timeout timeout) = 0;
  [[nodiscard]] virtual Result<void> create_buffer(std::string_view name, const BufferSpec& spec,
                                                   Timeout timeout) = 0;
  [[nodiscard]] virtual Result<void> delete_buffer(std::string_view name, Timeout timeout) = 0;
  [[nodiscard]] virtual Result<void> write_buffer(std::string_view name, uint64_t offset,
                                                  std::span<const std::byte> data,
                                                  std::shared_ptr<const void> keepalive,
                                                  Timeout timeout) = 0;
  // Reads out.size() bytes from `offset` into `out`.
  [[nodiscard]] virtual Result<void> read_buffer(std::string_view name, uint64_t offset,
                                                 std::span<std::byte> out,
                                                 std::shared_ptr<const void> keepalive,
                                                 Timeout timeout) = 0;
  [[nodiscard]] virtual Result<std::vector<BufferEntryInfo>> list_buffers(Timeout timeout) = 0;
  [[nodiscard]] virtual Result<ProgramResult> exec(const Program& program, Timeout timeout) = 0;
  // As exec, but the result may come later: `done` is called exactly once, before
  // this returns or on another thread (the node's, or its deadline timer's: see
  // vkn::exec_async), so that no daemon thread waits for the node. This default runs
  // exec() and calls `done` before returning.
  using ExecDone = std::function<void(Result<ProgramResult>)>;
  virtual void exec_async(Program program, Timeout timeout, ExecDone done) {
    done(exec(program, timeout));
  }
  // Returns the cache file's path.
  [[nodiscard]] virtual Result<std::string> persist_pipeline_cache() = 0;
  // The contents of every durable buffer (from the node's host mirrors).
  [[nodiscard]] virtual Result<std::vector<DurableImage>> durable_images(Timeout timeout) = 0;
  // Graceful: finishes queued work, persists, releases the device.
  virtual void stop() = 0;
};

// The daemon's device nodes; the index is the device index of the protocol.
using Backends = std::vector<std::unique_ptr<Backend>>;

}  // namespace vkn::server
