// The built-in models: iid families with a vector parameter, logistic regression and the
// non-centred eight schools. Each factory checks its arguments (invalid_argument naming the bad
// one) and returns an immutable, thread-safe Model.
//
// Iid families: theta[1..d] iid from the family, sampled on the unconstrained scale q:
//   real line      normal, student_t, cauchy               theta = q
//   positive       exponential, half_normal, weibull,      theta = exp(q), log-Jacobian q
//                  gamma, lognormal
//   unit interval  beta                                    theta = logistic(q),
//                                                          log-Jacobian log(theta) + log(1 - theta)
// Normalizing constants are included, so lp__ is the full log density on the q scale.
#pragma once

#include <memory>
#include <span>
#include <vector>

#include "vknode/error.h"
#include "vknode/sampler/model.h"

namespace vkn::sampler {

Result<std::unique_ptr<Model>> make_normal(size_t d, double mu = 0.0, double sigma = 1.0);
Result<std::unique_ptr<Model>> make_student_t(size_t d, double nu, double mu = 0.0, double sigma = 1.0);
Result<std::unique_ptr<Model>> make_cauchy(size_t d, double mu = 0.0, double sigma = 1.0);
Result<std::unique_ptr<Model>> make_exponential(size_t d, double rate = 1.0);
Result<std::unique_ptr<Model>> make_half_normal(size_t d, double sigma = 1.0);
// Shape k, scale lambda.
Result<std::unique_ptr<Model>> make_weibull(size_t d, double shape, double scale = 1.0);
Result<std::unique_ptr<Model>> make_beta(size_t d, double a, double b);
// Shape alpha, rate beta.
Result<std::unique_ptr<Model>> make_gamma(size_t d, double shape, double rate = 1.0);
Result<std::unique_ptr<Model>> make_lognormal(size_t d, double mu = 0.0, double sigma = 1.0);

// Bernoulli-logit regression: y[n] ~ Bernoulli(logistic(x[n] . beta)), beta[j] ~ N(0, prior_sd).
// `x` is row-major N x d (add a column of ones for an intercept), y holds 0/1.
// Parameters "beta.1".."beta.d". Data buffers "X" (N*d) and "y" (N).
Result<std::unique_ptr<Model>> make_logistic_regression(size_t d, std::span<const double> x,
                                                        std::span<const double> y,
                                                        double prior_sd = 2.5);

// Eight schools, non-centred: mu ~ N(0, 5), tau ~ half-Cauchy(0, 5), theta_tilde[j] ~ N(0, 1),
// y[j] ~ N(mu + tau * theta_tilde[j], sigma[j]). Unconstrained q = (mu, log tau, theta_tilde).
// Outputs mu, tau, theta_tilde.1..J and the derived theta.1..J = mu + tau * theta_tilde.
// Data buffers "y" and "sigma" (J each).
Result<std::unique_ptr<Model>> make_eight_schools(std::span<const double> y,
                                                  std::span<const double> sigma);
// Rubin's (1981) data: y = 28 8 -3 7 -1 1 18 12, sigma = 15 10 16 11 9 11 10 18.
Result<std::unique_ptr<Model>> make_eight_schools();

// Builds a model from a name and "key=value" parameters as the CLI spells them, e.g.
// ("normal", "d=10,mu=0,sigma=1"). Families: normal, student_t (nu, mu, sigma), cauchy,
// exponential (rate), half_normal (sigma), weibull (shape, scale), beta (a, b),
// gamma (shape, rate), lognormal (mu, sigma), eight_schools. invalid_argument for unknown
// names or keys; not_found for an unknown family.
Result<std::unique_ptr<Model>> make_builtin(std::string_view family, std::string_view params);

}  // namespace vkn::sampler
