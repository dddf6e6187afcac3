// Stream: records dispatches, copies, fills, uploads and downloads into command
// buffers and submits them in batches on the device's compute queue. A small ring of
// slots (command pool, command buffer, staging memory) lets the host record the next
// batch while the GPU runs the previous one; staging memory is reused, not allocated
// per call. While a wait spins on the newest batch, the next one is opened (its command
// pool reset and its buffer begun), work the next recording would otherwise do after the
// wait. Each batch signals the stream's timeline semaphore with its serial; a slot
// is reused only once the counter has passed its batch. Every wait has a deadline; it
// spins on the counter briefly, then blocks. (Polling the counter, not a fence: on the
// H200's driver a fence poll that sees completion leaves 0.6-1.2 us of slow stores
// behind, which the next locked instruction or cross-thread signal waits for; the
// counter leaves none and answers 0.5 us sooner. docs/benchmarks.md, 2026-11-29.)
// Owns its Vulkan objects; must not outlive its Device. Not thread-safe: one thread
// records and submits (the node's worker thread).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "vknode/error.h"
#include "vknode/gpu/kernel.h"
#include "vknode/gpu/vk_handle.h"

namespace vkn {

class Buffer;
class Device;

struct StreamOptions {
  uint32_t slots = 3;
  // How long a wait spins on the timeline counter before it blocks in the driver.
  std::chrono::microseconds spin{200};
  // Deadline for waiting on a slot's previous batch before it is reused.
  std::chrono::milliseconds reuse_timeout{30'000};
  // Staging memory one batch may use for uploads and downloads together.
  uint64_t max_staging_bytes = 256ull << 20;
  // Staging memory each slot keeps between batches (per direction). More is given back
  // after the batch that needed it, rather than pinned for the life of the stream.
  uint64_t retained_staging_bytes = 256ull << 20;
  // Open the next batch while a wait spins on the newest one (see wait()).
  bool open_next_early = true;
  // Put a full compute/transfer memory barrier between consecutive commands, so
  // that commands in a batch observe each other's writes in order.
  bool auto_barriers = true;
};

// Names a submitted batch.
struct Ticket {
  uint64_t serial = 0;
};

// Host-visible staging memory inside the open batch (zero-copy uploads).
struct StagingSpan {
  std::byte* data = nullptr;
  uint64_t size = 0;
  const Buffer* buffer = nullptr;
  uint64_t offset = 0;
};

struct StreamStats {
  uint64_t batches = 0;
  uint64_t commands = 0;
  uint64_t staging_bytes = 0;  // staging memory held by all slots
  uint64_t staging_allocations = 0;
  uint64_t batches_opened_early = 0;  // opened while a wait spun on the batch before
};

class Stream {
 public:
  // Errors: vulkan_error, device_lost.
  [[nodiscard]] static Result<std::unique_ptr<Stream>> create(Device& device, const StreamOptions& options = {});
  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  // --- Recording into the open batch (opened on first use). ---
  // Requires: the kernel and buffers outlive the batch.
  // Errors: invalid_argument (see Kernel::check_dispatch), device_lost, timeout (a slot stayed busy).
  [[nodiscard]] Result<void> record_dispatch(const Kernel& kernel, std::span<const BufferBinding> bindings,
                                             std::span<const std::byte> push, GroupCount groups);
  [[nodiscard]] Result<void> record_copy(const Buffer& src, uint64_t src_offset, const Buffer& dst,
                                         uint64_t dst_offset, uint64_t bytes);
  // Fills with a repeated 32-bit value; offset and bytes must be multiples of 4.
  [[nodiscard]] Result<void> record_fill(const Buffer& dst, uint64_t offset, uint64_t bytes, uint32_t value);
  // Copies `data` into staging now; the GPU copies it into `dst` when the batch runs.
  [[nodiscard]] Result<void> record_upload(const Buffer& dst, uint64_t offset, std::span<const std::byte> data);
  // Zero-copy upload: stage() gives host memory in this batch; fill it, then record_upload_staged.
  [[nodiscard]] Result<StagingSpan> stage(uint64_t bytes);
  [[nodiscard]] Result<void> record_upload_staged(const StagingSpan& staged, const Buffer& dst, uint64_t offset);
  // `out` receives the bytes when a wait sees the batch complete.
  // Requires: `out` stays valid until then.
  [[nodiscard]] Result<void> record_download(const Buffer& src, uint64_t offset, std::span<std::byte> out);
  // Zero-copy download: the bytes land in staging memory of this batch, readable through
  // the returned span once a wait sees the batch complete, and until the next batch
  // after it opens in the same slot (the stream's slot count later).
  [[nodiscard]] Result<StagingSpan> record_download_staged(const Buffer& src, uint64_t offset, uint64_t bytes);
  // An explicit full barrier (needed only with auto_barriers off).
  void record_barrier();
  // Whether the open batch holds anything (a batch the stream opened early does not).
  bool has_open_batch() const;

  // --- Submission and waiting. ---
  // Ends and submits the open batch; with none open, returns a ticket that is complete.
  // Errors: device_lost, vulkan_error.
  [[nodiscard]] Result<Ticket> submit();
  // Waits until the batch is done and its downloads are delivered.
  // Errors: timeout (the batch keeps running; wait again later), device_lost.
  [[nodiscard]] Result<void> wait(Ticket ticket, std::chrono::nanoseconds timeout);
  [[nodiscard]] Result<void> submit_and_wait(std::chrono::nanoseconds timeout);
  // Whether everything submitted so far has completed (polls; never blocks).
  bool is_idle();
  // Drops the open batch without submitting it (after a recording error).
  void discard_open_batch();

  // --- Synchronous transfers of any size, pipelined through the slots. ---
  [[nodiscard]] Result<void> upload(const Buffer& dst, uint64_t offset, std::span<const std::byte> data,
                                    std::chrono::nanoseconds timeout);
  [[nodiscard]] Result<void> download(const Buffer& src, uint64_t offset, std::span<std::byte> out,
                                      std::chrono::nanoseconds timeout);

  StreamStats stats() const;
  const StreamOptions& options() const { return options_; }

 private:
  struct Slot;
  Stream(Device& device, const StreamOptions& options);
  Result<Slot*> open_batch();
  // Opens the next batch now if its slot is free (never waits); see wait().
  void open_next_batch_early();
  bool is_complete(uint64_t serial);
  Result<void> wait_slot(Slot& slot, std::chrono::steady_clock::time_point deadline);
  void finish_slot(Slot& slot);  // delivers downloads; marks the slot free
  Result<StagingSpan> stage_in(Slot& slot, uint64_t bytes, bool readback);
  Result<void> check_usable() const;
  void barrier_before_command(Slot& slot);
  uint64_t transfer_chunk() const;

  // Highest serial the timeline counter has been seen to pass; errors as vkGetSemaphoreCounterValue.
  Result<uint64_t> completed_on_gpu();
  // Blocks in the driver until the counter reaches `serial` (vkWaitSemaphores' result).
  VkResult block_until_completed(uint64_t serial, uint64_t timeout_ns);

  Device& device_;
  StreamOptions options_;
  bool yield_in_spin_ = false;
  OwnedSemaphore timeline_;  // signalled with each batch's serial
  std::vector<std::unique_ptr<Slot>> slots_;
  Slot* open_ = nullptr;       // the batch being recorded, if any
  uint64_t next_serial_ = 1;   // serial of the next submitted batch
  StreamStats stats_;
};

}  // namespace vkn
