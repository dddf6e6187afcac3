// The process-wide registry of nodes by name (vknode's only global state, with each
// thread's memo of its last lookup) and the public node functions, which look a node up
// and hand it jobs.
#include <map>
#include <mutex>
#include <thread>

#include "node/node_impl.h"
#include "node/program_runner.h"
#include "util/strformat.h"

namespace vkn {
namespace {

using detail::Job;
using detail::NodeImpl;

std::mutex& registry_mutex() {
  static std::mutex mu;
  return mu;
}

std::map<std::string, std::shared_ptr<NodeImpl>, std::less<>>& nodes() {
  static std::map<std::string, std::shared_ptr<NodeImpl>, std::less<>> m;
  return m;
}

// Moves (under registry_mutex) whenever a node is added to or removed from nodes().
std::atomic<uint64_t>& registry_generation() {
  static std::atomic<uint64_t> generation{0};
  return generation;
}

std::shared_ptr<NodeImpl> find_node(std::string_view name) {
  std::lock_guard lock(registry_mutex());
  auto it = nodes().find(name);
  return it == nodes().end() ? nullptr : it->second;
}

// A thread's last lookup, good while the registry's generation has not moved. A call that
// finds its node here takes no lock and leaves the node's reference count alone (on the
// H200 the lookup cost 60-190 ns of a 15 us dispatch). The memo keeps the node alive for
// the call, as a copied reference would: a thread makes one call at a time, and only its
// next lookup replaces the memo. (A node stopped after a thread's last call stays
// allocated, without its device, until that thread looks up again or exits.)
struct RememberedNode {
  uint64_t generation = 0;
  std::string name;
  std::shared_ptr<NodeImpl> node;
};

Result<std::shared_ptr<NodeImpl>> find_live_node(std::string_view name) {
  auto node = find_node(name);
  if (!node) return fail(Errc::node_dead, "no node is running under that name", name);
  return node;
}

// The node for a call on this thread, from the thread's memo. Valid until the thread's next
// lookup: only the calls that hand a node a job and wait use it.
Result<NodeImpl*> node_for_call(std::string_view name) {
  thread_local RememberedNode memo;
  const uint64_t generation = registry_generation().load(std::memory_order_acquire);
  if (memo.node == nullptr || memo.generation != generation || memo.name != name) {
    // The generation read before the lookup: a change in between leaves the memo stale.
    auto node = find_live_node(name);
    if (!node) {
      memo = {};  // a stopped node is not kept for nothing
      return fail(node.error());
    }
    memo = {generation, std::string(name), std::move(*node)};
  }
  return memo.node.get();
}

}  // namespace

const char* to_string(NodeHealth health) {
  switch (health) {
    case NodeHealth::starting: return "starting";
    case NodeHealth::ready: return "ready";
    case NodeHealth::recovering: return "recovering";
    case NodeHealth::down: return "down";
    case NodeHealth::stopped: return "stopped";
  }
  return "unknown";
}

Result<void> start(const NodeOptions& options) {
  if (options.name.empty()) return fail(Errc::invalid_argument, "a node needs a name");
  auto node = std::make_shared<NodeImpl>(options);
  {
    std::lock_guard lock(registry_mutex());
    auto it = nodes().find(options.name);
    if (it != nodes().end()) {
      if (!it->second->is_finished()) {
        const NodeStatus s = it->second->status();
        return fail(Errc::already_exists,
                    vkn::format("a node named '{}' is already running ({} on {}, up {} ms)", options.name,
                                to_string(s.health), s.device_name, s.uptime.count()));
      }
      nodes().erase(it);
    }
    nodes().emplace(options.name, node);
    registry_generation().fetch_add(1, std::memory_order_release);
  }
  if (auto r = node->start(); !r) {
    // The supervisor keeps trying in the background; the caller learns the first failure.
    return r;
  }
  return {};
}

Result<void> stop(std::string_view name) {
  std::shared_ptr<NodeImpl> node;
  {
    std::lock_guard lock(registry_mutex());
    auto it = nodes().find(name);
    if (it == nodes().end()) return fail(Errc::node_dead, "no node is running under that name", name);
    node = it->second;
    nodes().erase(it);
    registry_generation().fetch_add(1, std::memory_order_release);
  }
  node->stop();
  return {};
}

bool alive(std::string_view name) {
  auto node = find_node(name);
  return node && node->is_accepting();
}

Result<NodeStatus> status(std::string_view name) {
  auto node = find_live_node(name);
  if (!node) return fail(node.error());
  return (*node)->status();
}

namespace detail {

namespace {

// A job for the node `call` names, with its deadline, once its kernels pass quarantine:
// what the blocking and the asynchronous paths share.
struct PreparedJob {
  std::unique_ptr<Job> job;
  NodeImpl* node;  // the calling thread's (node_for_call)
  std::optional<std::chrono::milliseconds> timeout;
};

// The call's own timeout, else the node's default (none: no deadline).
std::optional<std::chrono::milliseconds> call_timeout(const CallOptions& call, const NodeImpl& node) {
  return call.timeout ? call.timeout : node.default_timeout();
}

Result<PreparedJob> prepare_job_on(NodeImpl* node, const CallOptions& call, ErasedJob fn,
                                   std::vector<KernelId> kernels, bool is_exec) {
  if (auto q = node->quarantine().check(kernels); !q) return fail(q.error());
  PreparedJob p{std::make_unique<Job>(), node, std::nullopt};
  if (fn) p.job->fn = std::move(fn);
  p.job->kernels = std::move(kernels);
  p.job->client = call.client;
  p.job->is_exec = is_exec;
  p.timeout = call_timeout(call, *p.node);
  return p;
}

Result<PreparedJob> prepare_job(const CallOptions& call, ErasedJob fn, std::vector<KernelId> kernels,
                                bool is_exec) {
  auto node = node_for_call(call.node);
  if (!node) return fail(node.error());
  return prepare_job_on(*node, call, std::move(fn), std::move(kernels), is_exec);
}

Result<void> run_prepared(PreparedJob& p) {
  if (auto r = p.node->submit(p.job); !r) return r;
  return p.node->wait(p.job, p.timeout);
}

Result<void> run_job_as(const CallOptions& call, ErasedJob fn, std::vector<KernelId> kernels, bool is_exec) {
  auto p = prepare_job(call, std::move(fn), std::move(kernels), is_exec);
  if (!p) return fail(p.error());
  return run_prepared(*p);
}

Result<void> submit_job_as(const CallOptions& call, ErasedJob fn, std::vector<KernelId> kernels,
                           JobDone on_done, bool is_exec, std::shared_ptr<const void> payload = nullptr) {
  auto p = prepare_job(call, std::move(fn), std::move(kernels), is_exec);
  if (!p) return fail(p.error());
  p->job->payload = std::move(payload);
  NodeImpl& n = *p->node;
  std::unique_ptr<Job>& job = p->job;
  job->has_waiter = false;
  job->on_done = std::move(on_done);
  // Watched before it is queued, so that a job cannot end before its entry exists.
  if (p->timeout) n.watch_deadline(job.get(), NodeImpl::Clock::now() + *p->timeout);
  auto r = n.submit(job);
  if (r) return {};  // the node's from here (see job.h)
  // Not queued. The caller has the error instead, unless the deadline (a very short one)
  // already settled the job and answered on_done.
  n.unwatch_deadline(job.get());
  if (job_state::base(job->state.load()) == job_state::kWithdrawn) return {};
  return r;
}

}  // namespace

Result<void> run_job(const CallOptions& call, ErasedJob fn, std::vector<KernelId> kernels) {
  return run_job_as(call, std::move(fn), std::move(kernels), false);
}

Result<void> submit_job(const CallOptions& call, ErasedJob fn, std::vector<KernelId> kernels,
                        JobDone on_done) {
  return submit_job_as(call, std::move(fn), std::move(kernels), std::move(on_done), false);
}

}  // namespace detail

namespace {

// What an asynchronous exec and its job share, in one allocation held by the job (it may
// still run after its deadline answered) and by the completion: the Program and its result.
struct ExecCall {
  std::shared_ptr<const Program> program;
  ProgramResult out;
};

// The job that runs `program` into `out`; both outlive it (see their owners below).
detail::ErasedJob program_job(const Program* program, ProgramResult* out) {
  return [program, out](Context& ctx) -> Result<void> {
    auto result = run_program(ctx, *program);
    if (!result) return fail(result.error());
    *out = std::move(*result);
    return {};
  };
}

}  // namespace

Result<void> exec_async(Program&& program, const CallOptions& call, ExecDone on_done) {
  auto c = std::make_shared<ExecCall>(std::make_shared<const Program>(std::move(program)));
  std::vector<KernelId> kernels = program_kernels(*c->program);
  return detail::submit_job_as(
      call, program_job(c->program.get(), &c->out), std::move(kernels),
      [c, done = std::move(on_done)](Result<void> r) {
        if (!r) return done(fail(r.error()));
        done(std::move(c->out));
      },
      true, c);
}

namespace {

// A blocking exec on the worker thread: the job holds the Program (it may still run after a
// caller that timed out has returned) and writes its result into itself, beside the word
// the caller waits on.
Result<ProgramResult> exec_on_worker(NodeImpl* node, std::shared_ptr<const Program> program,
                                     const CallOptions& call) {
  auto p = detail::prepare_job_on(node, call, nullptr, program_kernels(*program), true);
  if (!p) return fail(p.error());
  detail::Job* job = p->job.get();
  job->fn = program_job(program.get(), &job->exec_result);
  job->payload = std::move(program);
  if (auto r = detail::run_prepared(*p); !r) return fail(r.error());
  // Nothing to move is only read: writing to the line the worker wrote would make the
  // locked count drops that follow wait for it.
  ProgramResult out;
  if (!job->exec_result.downloads.empty()) out.downloads = std::move(job->exec_result.downloads);
  out.gpu_wait_ms = job->exec_result.gpu_wait_ms;
  return out;
}

// Runs `program` inline when the node is idle; otherwise on the worker, with the Program
// that `share()` makes shareable. An inline run copies nothing.
template <typename Share>
Result<ProgramResult> exec_program(const Program& program, const CallOptions& call, Share&& share) {
  auto node = node_for_call(call.node);
  if (!node) return fail(node.error());
  NodeImpl& n = **node;
  if (n.quarantine().is_tracking()) {
    if (auto q = n.quarantine().check(program_kernels(program)); !q) return fail(q.error());
  }
  if (auto r = n.try_exec_inline(program, detail::call_timeout(call, n))) return std::move(*r);
  return exec_on_worker(&n, share(), call);
}

}  // namespace

Result<ProgramResult> exec(std::shared_ptr<const Program> program, const CallOptions& call) {
  if (program == nullptr) return fail(Errc::invalid_argument, "exec of a null Program");
  const Program& p = *program;
  return exec_program(p, call, [&] { return std::move(program); });
}

Result<ProgramResult> exec(const Program& program, const CallOptions& call) {
  return exec_program(program, call, [&] { return std::make_shared<const Program>(program); });
}

Result<ProgramResult> exec(Program&& program, const CallOptions& call) {
  return exec_program(program, call, [&] { return std::make_shared<const Program>(std::move(program)); });
}

Result<KernelId> register_kernel(std::span<const uint32_t> spirv, std::span<const SpecConstant> spec,
                                 std::string_view kernel_name, const CallOptions& call) {
  auto node = find_live_node(call.node);
  if (!node) return fail(node.error());
  std::vector<uint32_t> words(spirv.begin(), spirv.end());
  std::vector<SpecConstant> specs(spec.begin(), spec.end());
  std::string label(kernel_name);
  NodeImpl* impl = node->get();
  return with_node([impl, words = std::move(words), specs = std::move(specs), label](Context&) {
    return impl->register_kernel(words, specs, label);
  }, call);
}

KernelId builtin_kernel_id(BuiltinKernel kernel) { return kernel_id(builtin_spirv(kernel)); }

Result<void> create_buffer(std::string_view name, const BufferSpec& spec, const CallOptions& call) {
  return with_node([n = std::string(name), spec](Context& ctx) -> Result<void> {
    if (auto r = ctx.buffers().create(ctx.device(), n, spec); !r) return r;
    // New buffers read as zeros, matching the host mirror of durable ones. A create
    // whose zero-fill fails (a lost device) is undone, so that the caller's error
    // leaves no entry behind to block the name.
    auto zero = [&]() -> Result<void> {
      auto b = ctx.buffers().get_for_write(n);
      if (!b) return fail(b.error());
      if (auto r = ctx.stream().record_fill(**b, 0, (*b)->size() / 4 * 4, 0); !r) return r;
      if (!ctx.stream().has_open_batch()) return {};
      return ctx.submit_and_wait();
    }();
    if (!zero) (void)ctx.buffers().remove(n);
    return zero;
  }, call);
}

Result<void> delete_buffer(std::string_view name, const CallOptions& call) {
  return with_node([n = std::string(name)](Context& ctx) { return ctx.buffers().remove(n); }, call);
}

namespace {

// Whether a call can outlive its caller: it has a deadline of its own or the node's.
bool has_deadline(const CallOptions& call) {
  if (call.timeout) return true;
  auto node = find_node(call.node);
  return node && node->default_timeout().has_value();
}

constexpr std::chrono::seconds kTransferLimit{120};

}  // namespace

Result<void> write_buffer(std::string_view name, uint64_t offset, std::span<const std::byte> data,
                          std::shared_ptr<const void> keep_alive, const CallOptions& call) {
  return with_node([n = std::string(name), offset, data, keep = std::move(keep_alive)](Context& ctx) -> Result<void> {
    auto b = ctx.buffers().get_for_write(n);
    if (!b) return fail(b.error());
    if (auto r = (*b)->check_range(offset, data.size()); !r) return r;
    if (data.empty()) return {};
    // Host-visible VRAM and nothing in flight: write in place, no staging, no copy command.
    constexpr uint64_t kDirectWriteMax = 4u << 20;
    if ((*b)->is_mapped() && data.size() <= kDirectWriteMax && ctx.stream().is_idle() &&
        !ctx.stream().has_open_batch()) {
      return (*b)->write_mapped(offset, data);
    }
    return ctx.stream().upload(**b, offset, data, kTransferLimit);
  }, call);
}

Result<void> write_buffer(std::string_view name, uint64_t offset, std::span<const std::byte> data,
                          const CallOptions& call) {
  if (!has_deadline(call)) return write_buffer(name, offset, data, nullptr, call);  // the caller waits it out
  auto owned = std::make_shared<const std::vector<std::byte>>(data.begin(), data.end());
  return write_buffer(name, offset, *owned, owned, call);
}

Result<void> read_buffer_into(std::string_view name, uint64_t offset, std::span<std::byte> out,
                              std::shared_ptr<void> keep_alive, const CallOptions& call) {
  if (keep_alive == nullptr && has_deadline(call)) {
    return fail(Errc::invalid_argument, "read_buffer_into with a deadline needs a keep-alive owner of the output");
  }
  return with_node([n = std::string(name), offset, out, keep = std::move(keep_alive)](Context& ctx) -> Result<void> {
    auto b = ctx.buffers().get(n);
    if (!b) return fail(b.error());
    if (auto r = (*b)->check_range(offset, out.size()); !r) return r;
    if (out.empty()) return {};
    return ctx.stream().download(**b, offset, out, kTransferLimit);
  }, call);
}

Result<std::vector<std::byte>> read_buffer(std::string_view name, uint64_t offset, uint64_t bytes,
                                           const CallOptions& call) {
  return with_node([n = std::string(name), offset, bytes](Context& ctx) -> Result<std::vector<std::byte>> {
    auto b = ctx.buffers().get(n);
    if (!b) return fail(b.error());
    const uint64_t size = bytes ? bytes : (*b)->size() - std::min(offset, (*b)->size());
    if (auto r = (*b)->check_range(offset, size); !r) return fail(r.error());
    std::vector<std::byte> out(size);
    if (auto r = ctx.stream().download(**b, offset, out, kTransferLimit); !r) return fail(r.error());
    return out;
  }, call);
}

Result<std::vector<BufferEntryInfo>> list_buffers(const CallOptions& call) {
  return with_node([](Context& ctx) { return ctx.buffers().list(); }, call);
}

Result<void> clear_quarantine(const KernelId& kernel, std::string_view name) {
  auto node = find_live_node(name);
  if (!node) return fail(node.error());
  if (!(*node)->quarantine().clear(kernel)) return fail(Errc::not_found, "kernel not quarantined", to_hex(kernel));
  return {};
}

Result<void> persist_pipeline_cache(std::string_view name) {
  CallOptions call;
  call.node = std::string(name);
  return with_node([](Context& ctx) { return ctx.pipeline_cache().persist(); }, call);
}

Result<void> TEST_crash(std::string_view name) {
  auto node = find_live_node(name);
  if (!node) return fail(node.error());
  (*node)->request_crash();
  return {};
}

Result<void> TEST_inject(std::string_view name, int lose_device_on_submit, int hang_waits, int fail_allocations) {
  CallOptions call;
  call.node = std::string(name);
  return with_node([=](Context& ctx) {
    FaultInjection& f = ctx.device().TEST_faults();
    f.lose_device_on_submit = lose_device_on_submit;
    f.hang_waits = hang_waits;
    f.fail_allocations = fail_allocations;
  }, call);
}

Result<void> TEST_wait_idle(std::string_view name, std::chrono::milliseconds timeout) {
  auto node = find_live_node(name);
  if (!node) return fail(node.error());
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (!(*node)->is_idle()) {
    if (std::chrono::steady_clock::now() >= until) return fail(Errc::timeout, "the node did not become idle", name);
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
  return {};
}

}  // namespace vkn
