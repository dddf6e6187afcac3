#include "sampler/hmc_transition.h"

#include <algorithm>
#include <cmath>

namespace vkn::sampler::detail {

void draw_momentum(std::span<double> p, std::span<const double> inv_metric, PhiloxKey key, uint32_t chain,
                   uint32_t iteration, uint32_t stream, uint32_t sub) {
  const size_t d = p.size();
  for (size_t j = 0; 4 * j < d; ++j) {
    const auto z = philox_normal4(philox_counter(static_cast<uint32_t>(j), chain, iteration, stream, sub), key);
    for (size_t k = 0; k < 4 && 4 * j + k < d; ++k) {
      const size_t i = 4 * j + k;
      p[i] = static_cast<double>(z[k]) / std::sqrt(inv_metric[i]);
    }
  }
}

double kinetic_energy(std::span<const double> p, std::span<const double> inv_metric) {
  double k = 0;
  for (size_t i = 0; i < p.size(); ++i) k += inv_metric[i] * p[i] * p[i];
  return 0.5 * k;
}

double leapfrog_step(const Model& model, double eps, std::span<const double> inv_metric, std::span<double> q,
                     std::span<double> p, std::span<double> grad) {
  const size_t d = q.size();
  const double half = 0.5 * eps;
  for (size_t i = 0; i < d; ++i) p[i] += half * grad[i];
  for (size_t i = 0; i < d; ++i) q[i] += eps * inv_metric[i] * p[i];
  const double lp = model.log_density(q, grad);
  for (size_t i = 0; i < d; ++i) p[i] += half * grad[i];
  return lp;
}

TransitionStats hmc_transition(const Model& model, ChainState& state, PhiloxKey key, uint32_t steps,
                               double step_size_jitter, TransitionScratch& s, std::span<double> proposal_q, std::span<double> proposal_v) {
  const size_t d = state.q.size();
  s.q.assign(state.q.begin(), state.q.end());
  s.grad.assign(state.grad.begin(), state.grad.end());
  s.p.resize(d);
  const uint32_t t = state.iteration;
  draw_momentum(s.p, state.inv_metric, key, state.chain, t, kStreamMomentum);
  const double h0 = -state.lp + kinetic_energy(s.p, state.inv_metric);

  // One Philox block gives the accept uniform (word 0) and the jitter uniform (word 1).
  const PhiloxCounter r = philox4x32_10(philox_counter(0, state.chain, t, kStreamAccept), key);
  TransitionStats st;
  st.step_size = state.step_size;
  if (step_size_jitter > 0) st.step_size *= 1.0 + step_size_jitter * (2.0 * philox_unit(r[1]) - 1.0);
  double lp = state.lp, h = h0;
  for (uint32_t k = 0; k < steps; ++k) {
    lp = leapfrog_step(model, st.step_size, state.inv_metric, s.q, s.p, s.grad);
    ++st.n_leapfrog;
    h = -lp + kinetic_energy(s.p, state.inv_metric);
    if (std::isnan(h) || h - h0 > kMaxEnergyError) {
      st.divergent = true;
      break;
    }
  }
  if (!proposal_q.empty()) std::copy(s.q.begin(), s.q.end(), proposal_q.begin());
  if (!proposal_v.empty()) {
    for (size_t i = 0; i < d; ++i) proposal_v[i] = state.inv_metric[i] * s.p[i];
  }
  st.accept_stat = st.divergent ? 0.0 : std::min(1.0, std::exp(h0 - h));
  if (std::isnan(st.accept_stat)) st.accept_stat = 0.0;
  const float u = philox_unit(r[0]);
  st.accepted = !st.divergent && static_cast<double>(u) < st.accept_stat;
  if (st.accepted) {
    state.q.swap(s.q);
    state.grad.swap(s.grad);
    state.lp = lp;
    st.energy = h;
  } else {
    st.energy = h0;
  }
  st.lp = state.lp;
  state.iteration = t + 1;
  return st;
}

}  // namespace vkn::sampler::detail
