// Program: the lower-level, serializable unit of work for Node::exec and the daemon.
// A list of steps on named registry buffers: uploads, kernel dispatches (by content
// hash), copies, fills, barriers and downloads. Plain data; thread-compatible.
// The node validates a whole Program against its registry and kernels before any
// step runs; the steps then run in order in one GPU batch, each seeing the writes
// of the steps before it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "vknode/gpu/kernel.h"

namespace vkn {

struct UploadStep {
  std::string buffer;
  uint64_t offset = 0;
  std::vector<std::byte> data;
};

// Binds `range` bytes of a registry buffer from `offset` (range 0: to the end).
struct NamedBinding {
  uint32_t binding = 0;
  std::string buffer;
  uint64_t offset = 0;
  uint64_t range = 0;
};

struct DispatchStep {
  KernelId kernel{};  // from Node::register_kernel or builtin_kernel_id()
  std::vector<NamedBinding> bindings;
  std::vector<std::byte> push;
  GroupCount groups{1, 1, 1};
};

struct CopyStep {
  std::string src;
  uint64_t src_offset = 0;
  std::string dst;
  uint64_t dst_offset = 0;
  uint64_t bytes = 0;
};

struct FillStep {
  std::string buffer;
  uint64_t offset = 0;
  uint64_t bytes = 0;  // multiple of 4
  uint32_t value = 0;
};

struct BarrierStep {};

struct DownloadStep {
  std::string buffer;
  uint64_t offset = 0;
  uint64_t bytes = 0;
};

using ProgramStep = std::variant<UploadStep, DispatchStep, CopyStep, FillStep, BarrierStep, DownloadStep>;

struct Program {
  std::vector<ProgramStep> steps;

  Program& upload(std::string buffer, uint64_t offset, std::vector<std::byte> data);
  Program& dispatch(const KernelId& kernel, std::vector<NamedBinding> bindings, std::vector<std::byte> push,
                    GroupCount groups);
  Program& copy(std::string src, uint64_t src_offset, std::string dst, uint64_t dst_offset, uint64_t bytes);
  Program& fill(std::string buffer, uint64_t offset, uint64_t bytes, uint32_t value);
  Program& barrier();
  Program& download(std::string buffer, uint64_t offset, uint64_t bytes);
};

// What exec returns: one byte vector per DownloadStep, in step order.
struct ProgramResult {
  std::vector<std::vector<std::byte>> downloads;
  double gpu_wait_ms = 0;  // time from submit to completion
};

// Limits every Program must respect (checked before anything runs).
inline constexpr size_t kMaxProgramSteps = 4096;
inline constexpr uint64_t kMaxProgramTransferBytes = 1ull << 30;  // uploads + downloads in one Program

}  // namespace vkn
