#include "rank_plan.h"

namespace vkn::cli {

ChainShare chain_share(uint32_t total, uint32_t ranks, uint32_t rank) {
  const uint32_t base = total / ranks, extra = total % ranks;
  return {rank * base + (rank < extra ? rank : extra), base + (rank < extra ? 1 : 0)};
}

std::string device_for_rank(const std::vector<std::string>& selectors, uint32_t local_rank) {
  if (selectors.empty()) return "";
  return selectors[local_rank % selectors.size()];
}

unsigned threads_for_rank(unsigned hardware_threads, uint32_t local_ranks) {
  if (local_ranks == 0) return hardware_threads ? hardware_threads : 1;
  const unsigned t = hardware_threads / local_ranks;
  return t ? t : 1;
}

}  // namespace vkn::cli
