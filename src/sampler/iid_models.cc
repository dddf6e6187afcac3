// The iid families of models.h. One class, IidModel, holds the family's kind and precomputed
// constants k_[]; element() (CPU) and element_glsl() (GPU) spell the same formula.
#include <array>
#include <cmath>
#include <limits>
#include <memory>

#include "sampler/glsl_math.h"
#include "sampler/special_math.h"
#include "util/strformat.h"
#include "vknode/sampler/models.h"

namespace vkn::sampler {
namespace {

using detail::glsl_literal;
constexpr double kNegInf = -std::numeric_limits<double>::infinity();

enum class IidKind { normal, student_t, cauchy, exponential, half_normal, weibull, beta, gamma, lognormal };

class IidModel final : public Model {
 public:
  // k: the family's constants, k[0] always the per-element normalizing constant.
  IidModel(IidKind kind, size_t d, std::string name, std::array<double, 4> k)
      : kind_(kind), d_(d), name_(std::move(name)), k_(k) {}

  size_t dimension() const override { return d_; }
  std::string name() const override { return name_; }
  std::vector<std::string> param_names() const override { return vector_names("theta", d_); }

  double log_density(std::span<const double> q, std::span<double> grad) const override {
    double lp = 0;
    for (size_t i = 0; i < d_; ++i) lp += element(q[i], grad[i]);
    return std::isnan(lp) ? kNegInf : lp;
  }

  std::vector<double> constrain(std::span<const double> q) const override {
    std::vector<double> out(q.begin(), q.end());
    for (double& x : out) {
      switch (kind_) {
        case IidKind::normal: case IidKind::student_t: case IidKind::cauchy: break;
        case IidKind::beta: x = detail::logistic(x); break;
        default: x = std::exp(x); break;
      }
    }
    return out;
  }

  std::string glsl(const GlslOptions& options) const override {
    const Precision p = options.precision;
    std::string s = detail::glsl_prelude(p, d_);
    s += "REAL vkn_iid_element(REAL x, out REAL d) {\n" + element_glsl(p) + "}\n";
    s += R"(REAL vkn_log_density(in REAL q[VKN_DIM], out REAL grad[VKN_DIM]) {
  REAL lp = 0.0LF;
  for (int i = 0; i < VKN_DIM; ++i) {
    REAL d;
    lp += vkn_iid_element(q[i], d);
    grad[i] = d;
  }
  return lp;
}
)";
    // The prelude is already instantiated; instantiating again only touches the new text.
    return detail::glsl_instantiate(s, p);
  }

 private:
  double element(double x, double& d) const {
    const auto& k = k_;
    switch (kind_) {
      case IidKind::normal:
      case IidKind::lognormal: {  // k: c0, mu, 1/sigma
        const double z = (x - k[1]) * k[2];
        d = -z * k[2];
        return k[0] - 0.5 * z * z;
      }
      case IidKind::student_t: {  // k: c0, mu, 1/sigma, nu
        const double z = (x - k[1]) * k[2];
        d = -(k[3] + 1.0) * z * k[2] / (k[3] + z * z);
        return k[0] - 0.5 * (k[3] + 1.0) * std::log1p(z * z / k[3]);
      }
      case IidKind::cauchy: {  // k: c0, mu, 1/sigma
        const double z = (x - k[1]) * k[2];
        d = -2.0 * z * k[2] / (1.0 + z * z);
        return k[0] - std::log1p(z * z);
      }
      case IidKind::exponential: {  // k: c0, rate
        const double t = k[1] * std::exp(x);
        d = 1.0 - t;
        return k[0] - t + x;
      }
      case IidKind::half_normal: {  // k: c0, 1/sigma
        const double t = std::exp(x) * k[1];
        d = 1.0 - t * t;
        return k[0] - 0.5 * t * t + x;
      }
      case IidKind::weibull: {  // k: c0, shape, log(scale)
        const double w = std::exp(k[1] * (x - k[2]));
        d = k[1] - k[1] * w;
        return k[0] + k[1] * x - w;
      }
      case IidKind::beta: {  // k: c0, a, b
        const double t = detail::logistic(x);
        d = k[1] * (1.0 - t) - k[2] * t;
        return k[0] - k[1] * detail::log1p_exp(-x) - k[2] * detail::log1p_exp(x);
      }
      case IidKind::gamma: {  // k: c0, shape, rate
        const double t = k[2] * std::exp(x);
        d = k[1] - t;
        return k[0] + k[1] * x - t;
      }
    }
    return kNegInf;
  }

