// ChainGroup: the processes that together run one sampler run, each a contiguous slice of the
// chains (MPI ranks, see docs/mpi.md). The driver (hmc.h) calls it only for what crosses chains
// in warm-up: the pooled metric, the mean step size that sets ChEES's step count, the ChEES
// gradient, and the pooled step size. Everything else stays per chain, and every chain draws
// from the Philox streams of its global index, so a run split over processes with per-chain
// adaptation gives exactly the draws of one process running all the chains.
//
// Implementations: MpiChainGroup (tools/vknode_mpi) and, in the tests, a group of threads.
// Every process of the group must make the same calls in the same order with the same sizes.
#pragma once

#include <cstdint>
#include <span>

#include "vknode/error.h"

namespace vkn::sampler {

class ChainGroup {
 public:
  virtual ~ChainGroup() = default;
  virtual uint32_t rank() const = 0;  // this process, in [0, size())
  virtual uint32_t size() const = 0;  // processes in the group
  // Chains over all processes (the sum of every process's SamplerConfig::chains).
  virtual uint32_t total_chains() const = 0;
  // Element-wise sum over every process, in place. Errors: whatever the transport reports
  // (a process that died: node_dead).
  [[nodiscard]] virtual Result<void> allreduce_sum(std::span<double> values) = 0;
};

}  // namespace vkn::sampler
