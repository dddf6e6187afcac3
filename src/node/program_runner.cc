#include "node/program_runner.h"

#include <chrono>

#include "util/huge_pages.h"
#include "util/log.h"
#include "util/strformat.h"
#include "vknode/gpu/buffer.h"
#include "vknode/gpu/stream.h"
#include "vknode/node/buffer_registry.h"

namespace vkn {
namespace {

// The resolved form of a step, ready to record.
struct ResolvedDispatch {
  Kernel* kernel;  // held by the node's kernel cache for the job's length
  std::vector<BufferBinding> bindings;
};

Error at_step(size_t i, Error e) {
  e.message = vkn::format("program step {}: {}", i, e.message);
  return e;
}

class Validator {
 public:
  explicit Validator(Context& ctx) : ctx_(ctx) {}

  // Resolves every name and checks every range before anything is recorded.
  Result<std::vector<ResolvedDispatch>> check(const Program& p) {
    if (p.steps.size() > kMaxProgramSteps) {
      return fail(Errc::invalid_argument, vkn::format("a program has at most {} steps", kMaxProgramSteps));
    }
    std::vector<ResolvedDispatch> dispatches;
    uint64_t transfer = 0;
    for (size_t i = 0; i < p.steps.size(); ++i) {
      auto r = std::visit([&](const auto& step) { return check_step(step, dispatches, transfer); }, p.steps[i]);
      if (!r) return fail(at_step(i, r.error()));
      if (transfer > kMaxProgramTransferBytes) {
        return fail(Errc::invalid_argument, vkn::format("program uploads and downloads exceed {} bytes; split it",
                                                        kMaxProgramTransferBytes));
      }
    }
    return dispatches;
  }

 private:
  Result<const Buffer*> buffer(const std::string& name) { return ctx_.buffers().get(name); }

  Result<void> check_step(const UploadStep& s, std::vector<ResolvedDispatch>&, uint64_t& transfer) {
    auto b = buffer(s.buffer);
    if (!b) return fail(b.error());
    transfer += s.data.size();
    return (*b)->check_range(s.offset, s.data.size());
  }
  Result<void> check_step(const DownloadStep& s, std::vector<ResolvedDispatch>&, uint64_t& transfer) {
    auto b = buffer(s.buffer);
    if (!b) return fail(b.error());
    transfer += s.bytes;
    return (*b)->check_range(s.offset, s.bytes);
  }
  Result<void> check_step(const CopyStep& s, std::vector<ResolvedDispatch>&, uint64_t&) {
    auto src = buffer(s.src);
    if (!src) return fail(src.error());
    auto dst = buffer(s.dst);
    if (!dst) return fail(dst.error());
    if (auto r = (*src)->check_range(s.src_offset, s.bytes); !r) return r;
    if (auto r = (*dst)->check_range(s.dst_offset, s.bytes); !r) return r;
    if (s.src == s.dst && s.src_offset < s.dst_offset + s.bytes && s.dst_offset < s.src_offset + s.bytes) {
      return fail(Errc::invalid_argument, "copy source and destination overlap");
    }
    return {};
  }
  Result<void> check_step(const FillStep& s, std::vector<ResolvedDispatch>&, uint64_t&) {
    auto b = buffer(s.buffer);
    if (!b) return fail(b.error());
    if (s.offset % 4 != 0 || s.bytes % 4 != 0) return fail(Errc::invalid_argument, "fill offset and size must be multiples of 4");
    return (*b)->check_range(s.offset, s.bytes);
  }
  Result<void> check_step(const BarrierStep&, std::vector<ResolvedDispatch>&, uint64_t&) { return {}; }
  Result<void> check_step(const DispatchStep& s, std::vector<ResolvedDispatch>& out, uint64_t&) {
    auto kernel = ctx_.kernel(s.kernel);
    if (!kernel) return fail(kernel.error());
    ResolvedDispatch d{*kernel, {}};
    for (const NamedBinding& nb : s.bindings) {
      auto b = buffer(nb.buffer);
      if (!b) return fail(b.error());
      d.bindings.push_back({nb.binding, *b, nb.offset, nb.range == 0 ? VK_WHOLE_SIZE : nb.range});
    }
    if (auto r = d.kernel->check_dispatch(d.bindings, s.push, s.groups); !r) return r;
    out.push_back(std::move(d));
    return {};
  }

