#include "sampler/chain_collective.h"

namespace vkn::sampler::detail {

Result<void> ChainCollective::sum(std::span<double> values) {
  if (!group_ || group_->size() <= 1) return {};
  return group_->allreduce_sum(values);
}

SumOverProcesses ChainCollective::sum_function() {
  return [this](std::span<double> values) { return sum(values); };
}

Result<double> ChainCollective::mean_step_size(const std::vector<ChainState>& states) {
  double total[2] = {0, static_cast<double>(states.size())};
  for (const auto& s : states) total[0] += s.step_size;
  if (auto r = sum(total); !r) return fail(r.error());
  return total[0] / total[1];
}

Result<WelfordVariance> ChainCollective::pooled(const std::vector<WelfordVariance>& per_chain) {
  WelfordVariance local = per_chain.at(0);
  for (size_t c = 1; c < per_chain.size(); ++c) local.merge(per_chain[c]);
  if (!group_ || group_->size() <= 1) return local;
  // Every process writes its estimate into its own slot of a zeroed table, so the sum is an
  // exact gather (x + 0 == x), and each process merges the slots in the same order.
  const size_t d = local.mean().size(), width = 1 + 2 * d, ranks = group_->size();
  std::vector<double> table(ranks * width, 0.0);
  double* slot = &table[group_->rank() * width];
  slot[0] = static_cast<double>(local.count());
  std::copy(local.mean().begin(), local.mean().end(), slot + 1);
  std::copy(local.m2().begin(), local.m2().end(), slot + 1 + d);
  if (auto r = sum(table); !r) return fail(r.error());
  WelfordVariance all(d);
  for (size_t k = 0; k < ranks; ++k) {
    const double* s = &table[k * width];
    all.merge(WelfordVariance::from_moments(static_cast<size_t>(s[0]), std::vector<double>(s + 1, s + 1 + d),
                                            std::vector<double>(s + 1 + d, s + 1 + 2 * d)));
  }
  return all;
}

}  // namespace vkn::sampler::detail
