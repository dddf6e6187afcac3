// Which chains and which device a rank takes (pure functions, so the split is tested without
// MPI).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace vkn::cli {

struct ChainShare {
  uint32_t first = 0, count = 0;
};

// Chains as equal as possible, the first (total % ranks) ranks one more; in rank order.
ChainShare chain_share(uint32_t total, uint32_t ranks, uint32_t rank);

// The device selector of the rank with index `local_rank` among the ranks on its machine: the
// machine's devices in turn.
std::string device_for_rank(const std::vector<std::string>& selectors, uint32_t local_rank);

// CPU threads for one rank: the machine's cores shared by its ranks (at least 1).
unsigned threads_for_rank(unsigned hardware_threads, uint32_t local_ranks);

}  // namespace vkn::cli
