#include "sampler/glsl_math.h"

#include <charconv>
#include <cmath>

#include "util/strformat.h"

namespace vkn::sampler::detail {
namespace {

// Double-only transcendentals: GLSL has exp/log/sin/cos for float only. Cody-Waite range
// reduction plus Taylor polynomials; accurate to a few ulp (sin/cos for |x| < 1e5).
constexpr std::string_view kF64Core = R"(double vkn_inf() { return packDouble2x32(uvec2(0u, 0x7FF00000u)); }
double vkn_nan() { return packDouble2x32(uvec2(0u, 0x7FF80000u)); }
double vkn_exp(double x) {
  if (isnan(x)) return x;
  if (x > 709.78LF) return vkn_inf();
  if (x < -745.2LF) return 0.0LF;
  double k = floor(x * 1.4426950408889634LF + 0.5LF);
  double r = (x - k * 6.93147180369123816490e-01LF) - k * 1.90821492927058770002e-10LF;
  double p = 1.0LF / 6227020800.0LF;
  p = p * r + 1.0LF / 479001600.0LF;
  p = p * r + 1.0LF / 39916800.0LF;
  p = p * r + 1.0LF / 3628800.0LF;
  p = p * r + 1.0LF / 362880.0LF;
  p = p * r + 1.0LF / 40320.0LF;
  p = p * r + 1.0LF / 5040.0LF;
  p = p * r + 1.0LF / 720.0LF;
  p = p * r + 1.0LF / 120.0LF;
  p = p * r + 1.0LF / 24.0LF;
  p = p * r + 1.0LF / 6.0LF;
  p = p * r + 0.5LF;
  p = p * r + 1.0LF;
  p = p * r + 1.0LF;
  int n = int(k);
  int h = n / 2;
  return ldexp(ldexp(p, h), n - h);
}
double vkn_log(double x) {
  if (isnan(x) || x < 0.0LF) return vkn_nan();
  if (x == 0.0LF) return -vkn_inf();
  if (isinf(x)) return x;
  int e;
  double m = frexp(x, e);
  if (m < 0.70710678118654752440LF) { m = 2.0LF * m; e = e - 1; }
  double f = m - 1.0LF;
  double s = f / (2.0LF + f);
  double s2 = s * s;
  double t = 1.0LF / 21.0LF;
  t = t * s2 + 1.0LF / 19.0LF;
  t = t * s2 + 1.0LF / 17.0LF;
  t = t * s2 + 1.0LF / 15.0LF;
  t = t * s2 + 1.0LF / 13.0LF;
  t = t * s2 + 1.0LF / 11.0LF;
  t = t * s2 + 1.0LF / 9.0LF;
  t = t * s2 + 1.0LF / 7.0LF;
  t = t * s2 + 1.0LF / 5.0LF;
  t = t * s2 + 1.0LF / 3.0LF;
  t = t * s2;
  double ef = double(e);
  return ef * 6.93147180369123816490e-01LF + (2.0LF * s + (2.0LF * s * t + ef * 1.90821492927058770002e-10LF));
}
double vkn_sin_poly(double r) {
  double r2 = r * r;
  double p = -1.0LF / 1307674368000.0LF;
  p = p * r2 + 1.0LF / 6227020800.0LF;
  p = p * r2 - 1.0LF / 39916800.0LF;
  p = p * r2 + 1.0LF / 362880.0LF;
  p = p * r2 - 1.0LF / 5040.0LF;
  p = p * r2 + 1.0LF / 120.0LF;
  p = p * r2 - 1.0LF / 6.0LF;
  return r + r * (p * r2);
}
double vkn_cos_poly(double r) {
  double r2 = r * r;
  double p = 1.0LF / 20922789888000.0LF;
  p = p * r2 - 1.0LF / 87178291200.0LF;
  p = p * r2 + 1.0LF / 479001600.0LF;
  p = p * r2 - 1.0LF / 3628800.0LF;
  p = p * r2 + 1.0LF / 40320.0LF;
  p = p * r2 - 1.0LF / 720.0LF;
  p = p * r2 + 1.0LF / 24.0LF;
  p = p * r2 - 0.5LF;
  return 1.0LF + p * r2;
}
int vkn_reduce_pio2(double x, out double r) {
  double k = floor(x * 0.63661977236758134308LF + 0.5LF);
  r = (x - k * 1.57079632673412561417LF) - k * 6.07710050650619224932e-11LF;
  return int(k - 4.0LF * floor(0.25LF * k));
}
double vkn_sin(double x) {
  if (isnan(x) || isinf(x) || abs(x) > 1.0e9LF) return vkn_nan();
  double r;
  int q = vkn_reduce_pio2(x, r);
  if (q == 0) return vkn_sin_poly(r);
  if (q == 1) return vkn_cos_poly(r);
  if (q == 2) return -vkn_sin_poly(r);
  return -vkn_cos_poly(r);
}
double vkn_cos(double x) {
  if (isnan(x) || isinf(x) || abs(x) > 1.0e9LF) return vkn_nan();
  double r;
  int q = vkn_reduce_pio2(x, r);
  if (q == 0) return vkn_cos_poly(r);
  if (q == 1) return -vkn_sin_poly(r);
  if (q == 2) return -vkn_cos_poly(r);
  return vkn_sin_poly(r);
}
)";

constexpr std::string_view kF32Core = R"(float vkn_inf() { return uintBitsToFloat(0x7F800000u); }
float vkn_nan() { return uintBitsToFloat(0x7FC00000u); }
float vkn_exp(float x) { return exp(x); }
float vkn_log(float x) { return x < 0.0 ? vkn_nan() : log(x); }
float vkn_sin(float x) { return sin(x); }
float vkn_cos(float x) { return cos(x); }
)";

