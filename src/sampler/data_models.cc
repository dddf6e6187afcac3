// The data-bearing built-ins: logistic regression and non-centred eight schools. Data are
// rounded to f32 on construction (see model.h) and read by the GLSL from storage buffers.
#include <algorithm>
#include <cmath>
#include <limits>

#include "sampler/glsl_math.h"
#include "sampler/special_math.h"
#include "util/strformat.h"
#include "vknode/sampler/models.h"

namespace vkn::sampler {
namespace {

using detail::glsl_literal;
constexpr double kNegInf = -std::numeric_limits<double>::infinity();

std::vector<float> to_f32(std::span<const double> v) { return {v.begin(), v.end()}; }

bool all_finite(std::span<const double> v) {
  for (double x : v) {
    if (!std::isfinite(x) || std::abs(x) > 3e38) return false;
  }
  return true;
}

std::string data_blocks(const std::vector<DataBuffer>& buffers, const GlslOptions& options) {
  std::string s;
  for (size_t i = 0; i < buffers.size(); ++i) {
    s += detail::glsl_data_block(buffers[i].name, options.data_set,
                                 options.data_binding_base + static_cast<uint32_t>(i));
  }
  return s;
}

class LogisticRegression final : public Model {
 public:
  LogisticRegression(size_t d, std::vector<float> x, std::vector<float> y, double prior_sd)
      : d_(d), n_(y.size()), x_(std::move(x)), y_(std::move(y)),
        inv_var_(1.0 / (prior_sd * prior_sd)),
        c0_(-static_cast<double>(d) * (std::log(prior_sd) + detail::kLogSqrtTwoPi)), prior_sd_(prior_sd) {}

  size_t dimension() const override { return d_; }
  std::string name() const override {
    return vkn::format("logistic_regression(N={}, d={}, prior_sd={})", n_, d_, prior_sd_);
  }
  std::vector<std::string> param_names() const override { return vector_names("beta", d_); }

  double log_density(std::span<const double> q, std::span<double> grad) const override {
    double lp = c0_;
    for (size_t j = 0; j < d_; ++j) {
      lp -= 0.5 * q[j] * q[j] * inv_var_;
      grad[j] = -q[j] * inv_var_;
    }
    for (size_t n = 0; n < n_; ++n) {
      const float* row = &x_[n * d_];
      double eta = 0;
      for (size_t j = 0; j < d_; ++j) eta += row[j] * q[j];
      // One exp gives both log(1 + exp(eta)) and logistic(eta).
      const double e = std::exp(-std::abs(eta)), yn = y_[n];
      lp += yn * eta - (std::max(eta, 0.0) + std::log1p(e));
      const double r = yn - (eta >= 0 ? 1.0 / (1.0 + e) : e / (1.0 + e));
      for (size_t j = 0; j < d_; ++j) grad[j] += r * row[j];
    }
    return std::isnan(lp) ? kNegInf : lp;
  }

  std::string glsl(const GlslOptions& options) const override {
    const Precision p = options.precision;
    std::string s = detail::glsl_prelude(p, d_);
    s += data_blocks(data_buffers(), options);
    s += vkn::format("const int VKN_N = {};\n", n_);
    s += vkn::format(R"(REAL vkn_log_density(in REAL q[VKN_DIM], out REAL grad[VKN_DIM]) {{
  REAL lp = {};
  for (int j = 0; j < VKN_DIM; ++j) {{
    lp -= 0.5LF * q[j] * q[j] * {};
    grad[j] = -q[j] * {};
  }}
  for (int n = 0; n < VKN_N; ++n) {{
    REAL eta = 0.0LF;
    for (int j = 0; j < VKN_DIM; ++j) eta += REAL(vkn_X[n * VKN_DIM + j]) * q[j];
    REAL e = vkn_exp(-abs(eta));
    REAL yn = REAL(vkn_y[n]);
    lp += yn * eta - (max(eta, 0.0LF) + vkn_log1p(e));
    REAL r = yn - (eta >= 0.0LF ? 1.0LF / (1.0LF + e) : e / (1.0LF + e));
    for (int j = 0; j < VKN_DIM; ++j) grad[j] += r * REAL(vkn_X[n * VKN_DIM + j]);
  }}
  return lp;
}}
)",
                     glsl_literal(c0_, p), glsl_literal(inv_var_, p), glsl_literal(inv_var_, p));
    return detail::glsl_instantiate(s, p);
  }

  std::vector<DataBuffer> data_buffers() const override {
    return {{"X", kDataBindingBase, x_}, {"y", kDataBindingBase + 1, y_}};
  }

 private:
  const size_t d_, n_;
  const std::vector<float> x_, y_;
  const double inv_var_, c0_, prior_sd_;
};

class EightSchools final : public Model {
 public:
  EightSchools(std::vector<float> y, std::vector<float> sigma) : y_(std::move(y)), sigma_(std::move(sigma)) {
    const double log5 = std::log(5.0);
    c0_ = -log5 - detail::kLogSqrtTwoPi + std::log(2.0 / (5.0 * detail::kPi));
    for (float s : sigma_) c0_ -= 2 * detail::kLogSqrtTwoPi + std::log(static_cast<double>(s));
  }

