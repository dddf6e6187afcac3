#include "sampler/adaptation.h"

#include <algorithm>
#include <cmath>

namespace vkn::sampler::detail {

void DualAveraging::restart(double step_size) {
  mu_ = std::log(10 * step_size);
  s_bar_ = 0;
  x_bar_ = 0;
  counter_ = 0;
}

double DualAveraging::learn(double accept_stat) {
  ++counter_;
  accept_stat = std::min(1.0, accept_stat);
  const double eta = 1.0 / (counter_ + t0_);
  s_bar_ = (1.0 - eta) * s_bar_ + eta * (delta_ - accept_stat);
  const double x = mu_ - s_bar_ * std::sqrt(counter_) / gamma_;
  const double x_eta = std::pow(counter_, -kappa_);
  x_bar_ = (1.0 - x_eta) * x_bar_ + x_eta * x;
  return std::exp(x);
}

double DualAveraging::final_step_size() const { return std::exp(x_bar_); }

WindowSchedule::WindowSchedule(uint32_t num_warmup, uint32_t init_buffer, uint32_t term_buffer, uint32_t base_window)
    : num_warmup_(num_warmup), init_buffer_(init_buffer), term_buffer_(term_buffer), base_window_(base_window) {
  if (num_warmup < 20) {
    enabled_ = false;  // Stan: no metric estimation for num_warmup < 20
  } else if (init_buffer + base_window + term_buffer > num_warmup) {
    init_buffer_ = static_cast<uint32_t>(0.15 * num_warmup);
    term_buffer_ = static_cast<uint32_t>(0.1 * num_warmup);
    base_window_ = num_warmup - (init_buffer_ + term_buffer_);
  }
  window_size_ = base_window_;
  next_window_ = init_buffer_ + window_size_ - 1;
}

bool WindowSchedule::in_window() const {
  return enabled_ && counter_ >= init_buffer_ && counter_ < num_warmup_ - term_buffer_ && counter_ != num_warmup_;
}

bool WindowSchedule::end_of_window() const {
  return enabled_ && counter_ == next_window_ && counter_ != num_warmup_;
}

void WindowSchedule::compute_next_window() {
  if (next_window_ == num_warmup_ - term_buffer_ - 1) return;
  window_size_ *= 2;
  next_window_ = counter_ + window_size_;
  if (next_window_ != num_warmup_ - term_buffer_ - 1) {
    const uint32_t next_boundary = next_window_ + 2 * window_size_;
    if (next_boundary >= num_warmup_ - term_buffer_) next_window_ = num_warmup_ - term_buffer_ - 1;
  }
}

void WelfordVariance::add(std::span<const double> x) {
  ++n_;
  for (size_t i = 0; i < x.size(); ++i) {
    const double delta = x[i] - mean_[i];
    mean_[i] += delta / static_cast<double>(n_);
    m2_[i] += delta * (x[i] - mean_[i]);
  }
}

WelfordVariance WelfordVariance::from_moments(size_t n, std::vector<double> mean, std::vector<double> m2) {
  WelfordVariance w;
  w.n_ = n;
  w.mean_ = std::move(mean);
  w.m2_ = std::move(m2);
  return w;
}

void WelfordVariance::merge(const WelfordVariance& o) {
  if (o.n_ == 0) return;
  if (n_ == 0) {
    *this = o;
    return;
  }
  const double na = static_cast<double>(n_), nb = static_cast<double>(o.n_), n = na + nb;
  for (size_t i = 0; i < mean_.size(); ++i) {
    const double delta = o.mean_[i] - mean_[i];
    mean_[i] += delta * nb / n;
    m2_[i] += o.m2_[i] + delta * delta * na * nb / n;
  }
  n_ += o.n_;
}

std::vector<double> WelfordVariance::regularized_variance() const {
  const double n = static_cast<double>(n_);
  std::vector<double> var(m2_.size());
  for (size_t i = 0; i < var.size(); ++i) {
    const double v = n > 1 ? m2_[i] / (n - 1) : 1.0;
    var[i] = (n / (n + 5.0)) * v + 1e-3 * (5.0 / (n + 5.0));
  }
  return var;
}

void WelfordVariance::restart() {
  n_ = 0;
  std::fill(mean_.begin(), mean_.end(), 0.0);
  std::fill(m2_.begin(), m2_.end(), 0.0);
}

Result<void> ChEES::update(size_t chains, size_t d, std::span<const double> q, std::span<const double> q_prop,
                           std::span<const double> v_prop, std::span<const double> accept, std::span<const double> t,
                           double min_t, double max_t, const SumOverProcesses& sum) {
  // Sums first, then one division: the same arithmetic whether the chains are in one process or many.
  std::vector<double> sums(2 * d + 1, 0.0);  // sum q, sum q', chain count
  for (size_t c = 0; c < chains; ++c) {
    for (size_t i = 0; i < d; ++i) {
      sums[i] += q[c * d + i];
      sums[d + i] += q_prop[c * d + i];
    }
  }
  sums[2 * d] = static_cast<double>(chains);
  if (sum) {
    if (auto r = sum(sums); !r) return r;
  }
  const double all = sums[2 * d];
  if (!(all > 0)) return {};
  std::vector<double> mean(d), mean_prop(d);
  for (size_t i = 0; i < d; ++i) {
    mean[i] = sums[i] / all;
    mean_prop[i] = sums[d + i] / all;
  }
  double weighted[2] = {0, 0};  // sum a_c g_c, sum a_c
  for (size_t c = 0; c < chains; ++c) {
    double sq = 0, sq_prop = 0, dot = 0;
    for (size_t i = 0; i < d; ++i) {
      const double a = q[c * d + i] - mean[i], b = q_prop[c * d + i] - mean_prop[i];
      sq += a * a;
      sq_prop += b * b;
      dot += b * v_prop[c * d + i];
    }
    const double g = t[c] * (sq_prop - sq) * dot;
    if (!std::isfinite(g) || !(accept[c] > 0)) continue;
    weighted[0] += accept[c] * g;
    weighted[1] += accept[c];
  }
  if (sum) {
    if (auto r = sum(weighted); !r) return r;
  }
  if (weighted[1] <= 0) return {};
  const double g = weighted[0] / weighted[1];
  ++updates_;
  v_ = beta2_ * v_ + (1 - beta2_) * g * g;
  const double v_hat = v_ / (1 - std::pow(beta2_, updates_));
  log_t_ += rate_ * g / (std::sqrt(v_hat) + 1e-8);
  log_t_ = std::clamp(log_t_, std::log(min_t), std::log(max_t));
  return {};
}

uint32_t ChEES::steps(uint32_t iteration, double mean_step_size, uint32_t max_steps) const {
  // The tolerance keeps exp(log(T)) rounding from adding a step.
  const double k = std::ceil(halton(iteration) * length() / mean_step_size - 1e-9);
  if (!(k >= 1)) return 1;
  return k >= max_steps ? max_steps : static_cast<uint32_t>(k);
}

double halton(uint32_t i) {
  uint64_t n = uint64_t{i} + 1;
  double f = 0.5, r = 0;
  while (n > 0) {
    r += f * static_cast<double>(n & 1);
    n >>= 1;
    f *= 0.5;
  }
  return r;
}

}  // namespace vkn::sampler::detail
