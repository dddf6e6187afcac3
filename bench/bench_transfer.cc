// Section "transfer": upload and download bandwidth through Stream from ordinary host
// memory (a std::vector), plus the zero-copy upload (Stream::stage, filled in place, then
// record_upload_staged), against a raw vkCmdCopyBuffer between a host-visible Buffer and the
// device buffer, recorded once and waited for with a blocking fence wait. Stream's copying
// paths include the memcpy between the vector and staging; the raw copy and the zero-copy
// path do not (the producer writes the staging memory directly, untimed), so those two
// compare the same work. Variants alternate within each repetition; GB/s is 1e9 bytes per second.
#include "bench_sections.h"

#include <vulkan/vulkan.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <vector>

#include "raw_commands.h"
#include "util/parallel_memcpy.h"
#include "util/strformat.h"
#include "vknode/gpu/buffer.h"
#include "vknode/gpu/device.h"
#include "vknode/gpu/stream.h"

namespace vkn::detail {
namespace {

constexpr std::chrono::seconds kTimeout{120};

struct SizeCase {
  uint64_t bytes;
  int reps;
  // Untimed repetitions first. Each Stream slot grows its own staging memory on first use
  // (and reallocates it once when a batch outgrew it), so this must exceed the slot count.
  int warmup;
};

// Records "barrier, copy src -> dst" (and a host-read barrier for downloads) into `raw`,
// the same commands Stream records for one transfer.
Result<void> record_raw_copy(RawCommands& raw, const Buffer& src, const Buffer& dst, uint64_t bytes,
                             bool to_host) {
  auto cmd = raw.begin();
  if (!cmd) return fail(cmd.error());
  VkMemoryBarrier before{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
  before.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
  before.dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_READ_BIT |
                         VK_ACCESS_TRANSFER_WRITE_BIT;
  constexpr VkPipelineStageFlags kStages = VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT;
  vkCmdPipelineBarrier(*cmd, kStages, kStages, 0, 1, &before, 0, nullptr, 0, nullptr);
  const VkBufferCopy region{0, 0, bytes};
  vkCmdCopyBuffer(*cmd, src.handle(), dst.handle(), 1, &region);
  if (to_host) {
    VkMemoryBarrier after{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
    after.srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT;
    after.dstAccessMask = VK_ACCESS_HOST_READ_BIT;
    vkCmdPipelineBarrier(*cmd, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &after, 0, nullptr,
                         0, nullptr);
  }
  return raw.end();
}

Result<void> raw_round_trip(RawCommands& raw) {
  if (auto r = raw.submit(); !r) return r;
  return raw.wait_blocking(kTimeout);
}

struct Variant {
  std::function<Result<double>()> run;
  std::vector<double> gbps;
};

Result<void> bench_size(Device& device, const SizeCase& size, const RowSink& sink) {
  const uint64_t n = size.bytes;
  std::vector<std::byte> host(n), out(n);
  for (uint64_t i = 0; i < n; ++i) host[i] = static_cast<std::byte>((i * 131 + (i >> 12)) & 0xFF);
  auto dev = Buffer::create(device, n, BufferKind::device);
  if (!dev) return fail(dev.error());
  auto raw_src = Buffer::create(device, n, BufferKind::upload);
  if (!raw_src) return fail(raw_src.error());
  auto raw_dst = Buffer::create(device, n, BufferKind::readback);
  if (!raw_dst) return fail(raw_dst.error());
  if (auto r = raw_src->write_mapped(0, host); !r) return r;
  auto raw_up = RawCommands::create(device);
  if (!raw_up) return fail(raw_up.error());
  auto raw_down = RawCommands::create(device);
  if (!raw_down) return fail(raw_down.error());
  if (auto r = record_raw_copy(*raw_up, *raw_src, *dev, n, false); !r) return r;
  if (auto r = record_raw_copy(*raw_down, *dev, *raw_dst, n, true); !r) return r;
  // A Stream per size, declared after the buffers so that it is destroyed (waiting for
  // anything still in flight after an error) before them, and its staging is freed with it.
  auto created = Stream::create(device);
  if (!created) return fail(created.error());
  Stream& stream = **created;

  // Each variant returns the microseconds of its measured part.
  auto timed = [](const std::function<Result<void>()>& op) -> Result<double> {
    const auto t0 = BenchClock::now();
    if (auto r = op(); !r) return fail(r.error());
    return elapsed_us(t0);
  };
  Variant stream_up{[&] { return timed([&] { return stream.upload(*dev, 0, host, kTimeout); }); }, {}};
  // The producer's writes into staging are not timed (the raw baseline's host buffer is also
  // written outside its timing), but they happen, so the copy reads real pages with real data.
  Variant staged_up{[&]() -> Result<double> {
                      const auto t0 = BenchClock::now();
                      auto staged = stream.stage(n);
                      if (!staged) return fail(staged.error());
                      const double stage_us = elapsed_us(t0);
                      std::memcpy(staged->data, host.data(), n);
                      const auto t1 = BenchClock::now();
                      if (auto r = stream.record_upload_staged(*staged, *dev, 0); !r) {
                        stream.discard_open_batch();
                        return fail(r.error());
                      }
                      if (auto r = stream.submit_and_wait(kTimeout); !r) return fail(r.error());
                      return stage_us + elapsed_us(t1);
                    },
                    {}};
  Variant staged_down{[&]() -> Result<double> {
                        const auto t0 = BenchClock::now();
                        auto staged = stream.record_download_staged(*dev, 0, n);
                        if (!staged) return fail(staged.error());
                        if (auto r = stream.submit_and_wait(kTimeout); !r) return fail(r.error());
                        return elapsed_us(t0);
                      },
                      {}};
  Variant raw_upload{[&] { return timed([&] { return raw_round_trip(*raw_up); }); }, {}};
  Variant stream_down{[&] { return timed([&] { return stream.download(*dev, 0, out, kTimeout); }); }, {}};
  Variant raw_download{[&] { return timed([&] { return raw_round_trip(*raw_down); }); }, {}};
  // The host-side ceiling of a copying path: the same bytes moved by memcpy between two
  // ordinary host vectors, on one thread and through parallel_memcpy.
  std::vector<std::byte> host_copy(n);
  Variant memcpy_one{[&]() -> Result<double> {
    const auto t0 = BenchClock::now();
    std::memcpy(host_copy.data(), host.data(), n);
    return elapsed_us(t0);
  }};
  Variant memcpy_parallel{[&]() -> Result<double> {
    const auto t0 = BenchClock::now();
    parallel_memcpy(host_copy.data(), host.data(), n);
    return elapsed_us(t0);
  }};
  Variant* all[] = {&stream_up,    &staged_up,  &raw_upload,     &stream_down,
                    &staged_down, &raw_download, &memcpy_one, &memcpy_parallel};
  for (int rep = -size.warmup; rep < size.reps; ++rep) {
    for (Variant* v : all) {
      auto us = v->run();
      if (!us) return fail(us.error());
      if (rep >= 0) v->gbps.push_back(static_cast<double>(n) / *us / 1e3);
    }
  }

  // Both paths must have moved the right bytes: raw up + Stream down, Stream up + raw down.
  if (auto r = raw_round_trip(*raw_up); !r) return r;
  if (auto r = stream.download(*dev, 0, out, kTimeout); !r) return r;
  if (std::memcmp(out.data(), host.data(), n) != 0) {
    return fail(Errc::job_failed, vkn::format("transfer of {}: raw upload + Stream::download lost data", n));
  }
  std::fill(host.begin(), host.end(), std::byte{0x77});
  if (auto r = stream.upload(*dev, 0, host, kTimeout); !r) return r;
  if (auto r = raw_round_trip(*raw_down); !r) return r;
  if (std::memcmp(raw_dst->mapped(), host.data(), n) != 0) {
    return fail(Errc::job_failed, vkn::format("transfer of {}: Stream::upload + raw download lost data", n));
  }

  const std::string label = format_bytes(n);
  const double raw_up_gbps = median(raw_upload.gbps);
  sink({.section = "transfer",
        .metric = vkn::format("upload {}, Stream::upload vs raw copy", label),
        .unit = "GB/s",
        .value = median(stream_up.gbps),
        .baseline = raw_up_gbps});
  sink({.section = "transfer",
        .metric = vkn::format("upload {}, zero-copy stage+record vs raw copy", label),
        .unit = "GB/s",
        .value = median(staged_up.gbps),
        .baseline = raw_up_gbps});
  sink({.section = "transfer",
        .metric = vkn::format("download {}, Stream::download vs raw copy", label),
        .unit = "GB/s",
        .value = median(stream_down.gbps),
        .baseline = median(raw_download.gbps)});
  sink({.section = "transfer",
        .metric = vkn::format("download {}, zero-copy record+read in place vs raw", label),
        .unit = "GB/s",
        .value = median(staged_down.gbps),
        .baseline = median(raw_download.gbps)});
  sink({.section = "transfer",
        .metric = vkn::format("host memcpy {}: parallel_memcpy vs one thread", label),
        .unit = "GB/s",
        .value = median(memcpy_parallel.gbps),
        .baseline = median(memcpy_one.gbps)});
  return {};
}

}  // namespace

Result<void> bench_transfer(const BenchOptions& options, Device& device, const RowSink& sink) {
  const SizeCase sizes[] = {
      {4ull << 10, options.quick ? 50 : 200, 20},
      {1ull << 20, options.quick ? 10 : 100, 5},
      {options.quick ? (64ull << 20) : (256ull << 20), options.quick ? 3 : 5, 4},
  };
  for (const SizeCase& size : sizes) {
    if (auto r = bench_size(device, size, sink); !r) return r;
  }
  return {};
}

}  // namespace vkn::detail
