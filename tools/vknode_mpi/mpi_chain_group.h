// MpiChainGroup: the ranks of MPI_COMM_WORLD as one sampler run's ChainGroup. MPI errors come
// back as values (the communicator's handler is MPI_ERRORS_RETURN) with code node_dead: a peer
// that cannot be reached is, for this run, a dead node.
#pragma once

#include <mpi.h>

#include "vknode/sampler/chain_group.h"

namespace vkn::cli {

class MpiChainGroup final : public sampler::ChainGroup {
 public:
  MpiChainGroup(MPI_Comm comm, uint32_t total_chains);
  uint32_t rank() const override { return rank_; }
  uint32_t size() const override { return size_; }
  uint32_t total_chains() const override { return total_chains_; }
  Result<void> allreduce_sum(std::span<double> values) override;

 private:
  MPI_Comm comm_;
  uint32_t rank_ = 0, size_ = 1, total_chains_;
};

// An MPI return code as an error ("what: MPI's message").
Error mpi_error(int code, std::string_view what);

}  // namespace vkn::cli
