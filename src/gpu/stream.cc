#include "vknode/gpu/stream.h"

#include <optional>

#include <algorithm>
#include "util/strformat.h"
#include <thread>

#include "util/parallel_memcpy.h"
#include "vknode/gpu/buffer.h"
#include "vknode/gpu/device.h"
#include "vknode/gpu/vk_handle.h"

namespace vkn {
namespace {

using Clock = std::chrono::steady_clock;
constexpr uint64_t kStagingAlign = 256;
constexpr uint64_t kMinStagingChunk = 1ull << 20;
// Synchronous transfers move this much per batch, so that filling (or draining) one
// slot's staging overlaps the GPU copy of the previous one.
constexpr uint64_t kTransferChunk = 32ull << 20;


inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#else
  std::this_thread::yield();
#endif
}

// Staging memory of one slot: chunks of host-visible buffers with a bump pointer.
struct StagingArena {
  std::vector<Buffer> chunks;
  uint64_t used_in_last = 0;
  uint64_t used_total = 0;

  uint64_t capacity() const {
    uint64_t c = 0;
    for (const Buffer& b : chunks) c += b.size();
    return c;
  }
};

VkMemoryBarrier full_barrier() {
  VkMemoryBarrier b{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
  b.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
  b.dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_READ_BIT |
                    VK_ACCESS_TRANSFER_WRITE_BIT;
  return b;
}

constexpr VkPipelineStageFlags kWorkStages = VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT;

}  // namespace

struct Stream::Slot {
  OwnedCommandPool pool;
  VkCommandBuffer cmd = VK_NULL_HANDLE;
  uint64_t serial = 0;   // batch last submitted from this slot
  bool pending = false;  // submitted and not yet seen complete
  uint32_t commands = 0;
  StagingArena upload;
  StagingArena readback;
  struct Download {
    const std::byte* src;
    std::byte* dst;
    uint64_t bytes;
  };
  std::vector<Download> downloads;
  bool has_host_reads = false;  // a staged download: the host reads staging after the batch
  // Something was recorded or staged. A batch opened early (open_next_batch_early) stays
  // open, unrecorded, until something is: until then it is neither submitted nor discarded.
  bool recorded = false;
};

Stream::Stream(Device& device, const StreamOptions& options)
    : device_(device),
      options_(options),
      // On a CPU device the queue's worker threads share our cores: spinning starves them.
      yield_in_spin_(device.info().type == VK_PHYSICAL_DEVICE_TYPE_CPU) {}

uint64_t Stream::transfer_chunk() const { return std::min(kTransferChunk, options_.max_staging_bytes / 2); }

Stream::~Stream() {
  // Never destroy a command buffer the GPU may still use. On a really lost device the
  // wait returns VK_ERROR_DEVICE_LOST at once.
  uint64_t last = 0;
  for (auto& s : slots_) {
    if (s->pending) last = std::max(last, s->serial);
  }
  if (last == 0 || timeline_.get() == VK_NULL_HANDLE) return;
  (void)block_until_completed(last, 10'000'000'000ull);
}

Result<std::unique_ptr<Stream>> Stream::create(Device& device, const StreamOptions& options) {
  if (options.slots == 0 || options.slots > 64) return fail(Errc::invalid_argument, "stream slots must be 1..64");
  std::unique_ptr<Stream> stream(new Stream(device, options));
  const VkDevice dev = device.handle();
  for (uint32_t i = 0; i < options.slots; ++i) {
    auto slot = std::make_unique<Slot>();
    VkCommandPoolCreateInfo pci{VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO};
    pci.flags = VK_COMMAND_POOL_CREATE_TRANSIENT_BIT;
    pci.queueFamilyIndex = device.queue_family();
    VkCommandPool pool = VK_NULL_HANDLE;
    VkResult r = vkCreateCommandPool(dev, &pci, nullptr, &pool);
    if (r != VK_SUCCESS) return fail(Error::vulkan(r, "vkCreateCommandPool"));
    slot->pool = OwnedCommandPool(dev, pool);
    VkCommandBufferAllocateInfo ai{VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO};
    ai.commandPool = pool;
    ai.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
    ai.commandBufferCount = 1;
    r = vkAllocateCommandBuffers(dev, &ai, &slot->cmd);
    if (r != VK_SUCCESS) return fail(Error::vulkan(r, "vkAllocateCommandBuffers"));
    stream->slots_.push_back(std::move(slot));
  }
  VkSemaphoreTypeCreateInfo type{VK_STRUCTURE_TYPE_SEMAPHORE_TYPE_CREATE_INFO};
  type.semaphoreType = VK_SEMAPHORE_TYPE_TIMELINE;
  type.initialValue = 0;
  VkSemaphoreCreateInfo sci{VK_STRUCTURE_TYPE_SEMAPHORE_CREATE_INFO};
  sci.pNext = &type;
  VkSemaphore sem = VK_NULL_HANDLE;
  const VkResult r = vkCreateSemaphore(dev, &sci, nullptr, &sem);
  if (r != VK_SUCCESS) return fail(Error::vulkan(r, "vkCreateSemaphore (timeline)"));
  stream->timeline_ = OwnedSemaphore(dev, sem);
  return stream;
}

Result<void> Stream::check_usable() const {
  if (device_.is_lost()) return fail(Errc::device_lost, "the device was lost");
  return {};
}

Result<Stream::Slot*> Stream::open_batch() {
  if (auto r = check_usable(); !r) return fail(r.error());
  if (open_ != nullptr) return open_;
  Slot& s = *slots_[next_serial_ % slots_.size()];
  if (s.pending) {
    if (auto r = wait_slot(s, Clock::now() + options_.reuse_timeout); !r) return fail(r.error());
    finish_slot(s);
  }
  VkResult r = vkResetCommandPool(device_.handle(), s.pool.get(), 0);
  if (r != VK_SUCCESS) return fail(Error::vulkan(r, "resetting a stream slot"));
  // Steady state: one staging chunk per arena, as big as the largest batch seen, up to
  // options_.retained_staging_bytes; anything beyond is given back.
  for (StagingArena* a : {&s.upload, &s.readback}) {
    const uint64_t capacity = a->capacity();
    if (a->chunks.size() > 1 || capacity > options_.retained_staging_bytes) {
      const uint64_t keep = std::min({capacity, options_.retained_staging_bytes, options_.max_staging_bytes});
      const BufferKind kind = a == &s.upload ? BufferKind::upload : BufferKind::readback;
      a->chunks.clear();
      if (auto b = Buffer::create(device_, keep, kind)) {
        a->chunks.push_back(std::move(*b));
        ++stats_.staging_allocations;
      }
    }
    a->used_in_last = 0;
    a->used_total = 0;
  }
  VkCommandBufferBeginInfo bi{VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
  bi.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
  r = vkBeginCommandBuffer(s.cmd, &bi);
  if (r != VK_SUCCESS) return fail(Error::vulkan(r, "vkBeginCommandBuffer"));
  s.commands = 0;
  s.has_host_reads = false;
  s.recorded = false;
  open_ = &s;
  return open_;
}

void Stream::open_next_batch_early() {
  const Slot& next = *slots_[next_serial_ % slots_.size()];
  // Never waits for a slot; and a slot whose last batch had staged downloads stays as it
  // is, since the host may read those until the slot's next batch opens (record_download_staged).
  if (open_ != nullptr || next.pending || next.has_host_reads) return;
  if (open_batch()) ++stats_.batches_opened_early;  // a failure comes back from the first record
}

void Stream::barrier_before_command(Slot& slot) {
  // The first command of a batch also waits for earlier batches on the queue.
  if (options_.auto_barriers) {
    const VkMemoryBarrier b = full_barrier();
    vkCmdPipelineBarrier(slot.cmd, kWorkStages, kWorkStages, 0, 1, &b, 0, nullptr, 0, nullptr);
  }
  slot.recorded = true;
  ++slot.commands;
  ++stats_.commands;
}

void Stream::record_barrier() {
  if (open_ == nullptr) return;
  open_->recorded = true;
  const VkMemoryBarrier b = full_barrier();
  vkCmdPipelineBarrier(open_->cmd, kWorkStages, kWorkStages, 0, 1, &b, 0, nullptr, 0, nullptr);
}

Result<void> Stream::record_dispatch(const Kernel& kernel, std::span<const BufferBinding> bindings,
                                     std::span<const std::byte> push, GroupCount groups) {
  if (auto r = kernel.check_dispatch(bindings, push, groups); !r) return r;
  auto slot = open_batch();
  if (!slot) return fail(slot.error());
  Slot& s = **slot;
  barrier_before_command(s);
  if (groups[0] == 0 || groups[1] == 0 || groups[2] == 0) return {};  // an empty grid is a no-op
  vkCmdBindPipeline(s.cmd, VK_PIPELINE_BIND_POINT_COMPUTE, kernel.pipeline());
  VkDescriptorBufferInfo infos[32];
  VkWriteDescriptorSet writes[32];
  if (bindings.size() > 32) return fail(Errc::invalid_argument, "at most 32 buffers per dispatch");
  for (size_t i = 0; i < bindings.size(); ++i) {
    infos[i] = {bindings[i].buffer->handle(), bindings[i].offset, bindings[i].range};
    writes[i] = {VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET};
    writes[i].dstBinding = bindings[i].binding;
    writes[i].descriptorCount = 1;
    writes[i].descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
    writes[i].pBufferInfo = &infos[i];
  }
  if (!bindings.empty()) {
    device_.push_descriptor_fn()(s.cmd, VK_PIPELINE_BIND_POINT_COMPUTE, kernel.pipeline_layout(), 0,
                                 static_cast<uint32_t>(bindings.size()), writes);
  }
  if (!push.empty()) {
    vkCmdPushConstants(s.cmd, kernel.pipeline_layout(), VK_SHADER_STAGE_COMPUTE_BIT, 0,
                       static_cast<uint32_t>(push.size()), push.data());
  }
  vkCmdDispatch(s.cmd, groups[0], groups[1], groups[2]);
  return {};
}

Result<void> Stream::record_copy(const Buffer& src, uint64_t src_offset, const Buffer& dst, uint64_t dst_offset,
                                 uint64_t bytes) {
  if (auto r = src.check_range(src_offset, bytes); !r) return r;
  if (auto r = dst.check_range(dst_offset, bytes); !r) return r;
  if (&src == &dst && src_offset < dst_offset + bytes && dst_offset < src_offset + bytes) {
    return fail(Errc::invalid_argument, "copy source and destination overlap");
  }
  if (bytes == 0) return {};
  auto slot = open_batch();
  if (!slot) return fail(slot.error());
  barrier_before_command(**slot);
  const VkBufferCopy region{src_offset, dst_offset, bytes};
  vkCmdCopyBuffer((*slot)->cmd, src.handle(), dst.handle(), 1, &region);
  return {};
}

Result<void> Stream::record_fill(const Buffer& dst, uint64_t offset, uint64_t bytes, uint32_t value) {
  if (offset % 4 != 0 || bytes % 4 != 0) {
    return fail(Errc::invalid_argument, vkn::format("fill offset {} and size {} must be multiples of 4", offset, bytes));
  }
  if (auto r = dst.check_range(offset, bytes); !r) return r;
  if (bytes == 0) return {};
  auto slot = open_batch();
  if (!slot) return fail(slot.error());
  barrier_before_command(**slot);
  vkCmdFillBuffer((*slot)->cmd, dst.handle(), offset, bytes, value);
  return {};
}

Result<StagingSpan> Stream::stage_in(Slot& slot, uint64_t bytes, bool readback) {
  StagingArena& a = readback ? slot.readback : slot.upload;
  const uint64_t other = readback ? slot.upload.used_total : slot.readback.used_total;
  const uint64_t aligned = (bytes + kStagingAlign - 1) / kStagingAlign * kStagingAlign;
  if (a.used_total + other + aligned > options_.max_staging_bytes) {
    return fail(Errc::invalid_argument,
                vkn::format("a batch may stage at most {} bytes; use Stream::upload/download for large transfers",
                            options_.max_staging_bytes));
  }
  if (a.chunks.empty() || a.used_in_last + aligned > a.chunks.back().size()) {
    const uint64_t last = a.chunks.empty() ? 0 : a.chunks.back().size();
    const uint64_t size = std::min(std::max({aligned, 2 * last, kMinStagingChunk}), options_.max_staging_bytes);
    auto b = Buffer::create(device_, size, readback ? BufferKind::readback : BufferKind::upload);
    if (!b) return fail(b.error());
    a.chunks.push_back(std::move(*b));
    a.used_in_last = 0;
    ++stats_.staging_allocations;
  }
  const Buffer& chunk = a.chunks.back();
  slot.recorded = true;
  StagingSpan span{chunk.mapped() + a.used_in_last, bytes, &chunk, a.used_in_last};
  a.used_in_last += aligned;
  a.used_total += aligned;
  return span;
}

Result<StagingSpan> Stream::stage(uint64_t bytes) {
  if (bytes == 0) return fail(Errc::invalid_argument, "cannot stage zero bytes");
  auto slot = open_batch();
  if (!slot) return fail(slot.error());
  return stage_in(**slot, bytes, false);
}

Result<void> Stream::record_upload_staged(const StagingSpan& staged, const Buffer& dst, uint64_t offset) {
  if (open_ == nullptr || staged.buffer == nullptr) {
    return fail(Errc::invalid_argument, "staged memory belongs to no open batch");
  }
  return record_copy(*staged.buffer, staged.offset, dst, offset, staged.size);
}

Result<void> Stream::record_upload(const Buffer& dst, uint64_t offset, std::span<const std::byte> data) {
  if (auto r = dst.check_range(offset, data.size()); !r) return r;
  if (data.empty()) return {};
  auto staged = stage(data.size());
  if (!staged) return fail(staged.error());
  parallel_memcpy(staged->data, data.data(), data.size());
  return record_upload_staged(*staged, dst, offset);
}

Result<void> Stream::record_download(const Buffer& src, uint64_t offset, std::span<std::byte> out) {
  if (auto r = src.check_range(offset, out.size()); !r) return r;
  if (out.empty()) return {};
  auto slot = open_batch();
  if (!slot) return fail(slot.error());
  auto staged = stage_in(**slot, out.size(), true);
  if (!staged) return fail(staged.error());
  barrier_before_command(**slot);
  const VkBufferCopy region{offset, staged->offset, out.size()};
  vkCmdCopyBuffer((*slot)->cmd, src.handle(), staged->buffer->handle(), 1, &region);
  (*slot)->downloads.push_back({staged->data, out.data(), out.size()});
  return {};
}

Result<StagingSpan> Stream::record_download_staged(const Buffer& src, uint64_t offset, uint64_t bytes) {
  if (bytes == 0) return fail(Errc::invalid_argument, "cannot download zero bytes");
  if (auto r = src.check_range(offset, bytes); !r) return fail(r.error());
  auto slot = open_batch();
  if (!slot) return fail(slot.error());
  auto staged = stage_in(**slot, bytes, true);
  if (!staged) return fail(staged.error());
  barrier_before_command(**slot);
  const VkBufferCopy region{offset, staged->offset, bytes};
  vkCmdCopyBuffer((*slot)->cmd, src.handle(), staged->buffer->handle(), 1, &region);
  (*slot)->has_host_reads = true;
  return staged;
}

void Stream::discard_open_batch() {
  if (!has_open_batch()) return;  // nothing recorded: a batch opened early stays open
  vkEndCommandBuffer(open_->cmd);
  open_->downloads.clear();
  open_ = nullptr;
}

Result<Ticket> Stream::submit() {
  if (!has_open_batch()) return Ticket{next_serial_ - 1};
  Slot& s = *open_;
  open_ = nullptr;
  if (!s.downloads.empty() || s.has_host_reads) {
    VkMemoryBarrier b{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
    b.srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT;
    b.dstAccessMask = VK_ACCESS_HOST_READ_BIT;
    vkCmdPipelineBarrier(s.cmd, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &b, 0, nullptr, 0,
                         nullptr);
  }
  VkResult r = vkEndCommandBuffer(s.cmd);
  if (r != VK_SUCCESS) {
    s.downloads.clear();
    return fail(Error::vulkan(r, "vkEndCommandBuffer"));
  }
  FaultInjection& faults = device_.TEST_faults();
  if (faults.lose_device_on_submit.load() > 0 && faults.lose_device_on_submit.fetch_sub(1) > 0) {
    r = VK_ERROR_DEVICE_LOST;
  } else {
    const uint64_t signal = next_serial_;
    VkTimelineSemaphoreSubmitInfo tsi{VK_STRUCTURE_TYPE_TIMELINE_SEMAPHORE_SUBMIT_INFO};
    tsi.signalSemaphoreValueCount = 1;
    tsi.pSignalSemaphoreValues = &signal;
    VkSemaphore sem = timeline_.get();
    VkSubmitInfo si{VK_STRUCTURE_TYPE_SUBMIT_INFO};
    si.pNext = &tsi;
    si.commandBufferCount = 1;
    si.pCommandBuffers = &s.cmd;
    si.signalSemaphoreCount = 1;
    si.pSignalSemaphores = &sem;
    r = vkQueueSubmit(device_.queue(), 1, &si, VK_NULL_HANDLE);
  }
  if (r != VK_SUCCESS) {
    s.downloads.clear();
    if (r == VK_ERROR_DEVICE_LOST) device_.mark_lost();
    return fail(Error::vulkan(r, "vkQueueSubmit"));
  }
  s.serial = next_serial_++;
  s.pending = true;
  ++stats_.batches;
  return Ticket{s.serial};
}

VkResult Stream::block_until_completed(uint64_t serial, uint64_t timeout_ns) {
  VkSemaphore sem = timeline_.get();
  VkSemaphoreWaitInfo wi{VK_STRUCTURE_TYPE_SEMAPHORE_WAIT_INFO};
  wi.semaphoreCount = 1;
  wi.pSemaphores = &sem;
  wi.pValues = &serial;
  return vkWaitSemaphores(device_.handle(), &wi, timeout_ns);
}

Result<uint64_t> Stream::completed_on_gpu() {
  uint64_t value = 0;
  const VkResult r = vkGetSemaphoreCounterValue(device_.handle(), timeline_.get(), &value);
  if (r == VK_SUCCESS) return value;
  if (r == VK_ERROR_DEVICE_LOST) device_.mark_lost();
  return fail(Error::vulkan(r, "vkGetSemaphoreCounterValue"));
}

bool Stream::is_complete(uint64_t serial) {
  auto done = completed_on_gpu();
  return done && *done >= serial;
}

Result<void> Stream::wait_slot(Slot& slot, Clock::time_point deadline) {
  FaultInjection& faults = device_.TEST_faults();
  if (faults.hang_waits.load() > 0 && faults.hang_waits.fetch_sub(1) > 0) {
    std::this_thread::sleep_until(deadline);
    return fail(Errc::timeout, vkn::format("GPU batch {} did not finish in time (injected hang)", slot.serial));
  }
  const auto spin_end = std::min(Clock::now() + options_.spin, deadline);
  while (true) {
    auto done = completed_on_gpu();
    if (!done) return fail(done.error());
    if (*done >= slot.serial) return {};
    if (Clock::now() >= spin_end) break;
    cpu_relax();
    if (yield_in_spin_) std::this_thread::yield();
  }
  const auto left = deadline - Clock::now();
  const uint64_t ns = left.count() > 0 ? std::chrono::duration_cast<std::chrono::nanoseconds>(left).count() : 0;
  const VkResult r = block_until_completed(slot.serial, ns);
  if (r == VK_SUCCESS) return {};
  if (r == VK_TIMEOUT) {
    return fail(Errc::timeout, vkn::format("GPU batch {} still running at its deadline", slot.serial));
  }
  if (r == VK_ERROR_DEVICE_LOST) device_.mark_lost();
  return fail(Error::vulkan(r, "vkWaitSemaphores"));
}

void Stream::finish_slot(Slot& slot) {
  for (const Slot::Download& d : slot.downloads) parallel_memcpy(d.dst, d.src, d.bytes);
  slot.downloads.clear();
  slot.pending = false;
}

Result<void> Stream::wait(Ticket ticket, std::chrono::nanoseconds timeout) {
  if (ticket.serial >= next_serial_) return fail(Errc::invalid_argument, "ticket of a batch never submitted");
  for (auto& s : slots_) {
    if (s->pending && s->serial == ticket.serial) {
      if (device_.is_lost()) return fail(Errc::device_lost, "the device was lost");
      // While the GPU runs the newest batch, the next one is opened: the command pool's
      // reset and vkBeginCommandBuffer (1 us on the H200) then cost its recording nothing.
      if (options_.open_next_early && ticket.serial + 1 == next_serial_ && !is_complete(ticket.serial)) {
        open_next_batch_early();
      }
      if (auto r = wait_slot(*s, Clock::now() + timeout); !r) return r;
      finish_slot(*s);
      return {};
    }
  }
  return {};  // its slot was reused, which happens only after completion
}

Result<void> Stream::submit_and_wait(std::chrono::nanoseconds timeout) {
  auto ticket = submit();
  if (!ticket) return fail(ticket.error());
  return wait(*ticket, timeout);
}

bool Stream::has_open_batch() const { return open_ != nullptr && open_->recorded; }

bool Stream::is_idle() {
  std::optional<uint64_t> done;
  for (auto& s : slots_) {
    if (!s->pending) continue;
    if (!done) {
      auto value = completed_on_gpu();
      if (!value) return false;
      done = *value;
    }
    if (*done < s->serial) return false;
    finish_slot(*s);
  }
  return true;
}

namespace {

// Records `total` bytes as batches of at most `chunk` (record(done, n) adds one), submits
// each at once so that host copies overlap GPU copies, then waits for all of them.
template <typename RecordChunk>
Result<void> transfer_in_chunks(Stream& stream, uint64_t total, uint64_t chunk, std::chrono::nanoseconds timeout,
                                RecordChunk&& record) {
  const auto deadline = Clock::now() + timeout;
  std::vector<Ticket> tickets;
  for (uint64_t done = 0; done < total; done += chunk) {
    if (auto r = record(done, std::min<uint64_t>(chunk, total - done)); !r) {
      stream.discard_open_batch();
      return r;
    }
    auto t = stream.submit();
    if (!t) return fail(t.error());
    tickets.push_back(*t);
  }
  for (Ticket t : tickets) {
    if (auto r = stream.wait(t, deadline - Clock::now()); !r) return r;
  }
  return {};
}

}  // namespace

Result<void> Stream::upload(const Buffer& dst, uint64_t offset, std::span<const std::byte> data,
                            std::chrono::nanoseconds timeout) {
  if (auto r = dst.check_range(offset, data.size()); !r) return r;
  return transfer_in_chunks(*this, data.size(), transfer_chunk(), timeout, [&](uint64_t done, uint64_t n) {
    return record_upload(dst, offset + done, data.subspan(done, n));
  });
}

Result<void> Stream::download(const Buffer& src, uint64_t offset, std::span<std::byte> out,
                              std::chrono::nanoseconds timeout) {
  if (auto r = src.check_range(offset, out.size()); !r) return r;
  return transfer_in_chunks(*this, out.size(), transfer_chunk(), timeout, [&](uint64_t done, uint64_t n) {
    return record_download(src, offset + done, out.subspan(done, n));
  });
}

StreamStats Stream::stats() const {
  StreamStats s = stats_;
  for (const auto& slot : slots_) s.staging_bytes += slot->upload.capacity() + slot->readback.capacity();
  return s;
}

}  // namespace vkn
