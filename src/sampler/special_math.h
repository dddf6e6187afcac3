// Scalar special functions for the CPU side, with the same algorithms the GLSL prelude
// (glsl_math.cc) uses, so CPU and GPU compute the same function. Pure; thread-safe (unlike
// std::lgamma, which writes the global signgam).
#pragma once

#include <cmath>

namespace vkn::sampler::detail {

inline constexpr double kPi = 3.14159265358979323846;
inline constexpr double kLogSqrtTwoPi = 0.91893853320467274178;  // log(sqrt(2 pi))

// log Gamma(x); +inf at non-positive integers.
double lgamma(double x);
// d/dx log Gamma(x); NaN at non-positive integers.
double digamma(double x);

inline double logistic(double x) {
  if (x >= 0) return 1.0 / (1.0 + std::exp(-x));
  const double e = std::exp(x);
  return e / (1.0 + e);
}
// log(1 + exp(x)) without overflow.
inline double log1p_exp(double x) {
  return x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x));
}
// x^n by binary powering (the GLSL vkn_powi), exact for small n.
inline double powi(double x, int n) {
  double r = 1.0, b = x;
  unsigned m = n < 0 ? 0u - static_cast<unsigned>(n) : static_cast<unsigned>(n);
  while (m > 0) {
    if (m & 1u) r *= b;
    m >>= 1;
    if (m > 0) b *= b;
  }
  return n < 0 ? 1.0 / r : r;
}
// tanh as the GLSL vkn_tanh computes it (finite for every finite x).
double tanh(double x);
// x^y as exp(y log x): NaN for x < 0, like the GLSL vkn_pow.
inline double pow(double x, double y) { return x < 0 ? std::nan("") : std::pow(x, y); }

// The standard normal quantile function Phi^{-1}(p), full double precision; +-inf at 0 and 1,
// NaN outside [0, 1].
double inv_normal_cdf(double p);

}  // namespace vkn::sampler::detail
