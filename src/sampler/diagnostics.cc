// R-hat, ESS and MCSE as defined in diagnostics.h.
#include "vknode/sampler/diagnostics.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <complex>
#include <limits>
#include <numeric>
#include <thread>

#include "sampler/special_math.h"

namespace vkn::sampler {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Columns of equal length n: chains[c][i].
using Chains = std::vector<std::vector<double>>;

Chains to_chains(std::span<const double> draws, size_t chains) {
  Chains out(chains);
  if (chains == 0) return out;
  const size_t n = draws.size() / chains;
  for (size_t c = 0; c < chains; ++c) out[c].assign(draws.begin() + c * n, draws.begin() + (c + 1) * n);
  return out;
}

Chains split(const Chains& x) {
  Chains out;
  for (const auto& chain : x) {
    const size_t n = chain.size(), half = n / 2;
    if (n < 2) {
      out.push_back(chain);
      continue;
    }
    out.emplace_back(chain.begin(), chain.begin() + half);
    out.emplace_back(chain.begin() + (n - half), chain.end());
  }
  return out;
}

std::vector<double> flatten(const Chains& x) {
  std::vector<double> v;
  for (const auto& c : x) v.insert(v.end(), c.begin(), c.end());
  return v;
}

// posterior's should_return_NA: any non-finite value, or all values equal.
bool degenerate(std::span<const double> v) {
  if (v.empty()) return true;
  for (double x : v) {
    if (!std::isfinite(x)) return true;
  }
  const auto [lo, hi] = std::minmax_element(v.begin(), v.end());
  return *lo == *hi;
}

// Rank normalization with average ranks for ties.
Chains z_scale(const Chains& x) {
  const std::vector<double> v = flatten(x);
  const size_t s = v.size();
  std::vector<size_t> order(s);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return v[a] < v[b]; });
  std::vector<double> z(s);
  for (size_t i = 0; i < s;) {
    size_t j = i;
    while (j + 1 < s && v[order[j + 1]] == v[order[i]]) ++j;
    const double rank = 0.5 * static_cast<double>(i + j) + 1.0;  // average of ranks i+1 .. j+1
    const double p = (rank - 0.375) / (static_cast<double>(s) + 0.25);
    for (size_t k = i; k <= j; ++k) z[order[k]] = detail::inv_normal_cdf(p);
    i = j + 1;
  }
  Chains out = x;
  size_t at = 0;
  for (auto& c : out) {
    for (double& e : c) e = z[at++];
  }
  return out;
}

void fft(std::vector<std::complex<double>>& a, bool inverse) {
  const size_t n = a.size();
  for (size_t i = 1, j = 0; i < n; ++i) {
    size_t bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) std::swap(a[i], a[j]);
  }
  for (size_t len = 2; len <= n; len <<= 1) {
    const double angle = 2 * detail::kPi / static_cast<double>(len) * (inverse ? 1 : -1);
    const std::complex<double> wlen(std::cos(angle), std::sin(angle));
    for (size_t i = 0; i < n; i += len) {
      std::complex<double> w(1);
      for (size_t k = 0; k < len / 2; ++k) {
        const auto u = a[i + k], v = a[i + k + len / 2] * w;
        a[i + k] = u + v;
        a[i + k + len / 2] = u - v;
        w *= wlen;
      }
    }
  }
  if (inverse) {
    for (auto& x : a) x /= static_cast<double>(n);
  }
}

// Biased autocovariances acov[t] = (1/n) sum_{i < n-t} (x_i - mean)(x_{i+t} - mean).
std::vector<double> autocovariance(const std::vector<double>& x) {
  const size_t n = x.size();
  const double mean = std::accumulate(x.begin(), x.end(), 0.0) / static_cast<double>(n);
  size_t m = 1;
  while (m < 2 * n) m <<= 1;
  std::vector<std::complex<double>> a(m);
  for (size_t i = 0; i < n; ++i) a[i] = x[i] - mean;
  fft(a, false);
  for (auto& v : a) v = std::norm(v);
  fft(a, true);
  std::vector<double> ac(n);
  for (size_t i = 0; i < n; ++i) ac[i] = a[i].real() / static_cast<double>(n);
  return ac;
}

double mean_of(const std::vector<double>& v) {
  return std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
}

double sample_variance(const std::vector<double>& v) {
  const double m = mean_of(v);
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return s / static_cast<double>(v.size() - 1);
}

