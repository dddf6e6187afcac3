// Encoding of Program and ProgramResult (see docs/protocol.md, "exec").
#include <cstring>

#include "protocol/messages.h"
#include "util/strformat.h"

namespace vkn::protocol {
namespace {

enum class StepTag : uint8_t {
  upload = 1,
  dispatch = 2,
  copy = 3,
  fill = 4,
  barrier = 5,
  download = 6
};

// The least bytes any step takes on the wire (a barrier's tag).
constexpr size_t kMinStepBytes = 1;

struct StepEncoder {
  Writer& w;
  void operator()(const UploadStep& s) {
    w.u8(static_cast<uint8_t>(StepTag::upload));
    w.str(s.buffer);
    w.u64(s.offset);
    w.blob(s.data);
  }
  void operator()(const DispatchStep& s) {
    w.u8(static_cast<uint8_t>(StepTag::dispatch));
    encode_kernel_id(w, s.kernel);
    w.u32(static_cast<uint32_t>(s.bindings.size()));
    for (const auto& b : s.bindings) {
      w.u32(b.binding);
      w.str(b.buffer);
      w.u64(b.offset);
      w.u64(b.range);
    }
    w.bytes(s.push);
    for (uint32_t g : s.groups) w.u32(g);
  }
  void operator()(const CopyStep& s) {
    w.u8(static_cast<uint8_t>(StepTag::copy));
    w.str(s.src);
    w.u64(s.src_offset);
    w.str(s.dst);
    w.u64(s.dst_offset);
    w.u64(s.bytes);
  }
  void operator()(const FillStep& s) {
    w.u8(static_cast<uint8_t>(StepTag::fill));
    w.str(s.buffer);
    w.u64(s.offset);
    w.u64(s.bytes);
    w.u32(s.value);
  }
  void operator()(const BarrierStep&) { w.u8(static_cast<uint8_t>(StepTag::barrier)); }
  void operator()(const DownloadStep& s) {
    w.u8(static_cast<uint8_t>(StepTag::download));
    w.str(s.buffer);
    w.u64(s.offset);
    w.u64(s.bytes);
  }
};

ProgramStep decode_step(Reader& r, uint64_t& transfer_left) {
  const uint8_t tag = r.u8();
  switch (static_cast<StepTag>(tag)) {
    case StepTag::upload: {
      UploadStep s;
      s.buffer = r.str(kMaxNameBytes);
      s.offset = r.u64();
      auto data = r.blob(transfer_left);
      transfer_left -= data.size();
      s.data.assign(data.begin(), data.end());
      return s;
    }
    case StepTag::dispatch: {
      DispatchStep s;
      s.kernel = decode_kernel_id(r);
      const uint32_t n = r.count(kMaxBindings, 4 + 4 + 8 + 8);
      for (uint32_t i = 0; i < n && r.ok(); ++i) {
        NamedBinding b;
        b.binding = r.u32();
        b.buffer = r.str(kMaxNameBytes);
        b.offset = r.u64();
        b.range = r.u64();
        s.bindings.push_back(std::move(b));
      }
      s.push = r.bytes(kMaxPushBytes);
      for (uint32_t& g : s.groups) g = r.u32();
      return s;
    }
    case StepTag::copy: {
      CopyStep s;
      s.src = r.str(kMaxNameBytes);
      s.src_offset = r.u64();
      s.dst = r.str(kMaxNameBytes);
      s.dst_offset = r.u64();
      s.bytes = r.u64();
      return s;
    }
    case StepTag::fill: {
      FillStep s;
      s.buffer = r.str(kMaxNameBytes);
      s.offset = r.u64();
      s.bytes = r.u64();
      s.value = r.u32();
      return s;
    }
    case StepTag::barrier:
      return BarrierStep{};
    case StepTag::download: {
      DownloadStep s;
      s.buffer = r.str(kMaxNameBytes);
      s.offset = r.u64();
      s.bytes = r.u64();
      if (r.ok() && s.bytes > transfer_left) {
        r.fail(vkn::format("downloads exceed the {}-byte transfer limit of a Program",
                           kMaxProgramTransferBytes));
      }
      transfer_left -= std::min(transfer_left, s.bytes);
      return s;
    }
  }
  r.fail(vkn::format("unknown program step tag {}", tag));
  return BarrierStep{};
}

}  // namespace

void encode(Writer& w, const Program& m) {
  w.u32(static_cast<uint32_t>(m.steps.size()));
  StepEncoder encoder{w};
  for (const auto& step : m.steps) std::visit(encoder, step);
}

Result<Program> decode_program(Reader& r) {
  Program m;
  const uint32_t n = r.count(static_cast<uint32_t>(kMaxProgramSteps), kMinStepBytes);
  uint64_t transfer_left = kMaxProgramTransferBytes;
  for (uint32_t i = 0; i < n && r.ok(); ++i) m.steps.push_back(decode_step(r, transfer_left));
  if (auto done = r.finish("program"); !done) return fail(done.error());
  return m;
}

void encode(Writer& w, const ProgramResult& m) {
  w.u32(static_cast<uint32_t>(m.downloads.size()));
  for (const auto& d : m.downloads) w.blob(d);
  w.f64(m.gpu_wait_ms);
}

Result<ProgramResult> decode_program_result(Reader& r) {
  ProgramResult m;
  const uint32_t n = r.count(static_cast<uint32_t>(kMaxProgramSteps), 5);
  uint64_t left = kMaxProgramTransferBytes;
  for (uint32_t i = 0; i < n && r.ok(); ++i) {
    auto d = r.blob(left);
    left -= d.size();
    m.downloads.emplace_back(d.begin(), d.end());
  }
  m.gpu_wait_ms = r.f64();
  if (auto done = r.finish("program result"); !done) return fail(done.error());
  return m;
}

}  // namespace vkn::protocol
