// Warm-up adaptation pieces, each a small value type used by the driver thread only:
// Stan's dual averaging step-size adaptation and windowed variance schedule, a Welford
// variance estimator, and ChEES trajectory-length adaptation (see hmc.h for the formulas).
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "vknode/error.h"

namespace vkn::sampler::detail {

// Stan's stepsize_adaptation (Hoffman & Gelman 2014, section 3.2.1).
class DualAveraging {
 public:
  explicit DualAveraging(double delta = 0.8, double gamma = 0.05, double t0 = 10, double kappa = 0.75)
      : delta_(delta), gamma_(gamma), t0_(t0), kappa_(kappa) {}
  // Starts over around `step_size` (mu = log(10 step_size)).
  void restart(double step_size);
  // Learns from one iteration's acceptance statistic; returns the next step size.
  double learn(double accept_stat);
  // exp(x_bar): the step size to sample with.
  double final_step_size() const;

 private:
  double delta_, gamma_, t0_, kappa_;
  double mu_ = 0, s_bar_ = 0, x_bar_ = 0;
  double counter_ = 0;
};

// Stan's windowed_adaptation schedule for num_warmup iterations.
class WindowSchedule {
 public:
  WindowSchedule(uint32_t num_warmup, uint32_t init_buffer = 75, uint32_t term_buffer = 50,
                 uint32_t base_window = 25);
  // Whether the current iteration's draw feeds the variance estimate.
  bool in_window() const;
  // Whether the current iteration closes a slow window (then compute_next_window()).
  bool end_of_window() const;
  void compute_next_window();
  // Moves to the next iteration.
  void next() { ++counter_; }
  bool enabled() const { return enabled_; }

 private:
  bool enabled_ = true;
  uint32_t num_warmup_, init_buffer_, term_buffer_, base_window_;
  uint32_t counter_ = 0, window_size_ = 0, next_window_ = 0;
};

class WelfordVariance {
 public:
  explicit WelfordVariance(size_t d = 0) : mean_(d, 0.0), m2_(d, 0.0) {}
  // An estimator in the state another one reported (count, mean, m2), e.g. from another process.
  static WelfordVariance from_moments(size_t n, std::vector<double> mean, std::vector<double> m2);
  void add(std::span<const double> x);
  // Merges another estimator's samples (Chan et al.), for pooling chains.
  void merge(const WelfordVariance& other);
  size_t count() const { return n_; }
  const std::vector<double>& mean() const { return mean_; }
  const std::vector<double>& m2() const { return m2_; }  // sum of squared deviations
  // Stan's regularized sample variance: (n / (n + 5)) var + 1e-3 (5 / (n + 5)).
  std::vector<double> regularized_variance() const;
  void restart();

 private:
  size_t n_ = 0;
  std::vector<double> mean_, m2_;
};

// Adds a vector over every process of a run split over processes, in place (chain_group.h);
// nothing to do for a run in one process.
using SumOverProcesses = std::function<Result<void>(std::span<double>)>;

// ChEES adaptation of the trajectory length T over chains.
class ChEES {
 public:
  explicit ChEES(double initial_length, double learning_rate = 0.025, double beta2 = 0.95)
      : log_t_(std::log(initial_length)), rate_(learning_rate), beta2_(beta2) {}
  double length() const { return std::exp(log_t_); }
  // One Adam step on log T from an iteration of `chains` chains in `d` dimensions: points before
  // the transition, proposals and their velocities ([chain][d]), acceptance probabilities, and
  // each chain's trajectory time t_c = K eps_c. Lengths are clamped to [min_t, max_t].
  // With `sum` the chains are this process's share and the means and the gradient run over
  // every process's chains (its errors come back; T is then unchanged).
  Result<void> update(size_t chains, size_t d, std::span<const double> q, std::span<const double> q_prop,
                      std::span<const double> v_prop, std::span<const double> accept, std::span<const double> t,
                      double min_t, double max_t, const SumOverProcesses& sum = {});
  // Leapfrog steps for iteration `iteration`: max(1, ceil(halton(iteration) T / eps)), capped.
  uint32_t steps(uint32_t iteration, double mean_step_size, uint32_t max_steps) const;

 private:
  double log_t_, rate_, beta2_;
  double v_ = 0;
  uint32_t updates_ = 0;
};

// The base-2 van der Corput (Halton) number of i + 1, in (0, 1).
double halton(uint32_t i);

}  // namespace vkn::sampler::detail