  std::string element_glsl(Precision p) const {
    std::array<std::string, 4> k;
    for (size_t i = 0; i < 4; ++i) k[i] = glsl_literal(k_[i], p);
    switch (kind_) {
      case IidKind::normal:
      case IidKind::lognormal:
        return vkn::format("  REAL z = (x - {}) * {};\n  d = -z * {};\n  return {} - 0.5LF * z * z;\n", k[1], k[2],
                           k[2], k[0]);
      case IidKind::student_t:
        return vkn::format(
            "  REAL z = (x - {}) * {};\n  d = -({} + 1.0LF) * z * {} / ({} + z * z);\n"
            "  return {} - 0.5LF * ({} + 1.0LF) * vkn_log1p(z * z / {});\n",
            k[1], k[2], k[3], k[2], k[3], k[0], k[3], k[3]);
      case IidKind::cauchy:
        return vkn::format(
            "  REAL z = (x - {}) * {};\n  d = -2.0LF * z * {} / (1.0LF + z * z);\n  return {} - vkn_log1p(z * z);\n",
            k[1], k[2], k[2], k[0]);
      case IidKind::exponential:
        return vkn::format("  REAL t = {} * vkn_exp(x);\n  d = 1.0LF - t;\n  return {} - t + x;\n", k[1], k[0]);
      case IidKind::half_normal:
        return vkn::format("  REAL t = vkn_exp(x) * {};\n  d = 1.0LF - t * t;\n  return {} - 0.5LF * t * t + x;\n",
                           k[1], k[0]);
      case IidKind::weibull:
        return vkn::format("  REAL w = vkn_exp({} * (x - {}));\n  d = {} - {} * w;\n  return {} + {} * x - w;\n", k[1],
                           k[2], k[1], k[1], k[0], k[1]);
      case IidKind::beta:
        return vkn::format(
            "  REAL t = vkn_logistic(x);\n  d = {} * (1.0LF - t) - {} * t;\n"
            "  return {} - {} * vkn_log1p_exp(-x) - {} * vkn_log1p_exp(x);\n",
            k[1], k[2], k[0], k[1], k[2]);
      case IidKind::gamma:
        return vkn::format("  REAL t = {} * vkn_exp(x);\n  d = {} - t;\n  return {} + {} * x - t;\n", k[2], k[1], k[0],
                           k[1]);
    }
    return "  d = 0.0LF;\n  return -vkn_inf();\n";
  }

  const IidKind kind_;
  const size_t d_;
  const std::string name_;
  const std::array<double, 4> k_;
};

Result<std::unique_ptr<Model>> make(IidKind kind, size_t d, std::string name, std::array<double, 4> k) {
  if (d == 0) return fail(Errc::invalid_argument, "model dimension must be positive", name);
  return std::make_unique<IidModel>(kind, d, vkn::format("{}[{}]", name, d), k);
}

bool positive(double v) { return std::isfinite(v) && v > 0; }

std::unexpected<Error> bad(std::string_view param, double v) {
  return fail(Errc::invalid_argument, vkn::format("model parameter {} must be finite and positive", param),
              vkn::format("{}", v));
}

}  // namespace

