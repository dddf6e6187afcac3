// SampleResult as bytes, to move one process's share of a run to another (MPI ranks send
// theirs to rank 0, which joins them with concatenate_chains). Host byte order: for processes
// of one job on machines of one architecture. A versioned header; every length is checked on
// decode, so a truncated or foreign buffer is an error, never a crash.
#pragma once

#include <cstddef>
#include <span>
#include <vector>

#include "vknode/error.h"
#include "vknode/sampler/hmc.h"

namespace vkn::sampler {

std::vector<std::byte> encode_result(const SampleResult& result);

// Errors: protocol_error (not an encoded SampleResult, another version, truncated, or
// inconsistent lengths).
Result<SampleResult> decode_result(std::span<const std::byte> bytes);

}  // namespace vkn::sampler