// The same algorithms as special_math.cc, written once for both precisions.
constexpr std::string_view kShared = R"(REAL vkn_sqrt(REAL x) { return sqrt(x); }
REAL vkn_tanh(REAL x) {
  REAL a = abs(x);
  if (a > 22.0LF) return sign(x);
  if (a < 0.03LF) {
    REAL x2 = x * x;
    return x * (1.0LF + x2 * (-1.0LF / 3.0LF + x2 * (2.0LF / 15.0LF + x2 * (-17.0LF / 315.0LF + x2 * (62.0LF / 2835.0LF)))));
  }
  REAL e = vkn_exp(2.0LF * a);
  REAL t = 1.0LF - 2.0LF / (e + 1.0LF);
  return x < 0.0LF ? -t : t;
}
REAL vkn_log1p(REAL x) {
  REAL u = 1.0LF + x;
  if (u == 1.0LF) return x;
  if (isinf(u)) return u;
  return vkn_log(u) * (x / (u - 1.0LF));
}
REAL vkn_logistic(REAL x) {
  if (x >= 0.0LF) return 1.0LF / (1.0LF + vkn_exp(-x));
  REAL e = vkn_exp(x);
  return e / (1.0LF + e);
}
REAL vkn_log1p_exp(REAL x) {
  if (x > 0.0LF) return x + vkn_log1p(vkn_exp(-x));
  return vkn_log1p(vkn_exp(x));
}
REAL vkn_pow(REAL x, REAL y) { return vkn_exp(y * vkn_log(x)); }
REAL vkn_powi(REAL x, int n) {
  REAL r = 1.0LF;
  REAL b = x;
  int m = abs(n);
  while (m > 0) {
    if ((m & 1) != 0) r *= b;
    m >>= 1;
    if (m > 0) b *= b;
  }
  return n < 0 ? 1.0LF / r : r;
}
REAL vkn_lgamma_pos(REAL x) {
  if (isinf(x)) return x;
  REAL prod = 1.0LF;
  while (x < 10.0LF) { prod *= x; x += 1.0LF; }
  REAL z = 1.0LF / x;
  REAL z2 = z * z;
  REAL s = z * (1.0LF / 12.0LF - z2 * (1.0LF / 360.0LF - z2 * (1.0LF / 1260.0LF - z2 * (1.0LF / 1680.0LF - z2 * (1.0LF / 1188.0LF - z2 * (691.0LF / 360360.0LF - z2 * (1.0LF / 156.0LF)))))));
  return (x - 0.5LF) * vkn_log(x) - x + 0.91893853320467274178LF + s - vkn_log(prod);
}
REAL vkn_lgamma(REAL x) {
  if (isnan(x)) return x;
  if (x > 0.0LF) return vkn_lgamma_pos(x);
  if (x == floor(x)) return vkn_inf();
  return vkn_log(3.14159265358979323846LF / abs(vkn_sin(3.14159265358979323846LF * x))) - vkn_lgamma_pos(1.0LF - x);
}
REAL vkn_digamma(REAL x) {
  if (isnan(x)) return x;
  REAL r = 0.0LF;
  if (x <= 0.0LF) {
    if (x == floor(x)) return vkn_nan();
    REAL px = 3.14159265358979323846LF * x;
    r = -3.14159265358979323846LF * vkn_cos(px) / vkn_sin(px);
    x = 1.0LF - x;
  }
  while (x < 10.0LF) { r -= 1.0LF / x; x += 1.0LF; }
  REAL z2 = 1.0LF / (x * x);
  return r + vkn_log(x) - 0.5LF / x - z2 * (1.0LF / 12.0LF - z2 * (1.0LF / 120.0LF - z2 * (1.0LF / 252.0LF - z2 * (1.0LF / 240.0LF - z2 * (1.0LF / 132.0LF - z2 * (691.0LF / 32760.0LF - z2 * (1.0LF / 12.0LF)))))));
}
)";