// posterior's .ess on chains as given.
double ess_of(const Chains& x) {
  const size_t chains = x.size(), n = chains ? x[0].size() : 0;
  if (n < 3 || degenerate(flatten(x))) return kNaN;
  std::vector<std::vector<double>> acov(chains);
  std::vector<double> chain_mean(chains);
  for (size_t c = 0; c < chains; ++c) {
    acov[c] = autocovariance(x[c]);
    chain_mean[c] = mean_of(x[c]);
  }
  auto mean_acov = [&](size_t t) {
    double s = 0;
    for (size_t c = 0; c < chains; ++c) s += acov[c][t];
    return s / static_cast<double>(chains);
  };
  const double nd = static_cast<double>(n);
  const double mean_var = mean_acov(0) * nd / (nd - 1);
  double var_plus = mean_var * (nd - 1) / nd;
  if (chains > 1) var_plus += sample_variance(chain_mean);

  std::vector<double> rho(n, 0.0);
  size_t t = 0;
  double rho_even = 1.0, rho_odd = 1 - (mean_var - mean_acov(1)) / var_plus;
  rho[0] = rho_even;
  rho[1] = rho_odd;
  while (t + 5 < n && !std::isnan(rho_even + rho_odd) && rho_even + rho_odd > 0) {
    t += 2;
    rho_even = 1 - (mean_var - mean_acov(t)) / var_plus;
    rho_odd = 1 - (mean_var - mean_acov(t + 1)) / var_plus;
    if (rho_even + rho_odd >= 0) {
      rho[t] = rho_even;
      rho[t + 1] = rho_odd;
    }
  }
  const size_t max_t = t;
  if (rho_even > 0) rho[max_t] = rho_even;
  // Geyer's initial monotone sequence.
  for (t = 0; t + 4 <= max_t;) {
    t += 2;
    if (rho[t] + rho[t + 1] > rho[t - 2] + rho[t - 1]) {
      rho[t] = (rho[t - 2] + rho[t - 1]) / 2;
      rho[t + 1] = rho[t];
    }
  }
  const double s = static_cast<double>(chains) * nd;
  double tau = -1 + rho[max_t];
  for (size_t i = 0; i < max_t; ++i) tau += 2 * rho[i];
  tau = std::max(tau, 1 / std::log10(s));
  return s / tau;
}

double rhat_of(const Chains& x) {
  const size_t chains = x.size(), n = chains ? x[0].size() : 0;
  if (chains < 2 || n < 2 || degenerate(flatten(x))) return kNaN;
  std::vector<double> means(chains), vars(chains);
  for (size_t c = 0; c < chains; ++c) {
    means[c] = mean_of(x[c]);
    vars[c] = sample_variance(x[c]);
  }
  const double nd = static_cast<double>(n);
  const double between = nd * sample_variance(means), within = mean_of(vars);
  return std::sqrt((between / within + nd - 1) / nd);
}

bool too_short(std::span<const double> draws, size_t chains) {
  return chains == 0 || draws.size() % chains != 0 || draws.size() / chains < 4;
}

}  // namespace

namespace {

// quantile() of values already in ascending order.
double quantile_of_sorted(std::span<const double> v, double p) {
  if (v.empty() || !(p >= 0 && p <= 1)) return kNaN;
  const double h = (static_cast<double>(v.size()) - 1) * p;
  const size_t lo = static_cast<size_t>(std::floor(h));
  const size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (h - static_cast<double>(lo)) * (v[hi] - v[lo]);
}

// quantile(v, 0.5) in linear time.
double median_of(std::vector<double> v) {
  if (v.empty()) return kNaN;
  const double h = (static_cast<double>(v.size()) - 1) * 0.5;
  const size_t lo = static_cast<size_t>(std::floor(h));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(lo), v.end());
  const double a = v[lo];
  const double b = lo + 1 < v.size() ? *std::min_element(v.begin() + static_cast<std::ptrdiff_t>(lo) + 1, v.end()) : a;
  return a + (h - static_cast<double>(lo)) * (b - a);
}

std::vector<double> sorted_copy(std::span<const double> values) {
  std::vector<double> v(values.begin(), values.end());
  std::sort(v.begin(), v.end());
  return v;
}

}  // namespace

double quantile(std::span<const double> values, double p) {
  if (values.empty() || !(p >= 0 && p <= 1)) return kNaN;
  return quantile_of_sorted(sorted_copy(values), p);
}

double split_rhat(std::span<const double> draws, size_t chains) {
  if (too_short(draws, chains) || degenerate(draws)) return kNaN;
  const Chains s = split(to_chains(draws, chains));
  const std::vector<double> all = flatten(s);
  const double med = median_of(all);
  Chains folded = s;
  for (auto& c : folded) {
    for (double& x : c) x = std::abs(x - med);
  }
  const double bulk = rhat_of(z_scale(s)), tail = rhat_of(z_scale(folded));
  if (std::isnan(bulk) || std::isnan(tail)) return std::isnan(bulk) ? tail : bulk;
  return std::max(bulk, tail);
}

