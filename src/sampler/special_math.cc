#include "sampler/special_math.h"

#include <limits>

namespace vkn::sampler::detail {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// Stirling's series for x >= 10 after shifting up with Gamma(x + 1) = x Gamma(x).
double lgamma_pos(double x) {
  if (std::isinf(x)) return x;
  double prod = 1.0;
  while (x < 10.0) {
    prod *= x;
    x += 1.0;
  }
  const double z = 1.0 / x, z2 = z * z;
  const double s =
      z * (1.0 / 12 - z2 * (1.0 / 360 - z2 * (1.0 / 1260 - z2 * (1.0 / 1680 - z2 * (1.0 / 1188 - z2 * (691.0 / 360360 - z2 * (1.0 / 156)))))));
  return (x - 0.5) * std::log(x) - x + kLogSqrtTwoPi + s - std::log(prod);
}

}  // namespace

double lgamma(double x) {
  if (std::isnan(x)) return x;
  if (x > 0) return lgamma_pos(x);
  if (x == std::floor(x)) return kInf;
  return std::log(kPi / std::abs(std::sin(kPi * x))) - lgamma_pos(1.0 - x);
}

double digamma(double x) {
  if (std::isnan(x)) return x;
  double r = 0.0;
  if (x <= 0) {
    if (x == std::floor(x)) return std::nan("");
    r = -kPi * std::cos(kPi * x) / std::sin(kPi * x);
    x = 1.0 - x;
  }
  while (x < 10.0) {
    r -= 1.0 / x;
    x += 1.0;
  }
  const double z2 = 1.0 / (x * x);
  return r + std::log(x) - 0.5 / x -
         z2 * (1.0 / 12 - z2 * (1.0 / 120 - z2 * (1.0 / 252 - z2 * (1.0 / 240 - z2 * (1.0 / 132 - z2 * (691.0 / 32760 - z2 * (1.0 / 12)))))));
}

double tanh(double x) {
  const double a = std::abs(x);
  if (a > 22.0) return x > 0 ? 1.0 : -1.0;
  if (a < 0.03) {
    const double x2 = x * x;
    return x * (1.0 + x2 * (-1.0 / 3 + x2 * (2.0 / 15 + x2 * (-17.0 / 315 + x2 * (62.0 / 2835)))));
  }
  const double e = std::exp(2.0 * a);
  const double t = 1.0 - 2.0 / (e + 1.0);
  return x < 0 ? -t : t;
}

// Acklam's rational approximation, then one Halley step on erfc for full precision.
double inv_normal_cdf(double p) {
  if (std::isnan(p) || p < 0 || p > 1) return std::nan("");
  if (p == 0) return -kInf;
  if (p == 1) return kInf;
  static constexpr double a[] = {-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
                                 1.383577518672690e+02,  -3.066479806614716e+01, 2.506628277459239e+00};
  static constexpr double b[] = {-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
                                 6.680131188771972e+01, -1.328068155288572e+01};
  static constexpr double c[] = {-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
                                 -2.549732539343734e+00, 4.374664141464968e+00,  2.938163982698783e+00};
  static constexpr double d[] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
                                 3.754408661907416e+00};
  constexpr double kLow = 0.02425;
  double x;
  if (p < kLow) {
    const double q = std::sqrt(-2 * std::log(p));
    x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
        ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  } else if (p <= 1 - kLow) {
    const double q = p - 0.5, r = q * q;
    x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
        (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
  } else {
    const double q = std::sqrt(-2 * std::log1p(-p));
    x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
        ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  }
  // Halley refinement; in the upper tail work with the complement for accuracy.
  const double e = p > 0.5 ? -(0.5 * std::erfc(x / std::sqrt(2.0)) - (1 - p))
                           : 0.5 * std::erfc(-x / std::sqrt(2.0)) - p;
  const double u = e * std::sqrt(2 * kPi) * std::exp(x * x / 2);
  return x - u / (1 + x * u / 2);
}

}  // namespace vkn::sampler::detail
