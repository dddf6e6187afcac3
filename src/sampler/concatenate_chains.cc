// Joins the results of disjoint chain slices of one run (hmc.h: concatenate_chains).
#include <algorithm>

#include "util/strformat.h"
#include "vknode/sampler/hmc.h"

namespace vkn::sampler {
namespace {

template <typename T>
void append(std::vector<T>& to, const std::vector<T>& from) {
  to.insert(to.end(), from.begin(), from.end());
}

// Appends `item` to a ", "-separated list unless it is already there.
void add_distinct(std::string& list, const std::string& item) {
  if (item.empty()) return;
  for (size_t at = 0; (at = list.find(item, at)) != std::string::npos; at += item.size()) {
    const bool starts = at == 0 || list.compare(at - 2, 2, ", ") == 0;
    const bool ends = at + item.size() == list.size() || list.compare(at + item.size(), 2, ", ") == 0;
    if (starts && ends) return;
  }
  list += list.empty() ? item : ", " + item;
}

Result<void> check_compatible(const SampleResult& first, const SampleResult& part, uint32_t next_chain) {
  auto bad = [](std::string_view what) {
    return fail(Errc::invalid_argument, vkn::format("cannot join sampler results: {}", what));
  };
  if (part.draws != first.draws) return bad("different numbers of draws");
  if (part.param_names != first.param_names) return bad("different parameters");
  if (part.warmup != first.warmup || part.steps != first.steps) return bad("different warm-up or steps");
  if (part.first_chain != next_chain) {
    return bad(vkn::format("a part starts at chain {} where chain {} is next", part.first_chain, next_chain));
  }
  const size_t per_chain = size_t{part.chains} * part.draws;
  if (part.lp.size() != per_chain || part.values.size() != per_chain * part.num_params() ||
      part.inv_metric.size() != part.chains || part.adapted_step_size.size() != part.chains) {
    return bad("a part's arrays do not match its chain count");
  }
  return {};
}

}  // namespace

Result<SampleResult> concatenate_chains(std::span<const SampleResult> parts) {
  if (parts.empty()) return fail(Errc::invalid_argument, "cannot join sampler results: no parts");
  SampleResult all;
  all.draws = parts[0].draws;
  all.param_names = parts[0].param_names;
  all.warmup = parts[0].warmup;
  all.steps = parts[0].steps;
  all.first_chain = parts[0].first_chain;
  double length_sum = 0;
  for (const SampleResult& part : parts) {
    if (auto r = check_compatible(parts[0], part, all.first_chain + all.chains); !r) return fail(r.error());
    all.chains += part.chains;
    append(all.values, part.values);
    append(all.lp, part.lp);
    append(all.accept_stat, part.accept_stat);
    append(all.step_size, part.step_size);
    append(all.energy, part.energy);
    append(all.n_leapfrog, part.n_leapfrog);
    append(all.divergent, part.divergent);
    append(all.adapted_step_size, part.adapted_step_size);
    append(all.inv_metric, part.inv_metric);
    length_sum += part.trajectory_length * part.chains;
    add_distinct(all.backend, part.backend);
    add_distinct(all.fallback_reason, part.fallback_reason);
    all.warmup_seconds = std::max(all.warmup_seconds, part.warmup_seconds);
    all.sampling_seconds = std::max(all.sampling_seconds, part.sampling_seconds);
    all.readback_seconds = std::max(all.readback_seconds, part.readback_seconds);
    all.gradient_evaluations += part.gradient_evaluations;
  }
  // Parts of one run agree on the length (the group shares it); a chain-weighted mean keeps
  // the figure meaningful for results joined from separate runs.
  all.trajectory_length = all.chains ? length_sum / all.chains : 0;
  return all;
}

}  // namespace vkn::sampler
