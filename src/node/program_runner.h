// Validates a Program against the node's registry and kernels, then records all its
// steps into one batch and runs it. Called on the node's worker thread.
#pragma once

#include <vector>

#include "vknode/node/node.h"

namespace vkn {

// The kernels a Program dispatches (for quarantine checks before it is queued).
std::vector<KernelId> program_kernels(const Program& program);

// Errors: invalid_argument / not_found (validation; nothing has run), kernel_quarantined,
// device_lost, and stream errors.
[[nodiscard]] Result<ProgramResult> run_program(Context& ctx, const Program& program);

}  // namespace vkn