  Context& ctx_;
};

// Marks every buffer the program may write, so durable ones are synced afterwards.
Result<void> mark_writes(Context& ctx, const Program& p, const std::vector<ResolvedDispatch>& dispatches) {
  size_t d = 0;
  for (const ProgramStep& step : p.steps) {
    Result<Buffer*> r = nullptr;
    if (auto* u = std::get_if<UploadStep>(&step)) r = ctx.buffers().get_for_write(u->buffer);
    if (auto* c = std::get_if<CopyStep>(&step)) r = ctx.buffers().get_for_write(c->dst);
    if (auto* f = std::get_if<FillStep>(&step)) r = ctx.buffers().get_for_write(f->buffer);
    if (auto* s = std::get_if<DispatchStep>(&step)) {
      const KernelLayout& layout = dispatches[d++].kernel->layout();
      for (const NamedBinding& nb : s->bindings) {
        for (const BindingInfo& bi : layout.bindings) {
          if (bi.binding == nb.binding && !bi.read_only) r = ctx.buffers().get_for_write(nb.buffer);
        }
      }
    }
    if (!r) return fail(r.error());
  }
  return {};
}

Result<void> record(Context& ctx, const Program& p, const std::vector<ResolvedDispatch>& dispatches,
                    ProgramResult& result) {
  Stream& stream = ctx.stream();
  size_t d = 0;
  size_t download = 0;
  for (const ProgramStep& step : p.steps) {
    Result<void> r;
    if (auto* u = std::get_if<UploadStep>(&step)) {
      r = stream.record_upload(**ctx.buffers().get(u->buffer), u->offset, u->data);
    } else if (auto* s = std::get_if<DispatchStep>(&step)) {
      const ResolvedDispatch& rd = dispatches[d++];
      r = stream.record_dispatch(*rd.kernel, rd.bindings, s->push, s->groups);
    } else if (auto* c = std::get_if<CopyStep>(&step)) {
      r = stream.record_copy(**ctx.buffers().get(c->src), c->src_offset, **ctx.buffers().get(c->dst), c->dst_offset,
                             c->bytes);
    } else if (auto* f = std::get_if<FillStep>(&step)) {
      r = stream.record_fill(**ctx.buffers().get(f->buffer), f->offset, f->bytes, f->value);
    } else if (std::holds_alternative<BarrierStep>(step)) {
      stream.record_barrier();
    } else if (auto* dl = std::get_if<DownloadStep>(&step)) {
      r = stream.record_download(**ctx.buffers().get(dl->buffer), dl->offset, result.downloads[download++]);
    }
    if (!r) return r;
  }
  return {};
}

}  // namespace

std::vector<KernelId> program_kernels(const Program& program) {
  std::vector<KernelId> ids;
  for (const ProgramStep& step : program.steps) {
    if (auto* d = std::get_if<DispatchStep>(&step)) ids.push_back(d->kernel);
  }
  return ids;
}

Result<void> record_program(Context& ctx, const Program& program, ProgramResult& result) {
  Validator validator(ctx);
  auto dispatches = validator.check(program);
  if (!dispatches) return fail(dispatches.error());
  result.downloads.clear();
  for (const ProgramStep& step : program.steps) {
    if (auto* dl = std::get_if<DownloadStep>(&step)) resize_with_huge_pages(result.downloads.emplace_back(), dl->bytes);
  }
  if (auto r = mark_writes(ctx, program, *dispatches); !r) return fail(r.error());
  if (auto r = record(ctx, program, *dispatches, result); !r) {
    ctx.stream().discard_open_batch();
    return fail(r.error());
  }
  return {};
}

Result<ProgramResult> run_program(Context& ctx, const Program& program) {
  using Clock = std::chrono::steady_clock;
  const auto ms = [](Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double, std::milli>(b - a).count();
  };
  // The phases are timed only for the debug log: a clock read is a sizeable part of a
  // tiny Program's cost on the node's thread.
  const bool timed = log_enabled(LogLevel::debug);
  const auto t_start = timed ? Clock::now() : Clock::time_point{};
  ProgramResult result;
  if (auto r = record_program(ctx, program, result); !r) return fail(r.error());
  const auto t0 = Clock::now();
  if (auto r = ctx.submit_and_wait(); !r) return fail(r.error());
  const auto t_done = Clock::now();
  result.gpu_wait_ms = ms(t0, t_done);
  if (timed) {
    log(LogLevel::debug, "exec: {} steps: validation and recording {:.3f} ms, submit to downloads copied {:.3f} ms",
        program.steps.size(), ms(t_start, t0), result.gpu_wait_ms);
  }
  return result;
}

}  // namespace vkn