double ess_bulk(std::span<const double> draws, size_t chains) {
  if (too_short(draws, chains) || degenerate(draws)) return kNaN;
  return ess_of(z_scale(split(to_chains(draws, chains))));
}

double ess_tail(std::span<const double> draws, size_t chains) {
  if (too_short(draws, chains) || degenerate(draws)) return kNaN;
  const Chains s = split(to_chains(draws, chains));
  const std::vector<double> all = sorted_copy(flatten(s));
  double result = std::numeric_limits<double>::infinity();
  for (double p : {0.05, 0.95}) {
    const double q = quantile_of_sorted(all, p);
    Chains ind = s;
    for (auto& c : ind) {
      for (double& x : c) x = x <= q ? 1.0 : 0.0;
    }
    const double e = ess_of(ind);
    if (std::isnan(e)) return kNaN;
    result = std::min(result, e);
  }
  return result;
}

double ess_mean(std::span<const double> draws, size_t chains) {
  if (too_short(draws, chains)) return kNaN;
  return ess_of(split(to_chains(draws, chains)));
}

double ess_basic(std::span<const double> draws, size_t chains) {
  if (too_short(draws, chains)) return kNaN;
  return ess_of(to_chains(draws, chains));
}

double mcse_mean(std::span<const double> draws, size_t chains) {
  if (too_short(draws, chains) || degenerate(draws)) return kNaN;
  const std::vector<double> v(draws.begin(), draws.end());
  return std::sqrt(sample_variance(v) / ess_mean(draws, chains));
}

ParamSummary summarize_param(std::string name, std::span<const double> draws, size_t chains) {
  ParamSummary s;
  s.name = std::move(name);
  const std::vector<double> v(draws.begin(), draws.end());
  s.mean = v.empty() ? kNaN : mean_of(v);
  s.sd = v.size() < 2 ? kNaN : std::sqrt(sample_variance(v));
  const std::vector<double> sorted = sorted_copy(v);
  s.q5 = quantile_of_sorted(sorted, 0.05);
  s.q50 = quantile_of_sorted(sorted, 0.5);
  s.q95 = quantile_of_sorted(sorted, 0.95);
  s.mcse_mean = mcse_mean(draws, chains);
  s.ess_bulk = ess_bulk(draws, chains);
  s.ess_tail = ess_tail(draws, chains);
  s.rhat = split_rhat(draws, chains);
  return s;
}

RunSummary summarize(const SampleResult& r) {
  RunSummary s;
  s.chains = r.chains;
  s.draws = r.draws;
  s.warmup = r.warmup;
  s.backend = r.backend;
  s.fallback_reason = r.fallback_reason;
  s.trajectory_length = r.trajectory_length;
  s.gradient_evaluations = r.gradient_evaluations;
  s.warmup_seconds = r.warmup_seconds;
  s.sampling_seconds = r.sampling_seconds;
  const double total = static_cast<double>(r.lp.size());
  for (size_t i = 0; i < r.lp.size(); ++i) {
    s.mean_accept_stat += r.accept_stat[i] / total;
    s.mean_step_size += r.step_size[i] / total;
    s.mean_n_leapfrog += r.n_leapfrog[i] / total;
    s.divergences += r.divergent[i];
  }
  // Each parameter's diagnostics sort and transform all its draws: for thousands of chains
  // that is seconds per parameter, so the parameters are spread over the cores.
  s.params.resize(r.num_params() + 1);
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t k; (k = next++) < s.params.size();) {
      s.params[k] = k == 0 ? summarize_param("lp__", r.lp, r.chains)
                           : summarize_param(r.param_names[k - 1], r.param_draws(k - 1), r.chains);
    }
  };
  const size_t cells = r.lp.size() * s.params.size();
  const size_t threads = cells < (size_t{1} << 16) ? 1 : std::min<size_t>(std::max(1u, std::thread::hardware_concurrency()), s.params.size());
  std::vector<std::jthread> pool;
  for (size_t t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  pool.clear();
  s.min_ess_bulk = s.min_ess_tail = kNaN;
  for (const auto& p : s.params) {
    if (!std::isnan(p.ess_bulk) && !(p.ess_bulk >= s.min_ess_bulk)) s.min_ess_bulk = p.ess_bulk;
    if (!std::isnan(p.ess_tail) && !(p.ess_tail >= s.min_ess_tail)) s.min_ess_tail = p.ess_tail;
  }
  return s;
}

}  // namespace vkn::sampler