  size_t dimension() const override { return 2 + y_.size(); }
  std::string name() const override { return vkn::format("eight_schools_noncentered(J={})", y_.size()); }
  std::vector<std::string> param_names() const override {
    std::vector<std::string> names = {"mu", "tau"};
    for (auto& n : vector_names("theta_tilde", y_.size())) names.push_back(n);
    for (auto& n : vector_names("theta", y_.size())) names.push_back(n);
    return names;
  }
  std::vector<double> constrain(std::span<const double> q) const override {
    const size_t j_count = y_.size();
    const double tau = std::exp(q[1]);
    std::vector<double> out = {q[0], tau};
    for (size_t j = 0; j < j_count; ++j) out.push_back(q[2 + j]);
    for (size_t j = 0; j < j_count; ++j) out.push_back(q[0] + tau * q[2 + j]);
    return out;
  }

  double log_density(std::span<const double> q, std::span<double> grad) const override {
    const double mu = q[0], u = q[1], tau = std::exp(u), t5 = tau * 0.2;
    double lp = c0_ - 0.5 * mu * mu * 0.04 - std::log1p(t5 * t5) + u;
    double dmu = -mu * 0.04;
    double dtau = -2.0 * tau * 0.04 / (1.0 + t5 * t5);
    for (size_t j = 0; j < y_.size(); ++j) {
      const double th = q[2 + j], s = sigma_[j];
      const double r = y_[j] - mu - tau * th;
      const double e = r / (s * s);
      lp += -0.5 * th * th - 0.5 * r * e;
      dmu += e;
      dtau += e * th;
      grad[2 + j] = -th + tau * e;
    }
    grad[0] = dmu;
    grad[1] = 1.0 + tau * dtau;
    return std::isnan(lp) ? kNegInf : lp;
  }

  std::string glsl(const GlslOptions& options) const override {
    const Precision p = options.precision;
    std::string s = detail::glsl_prelude(p, dimension());
    s += data_blocks(data_buffers(), options);
    s += vkn::format("const int VKN_J = {};\n", y_.size());
    s += vkn::format(R"(REAL vkn_log_density(in REAL q[VKN_DIM], out REAL grad[VKN_DIM]) {{
  REAL mu = q[0];
  REAL u = q[1];
  REAL tau = vkn_exp(u);
  REAL t5 = tau * 0.2LF;
  REAL lp = {} - 0.5LF * mu * mu * 0.04LF - vkn_log1p(t5 * t5) + u;
  REAL dmu = -mu * 0.04LF;
  REAL dtau = -2.0LF * tau * 0.04LF / (1.0LF + t5 * t5);
  for (int j = 0; j < VKN_J; ++j) {{
    REAL th = q[2 + j];
    REAL s = REAL(vkn_sigma[j]);
    REAL r = REAL(vkn_y[j]) - mu - tau * th;
    REAL e = r / (s * s);
    lp += -0.5LF * th * th - 0.5LF * r * e;
    dmu += e;
    dtau += e * th;
    grad[2 + j] = -th + tau * e;
  }}
  grad[0] = dmu;
  grad[1] = 1.0LF + tau * dtau;
  return lp;
}}
)",
                     glsl_literal(c0_, p));
    return detail::glsl_instantiate(s, p);
  }

  std::vector<DataBuffer> data_buffers() const override {
    return {{"y", kDataBindingBase, y_}, {"sigma", kDataBindingBase + 1, sigma_}};
  }

 private:
  const std::vector<float> y_, sigma_;
  double c0_ = 0;  // fixed after construction
};

}  // namespace

Result<std::unique_ptr<Model>> make_logistic_regression(size_t d, std::span<const double> x,
                                                        std::span<const double> y, double prior_sd) {
  if (d == 0) return fail(Errc::invalid_argument, "logistic regression needs at least one feature");
  if (y.empty()) return fail(Errc::invalid_argument, "logistic regression needs at least one observation");
  if (x.size() != y.size() * d) {
    return fail(Errc::invalid_argument, "design matrix size is not N * d",
                vkn::format("{} != {} * {}", x.size(), y.size(), d));
  }
  if (!(std::isfinite(prior_sd) && prior_sd > 0)) {
    return fail(Errc::invalid_argument, "prior_sd must be finite and positive");
  }
  if (!all_finite(x)) return fail(Errc::invalid_argument, "design matrix has a non-finite or non-f32 value");
  for (double v : y) {
    if (v != 0.0 && v != 1.0) return fail(Errc::invalid_argument, "labels must be 0 or 1", vkn::format("{}", v));
  }
  return std::make_unique<LogisticRegression>(d, to_f32(x), to_f32(y), prior_sd);
}

Result<std::unique_ptr<Model>> make_eight_schools(std::span<const double> y, std::span<const double> sigma) {
  if (y.empty() || y.size() != sigma.size()) {
    return fail(Errc::invalid_argument, "eight schools needs equal, non-zero numbers of y and sigma");
  }
  if (!all_finite(y) || !all_finite(sigma)) return fail(Errc::invalid_argument, "eight schools data not finite");
  for (double s : sigma) {
    if (!(s > 0)) return fail(Errc::invalid_argument, "eight schools sigma must be positive");
  }
  return std::make_unique<EightSchools>(to_f32(y), to_f32(sigma));
}

Result<std::unique_ptr<Model>> make_eight_schools() {
  static constexpr double kY[] = {28, 8, -3, 7, -1, 1, 18, 12};
  static constexpr double kSigma[] = {15, 10, 16, 11, 9, 11, 10, 18};
  return make_eight_schools(kY, kSigma);
}

}  // namespace vkn::sampler
