// ChainCollective: the driver's cross-chain reductions over every process of a run split with a
// ChainGroup (chain_group.h); with no group, over this process's chains. Driver thread only.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "sampler/adaptation.h"
#include "vknode/sampler/chain_group.h"
#include "vknode/sampler/leapfrog_backend.h"

namespace vkn::sampler::detail {

class ChainCollective {
 public:
  // `group` is borrowed and may be null.
  explicit ChainCollective(ChainGroup* group) : group_(group) {}

  // Adds `values` over every process, in place (nothing to do without a group).
  Result<void> sum(std::span<double> values);
  SumOverProcesses sum_function();

  // The mean step size over every chain of every process.
  Result<double> mean_step_size(const std::vector<ChainState>& states);

  // One Welford estimate pooled over every chain of every process: this process's chains are
  // merged in chain order, then the processes' estimates in rank order.
  Result<WelfordVariance> pooled(const std::vector<WelfordVariance>& per_chain);

 private:
  ChainGroup* group_;
};

}  // namespace vkn::sampler::detail