Result<std::unique_ptr<Model>> make_normal(size_t d, double mu, double sigma) {
  if (!positive(sigma)) return bad("sigma", sigma);
  if (!std::isfinite(mu)) return fail(Errc::invalid_argument, "model parameter mu must be finite");
  return make(IidKind::normal, d, vkn::format("normal(mu={}, sigma={})", mu, sigma),
              {-std::log(sigma) - detail::kLogSqrtTwoPi, mu, 1.0 / sigma, 0});
}

Result<std::unique_ptr<Model>> make_lognormal(size_t d, double mu, double sigma) {
  if (!positive(sigma)) return bad("sigma", sigma);
  if (!std::isfinite(mu)) return fail(Errc::invalid_argument, "model parameter mu must be finite");
  return make(IidKind::lognormal, d, vkn::format("lognormal(mu={}, sigma={})", mu, sigma),
              {-std::log(sigma) - detail::kLogSqrtTwoPi, mu, 1.0 / sigma, 0});
}

Result<std::unique_ptr<Model>> make_student_t(size_t d, double nu, double mu, double sigma) {
  if (!positive(nu)) return bad("nu", nu);
  if (!positive(sigma)) return bad("sigma", sigma);
  if (!std::isfinite(mu)) return fail(Errc::invalid_argument, "model parameter mu must be finite");
  const double c0 = detail::lgamma(0.5 * (nu + 1)) - detail::lgamma(0.5 * nu) - 0.5 * std::log(nu * detail::kPi) -
                    std::log(sigma);
  return make(IidKind::student_t, d, vkn::format("student_t(nu={}, mu={}, sigma={})", nu, mu, sigma),
              {c0, mu, 1.0 / sigma, nu});
}

Result<std::unique_ptr<Model>> make_cauchy(size_t d, double mu, double sigma) {
  if (!positive(sigma)) return bad("sigma", sigma);
  if (!std::isfinite(mu)) return fail(Errc::invalid_argument, "model parameter mu must be finite");
  return make(IidKind::cauchy, d, vkn::format("cauchy(mu={}, sigma={})", mu, sigma),
              {-std::log(detail::kPi * sigma), mu, 1.0 / sigma, 0});
}

Result<std::unique_ptr<Model>> make_exponential(size_t d, double rate) {
  if (!positive(rate)) return bad("rate", rate);
  return make(IidKind::exponential, d, vkn::format("exponential(rate={})", rate), {std::log(rate), rate, 0, 0});
}

Result<std::unique_ptr<Model>> make_half_normal(size_t d, double sigma) {
  if (!positive(sigma)) return bad("sigma", sigma);
  return make(IidKind::half_normal, d, vkn::format("half_normal(sigma={})", sigma),
              {0.5 * std::log(2.0 / detail::kPi) - std::log(sigma), 1.0 / sigma, 0, 0});
}

Result<std::unique_ptr<Model>> make_weibull(size_t d, double shape, double scale) {
  if (!positive(shape)) return bad("shape", shape);
  if (!positive(scale)) return bad("scale", scale);
  return make(IidKind::weibull, d, vkn::format("weibull(shape={}, scale={})", shape, scale),
              {std::log(shape) - shape * std::log(scale), shape, std::log(scale), 0});
}

Result<std::unique_ptr<Model>> make_beta(size_t d, double a, double b) {
  if (!positive(a)) return bad("a", a);
  if (!positive(b)) return bad("b", b);
  const double c0 = detail::lgamma(a + b) - detail::lgamma(a) - detail::lgamma(b);
  return make(IidKind::beta, d, vkn::format("beta(a={}, b={})", a, b), {c0, a, b, 0});
}

Result<std::unique_ptr<Model>> make_gamma(size_t d, double shape, double rate) {
  if (!positive(shape)) return bad("shape", shape);
  if (!positive(rate)) return bad("rate", rate);
  const double c0 = shape * std::log(rate) - detail::lgamma(shape);
  return make(IidKind::gamma, d, vkn::format("gamma(shape={}, rate={})", shape, rate), {c0, shape, rate, 0});
}

}  // namespace vkn::sampler
