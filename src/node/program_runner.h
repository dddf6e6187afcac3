// Validates a Program against the node's registry and kernels, then records all its
// steps into one batch and runs it. Called by whoever holds the node's GPU objects: its
// worker thread, or a caller running an exec inline (node_impl.h).
#pragma once

#include <vector>

#include "vknode/node/node.h"

namespace vkn {

// The kernels a Program dispatches (for quarantine checks before it is queued).
std::vector<KernelId> program_kernels(const Program& program);

// Errors: invalid_argument / not_found (validation; nothing has run), kernel_quarantined,
// device_lost, and stream errors.
[[nodiscard]] Result<ProgramResult> run_program(Context& ctx, const Program& program);

// run_program's part before the GPU: validates, then records into the context's stream
// (not submitted). `result` gets the download buffers, which the batch fills when a wait
// sees it complete. Errors as run_program's validation; nothing is left recorded.
[[nodiscard]] Result<void> record_program(Context& ctx, const Program& program, ProgramResult& result);

}  // namespace vkn
