#include "server/node_backend.h"

#include <unistd.h>

#include <atomic>

#include "util/log.h"
#include "util/strformat.h"
#include "vknode/gpu/buffer.h"
#include "vknode/gpu/builtin_kernels.h"
#include "vknode/gpu/pipeline_cache.h"
#include "vknode/gpu/stream.h"

namespace vkn::server {
namespace {

// Bounds one synchronous transfer inside a job when the caller gave no deadline.
constexpr std::chrono::seconds kTransferLimit{120};

std::chrono::nanoseconds transfer_timeout(Timeout timeout) {
  if (timeout) return std::min<std::chrono::nanoseconds>(*timeout, kTransferLimit);
  return kTransferLimit;
}

}  // namespace

Result<std::unique_ptr<NodeBackend>> NodeBackend::start(NodeOptions options) {
  static std::atomic<uint32_t> counter{0};
  options.name = vkn::format("vknoded-{}-{}", ::getpid(), counter.fetch_add(1));
  if (auto r = vkn::start(options); !r) {
    (void)vkn::stop(options.name);  // the supervisor may keep retrying in the background
    return fail(r.error());
  }
  return std::unique_ptr<NodeBackend>(new NodeBackend(options.name));
}

NodeBackend::~NodeBackend() { stop(); }

CallOptions NodeBackend::call(Timeout timeout) const {
  CallOptions c;
  c.node = name_;
  c.timeout = timeout;
  c.client = "vknoded";
  return c;
}

std::vector<NodeStatus> NodeBackend::status() {
  auto s = vkn::status(name_);
  if (s) return {std::move(*s)};
  NodeStatus down;
  down.name = name_;
  down.health = NodeHealth::down;
  down.last_error = s.error().to_string();
  return {down};
}

bool NodeBackend::is_ready() {
  auto s = vkn::status(name_);
  return s && s->health == NodeHealth::ready;
}

std::vector<KernelEntry> NodeBackend::builtin_kernels() {
  std::vector<KernelEntry> out;
  for (BuiltinKernel k : all_builtin_kernels()) {
    out.push_back(KernelEntry{builtin_kernel_id(k), std::string(to_string(k)), true,
                              static_cast<uint32_t>(k)});
  }
  return out;
}

Result<KernelId> NodeBackend::register_kernel(std::span<const uint32_t> spirv,
                                              std::span<const SpecConstant> spec,
                                              std::string_view name, Timeout timeout) {
  return vkn::register_kernel(spirv, spec, name, call(timeout));
}

Result<void> NodeBackend::create_buffer(std::string_view name, const BufferSpec& spec,
                                        Timeout timeout) {
  return vkn::create_buffer(name, spec, call(timeout));
}

Result<void> NodeBackend::delete_buffer(std::string_view name, Timeout timeout) {
  return vkn::delete_buffer(name, call(timeout));
}

Result<void> NodeBackend::write_buffer(std::string_view name, uint64_t offset,
                                       std::span<const std::byte> data,
                                       std::shared_ptr<const void> keepalive, Timeout timeout) {
  // Straight from the caller's memory (a memfd mapping for large writes) into staging:
  // no intermediate copy, unlike an upload step in a Program.
  const auto limit = transfer_timeout(timeout);
  return with_node(
      [n = std::string(name), offset, data, keep = std::move(keepalive),
       limit](Context& ctx) -> Result<void> {
        auto b = ctx.buffers().get_for_write(n);
        if (!b) return fail(b.error());
        if (auto r = (*b)->check_range(offset, data.size()); !r) return r;
        if (data.empty()) return {};
        return ctx.stream().upload(**b, offset, data, limit);
      },
      call(timeout));
}

Result<void> NodeBackend::read_buffer(std::string_view name, uint64_t offset,
                                      std::span<std::byte> out,
                                      std::shared_ptr<const void> keepalive, Timeout timeout) {
  const auto limit = transfer_timeout(timeout);
  return with_node(
      [n = std::string(name), offset, out, keep = std::move(keepalive),
       limit](Context& ctx) -> Result<void> {
        auto b = ctx.buffers().get(n);
        if (!b) return fail(b.error());
        if (auto r = (*b)->check_range(offset, out.size()); !r) return r;
        if (out.empty()) return {};
        return ctx.stream().download(**b, offset, out, limit);
      },
      call(timeout));
}

Result<std::vector<BufferEntryInfo>> NodeBackend::list_buffers(Timeout timeout) {
  return vkn::list_buffers(call(timeout));
}

Result<ProgramResult> NodeBackend::exec(const Program& program, Timeout timeout) {
  return vkn::exec(program, call(timeout));
}

void NodeBackend::exec_async(Program program, Timeout timeout, ExecDone done) {
  // Shared: the node calls it if the Program was queued; else it is answered here.
  auto shared = std::make_shared<ExecDone>(std::move(done));
  if (auto r = vkn::exec_async(std::move(program), call(timeout),
                               [shared](Result<ProgramResult> result) { (*shared)(std::move(result)); });
      !r) {
    (*shared)(fail(r.error()));
  }
}

Result<std::string> NodeBackend::persist_pipeline_cache() {
  if (auto r = vkn::persist_pipeline_cache(name_); !r) return fail(r.error());
  auto s = vkn::status(name_);
  return s ? s->cache_path : std::string();
}

Result<std::vector<DurableImage>> NodeBackend::durable_images(Timeout timeout) {
  return with_node(
      [](Context& ctx) -> std::vector<DurableImage> {
        std::vector<DurableImage> out;
        for (const BufferEntryInfo& e : ctx.buffers().list()) {
          if (!e.spec.durable) continue;
          const std::vector<std::byte>* mirror = ctx.buffers().durable_mirror(e.name);
          if (mirror == nullptr) continue;
          out.push_back(DurableImage{e.name, e.spec, *mirror});
        }
        return out;
      },
      call(timeout));
}

void NodeBackend::stop() {
  if (stopped_) return;
  stopped_ = true;
  if (auto r = vkn::stop(name_); !r)
    log(LogLevel::warn, "vknoded: stopping node {}: {}", name_, r.error().to_string());
}

}  // namespace vkn::server
