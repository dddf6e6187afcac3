// Section "dispatch": the round trip of a tiny dispatch (fill_u32 over 64 words: record,
// submit, wait) through Stream, spinning (the default) and blocking (spin 0), against the
// same dispatch from a command buffer recorded once with the raw Vulkan C API on the same
// VkDevice and queue, waited for with a blocking vkWaitForFences or a vkGetFenceStatus spin.
// The four variants run in interleaved rounds so that drift in the machine hits all alike.
#include "bench_sections.h"

#include <vulkan/vulkan.h>

#include <cstring>
#include <functional>
#include <vector>

#include "raw_commands.h"
#include "util/strformat.h"
#include "vknode/gpu/buffer.h"
#include "vknode/gpu/builtin_kernels.h"
#include "vknode/gpu/device.h"
#include "vknode/gpu/kernel.h"
#include "vknode/gpu/stream.h"

namespace vkn::detail {
namespace {

constexpr uint32_t kWords = 64;
constexpr std::chrono::seconds kTimeout{30};
constexpr int kRounds = 4;

std::span<const std::byte> push_bytes(const FillPush& push) { return std::as_bytes(std::span(&push, 1)); }

// One round trip through the layer: record_dispatch + submit + wait.
Result<void> stream_round_trip(Stream& stream, const Kernel& kernel, const Buffer& buffer, uint32_t value) {
  const BufferBinding binding[] = {{0, &buffer}};
  const FillPush push{kWords, value};
  if (auto r = stream.record_dispatch(kernel, binding, push_bytes(push), {1, 1, 1}); !r) {
    stream.discard_open_batch();
    return r;
  }
  auto ticket = stream.submit();
  if (!ticket) return fail(ticket.error());
  return stream.wait(*ticket, kTimeout);
}

// Records the same dispatch once into `raw`, writing `value`.
Result<void> record_raw_dispatch(Device& device, RawCommands& raw, const Kernel& kernel, const Buffer& buffer,
                                 uint32_t value) {
  auto cmd = raw.begin();
  if (!cmd) return fail(cmd.error());
  // The same barrier Stream puts before each command, so both sides give the GPU equal work.
  VkMemoryBarrier barrier{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
  barrier.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
  barrier.dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_READ_BIT |
                          VK_ACCESS_TRANSFER_WRITE_BIT;
  constexpr VkPipelineStageFlags kStages = VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT;
  vkCmdPipelineBarrier(*cmd, kStages, kStages, 0, 1, &barrier, 0, nullptr, 0, nullptr);
  vkCmdBindPipeline(*cmd, VK_PIPELINE_BIND_POINT_COMPUTE, kernel.pipeline());
  const VkDescriptorBufferInfo info{buffer.handle(), 0, VK_WHOLE_SIZE};
  VkWriteDescriptorSet write{VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET};
  write.dstBinding = 0;
  write.descriptorCount = 1;
  write.descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
  write.pBufferInfo = &info;
  device.push_descriptor_fn()(*cmd, VK_PIPELINE_BIND_POINT_COMPUTE, kernel.pipeline_layout(), 0, 1, &write);
  const FillPush push{kWords, value};
  vkCmdPushConstants(*cmd, kernel.pipeline_layout(), VK_SHADER_STAGE_COMPUTE_BIT, 0, sizeof push, &push);
  vkCmdDispatch(*cmd, 1, 1, 1);
  return raw.end();
}

// Checks that the last variant to run really wrote `value` into every word.
Result<void> check_buffer(Stream& stream, const Buffer& buffer, uint32_t value, const char* who) {
  std::vector<uint32_t> words(kWords, 0);
  if (auto r = stream.download(buffer, 0, std::as_writable_bytes(std::span(words)), kTimeout); !r) return r;
  for (uint32_t w : words) {
    if (w != value) {
      return fail(Errc::job_failed, vkn::format("{} dispatch wrote 0x{:x}, expected 0x{:x}", who, w, value));
    }
  }
  return {};
}

struct Variant {
  const char* name;
  std::function<Result<void>()> round_trip;
  std::vector<double> us;
};

}  // namespace

Result<void> bench_dispatch(const BenchOptions& options, Device& device, const RowSink& sink) {
  const int iterations = options.quick ? 200 : 2000;
  const int warmup = options.quick ? 20 : 100;
  auto kernel = Kernel::create(device, nullptr, builtin_spirv(BuiltinKernel::fill_u32), {}, "fill_u32");
  if (!kernel) return fail(kernel.error());
  auto buffer = Buffer::create(device, kWords * sizeof(uint32_t));
  if (!buffer) return fail(buffer.error());
  auto spinning = Stream::create(device);
  if (!spinning) return fail(spinning.error());
  StreamOptions blocking_options;
  blocking_options.spin = std::chrono::microseconds{0};
  auto blocking = Stream::create(device, blocking_options);
  if (!blocking) return fail(blocking.error());
  auto raw = RawCommands::create(device);
  if (!raw) return fail(raw.error());
  constexpr uint32_t kRawValue = 0x5A5A5A5A;
  if (auto r = record_raw_dispatch(device, *raw, **kernel, *buffer, kRawValue); !r) return r;

  const Kernel& k = **kernel;
  const Buffer& b = *buffer;
  uint32_t value = 0;
  Variant variants[] = {
      {"Stream spin", [&] { return stream_round_trip(**spinning, k, b, ++value); }, {}},
      {"Stream blocking", [&] { return stream_round_trip(**blocking, k, b, ++value); }, {}},
      {"raw spin",
       [&]() -> Result<void> {
         if (auto r = raw->submit(); !r) return r;
         return raw->wait_spin(kTimeout);
       },
       {}},
      {"raw blocking",
       [&]() -> Result<void> {
         if (auto r = raw->submit(); !r) return r;
         return raw->wait_blocking(kTimeout);
       },
       {}},
  };
  for (Variant& v : variants) {
    for (int i = 0; i < warmup; ++i) {
      if (auto r = v.round_trip(); !r) return r;
    }
    v.us.reserve(iterations);
  }
  const int per_round = (iterations + kRounds - 1) / kRounds;
  for (int round = 0; round < kRounds; ++round) {
    for (Variant& v : variants) {
      for (int i = 0; i < per_round && static_cast<int>(v.us.size()) < iterations; ++i) {
        const auto t0 = BenchClock::now();
        if (auto r = v.round_trip(); !r) return r;
        v.us.push_back(elapsed_us(t0));
      }
    }
  }
  // The raw loops ran last in the last round: their value must be in the buffer, then the layer's.
  if (auto r = check_buffer(**spinning, b, kRawValue, "raw"); !r) return r;
  if (auto r = stream_round_trip(**spinning, k, b, ++value); !r) return r;
  if (auto r = check_buffer(**spinning, b, value, "Stream"); !r) return r;

  const auto& [stream_spin, stream_block, raw_spin, raw_block] = variants;
  const std::string n = vkn::format("n={}", iterations);
  for (const auto& [p, label] : {std::pair{50.0, "p50"}, std::pair{99.0, "p99"}}) {
    sink({.section = "dispatch",
          .metric = vkn::format("round trip {}, Stream (spin) vs raw spin, {}", label, n),
          .unit = "us",
          .value = percentile(stream_spin.us, p),
          .baseline = percentile(raw_spin.us, p)});
  }
  for (const auto& [p, label] : {std::pair{50.0, "p50"}, std::pair{99.0, "p99"}}) {
    sink({.section = "dispatch",
          .metric = vkn::format("round trip {}, Stream (spin=0) vs raw blocking", label),
          .unit = "us",
          .value = percentile(stream_block.us, p),
          .baseline = percentile(raw_block.us, p)});
  }
  for (const auto& [p, label] : {std::pair{50.0, "p50"}, std::pair{99.0, "p99"}}) {
    sink({.section = "dispatch",
          .metric = vkn::format("round trip {}, raw blocking vs raw spin", label),
          .unit = "us",
          .value = percentile(raw_block.us, p),
          .baseline = percentile(raw_spin.us, p)});
  }
  return {};
}

}  // namespace vkn::detail