void replace_all(std::string& s, std::string_view from, std::string_view to) {
  for (size_t pos = s.find(from); pos != std::string::npos; pos = s.find(from, pos + to.size())) {
    s.replace(pos, from.size(), to);
  }
}

}  // namespace

std::string_view glsl_real_type(Precision p) { return p == Precision::f64 ? "double" : "float"; }

std::string glsl_literal(double v, Precision p) {
  if (p == Precision::f32) v = static_cast<float>(v);
  if (std::isnan(v)) return "vkn_nan()";
  if (std::isinf(v)) return v > 0 ? "vkn_inf()" : "(-vkn_inf())";
  char buf[64];
  auto res = p == Precision::f32 ? std::to_chars(buf, buf + sizeof(buf), static_cast<float>(v))
                                 : std::to_chars(buf, buf + sizeof(buf), v);
  std::string s(buf, res.ptr);
  if (s.find_first_of(".e") == std::string::npos) s += ".0";
  if (p == Precision::f64) s += "LF";
  return v < 0 ? "(" + s + ")" : s;
}

std::string glsl_instantiate(std::string_view tmpl, Precision p) {
  std::string s(tmpl);
  replace_all(s, "REAL", glsl_real_type(p));
  if (p == Precision::f32) replace_all(s, "LF", "");
  return s;
}

std::string glsl_prelude(Precision p, size_t dimension) {
  std::string s = vkn::format("// Generated by vknode's sampler ({} precision).\nconst int VKN_DIM = {};\n",
                              p == Precision::f64 ? "f64" : "f32", dimension);
  s += p == Precision::f64 ? kF64Core : kF32Core;
  s += glsl_instantiate(kShared, p);
  return s;
}

std::string glsl_data_block(std::string_view name, uint32_t set, uint32_t binding) {
  return vkn::format(
      "layout(std430, set = {}, binding = {}) readonly buffer VknData_{} {{ float vkn_{}[]; }};\n", set,
      binding, name, name);
}

}  // namespace vkn::sampler::detail
