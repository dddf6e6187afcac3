// make_builtin: the CLI's spelling of the built-in families ("normal", "d=10,sigma=2").
#include <charconv>
#include <map>

#include "util/strformat.h"
#include "vknode/sampler/models.h"

namespace vkn::sampler {
namespace {

using Params = std::map<std::string, double, std::less<>>;

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

Result<Params> parse_params(std::string_view text) {
  Params out;
  while (!trim(text).empty()) {
    const size_t comma = text.find(',');
    const std::string_view item = trim(text.substr(0, comma));
    text = comma == std::string_view::npos ? std::string_view{} : text.substr(comma + 1);
    const size_t eq = item.find('=');
    if (eq == std::string_view::npos) return fail(Errc::invalid_argument, "expected key=value", item);
    const std::string_view key = trim(item.substr(0, eq)), value = trim(item.substr(eq + 1));
    double v = 0;
    const auto res = std::from_chars(value.data(), value.data() + value.size(), v);
    if (res.ec != std::errc() || res.ptr != value.data() + value.size()) {
      return fail(Errc::invalid_argument, vkn::format("model parameter {} is not a number", key), value);
    }
    if (!out.emplace(std::string(key), v).second) return fail(Errc::invalid_argument, "repeated key", key);
  }
  return out;
}

// Takes `key` out of `params` (so leftovers can be reported), or `fallback` when absent.
double take(Params& params, std::string_view key, double fallback) {
  auto it = params.find(key);
  if (it == params.end()) return fallback;
  const double v = it->second;
  params.erase(it);
  return v;
}

}  // namespace

Result<std::unique_ptr<Model>> make_builtin(std::string_view family, std::string_view text) {
  auto parsed = parse_params(text);
  if (!parsed) return fail(parsed.error());
  Params p = std::move(*parsed);
  Result<std::unique_ptr<Model>> model = fail(Errc::not_found, "no such model family", family);
  if (family == "eight_schools") {
    model = make_eight_schools();
  } else {
    const double d_value = take(p, "d", 1);
    if (!(d_value >= 1 && d_value <= 1e7 && d_value == static_cast<double>(static_cast<size_t>(d_value)))) {
      return fail(Errc::invalid_argument, "d must be a whole number in [1, 1e7]", vkn::format("{}", d_value));
    }
    const size_t d = static_cast<size_t>(d_value);
    if (family == "normal") {
      const double mu = take(p, "mu", 0);
      model = make_normal(d, mu, take(p, "sigma", 1));
    } else if (family == "student_t") {
      const double nu = take(p, "nu", 3), mu = take(p, "mu", 0);
      model = make_student_t(d, nu, mu, take(p, "sigma", 1));
    } else if (family == "cauchy") {
      const double mu = take(p, "mu", 0);
      model = make_cauchy(d, mu, take(p, "sigma", 1));
    } else if (family == "exponential") {
      model = make_exponential(d, take(p, "rate", 1));
    } else if (family == "half_normal") {
      model = make_half_normal(d, take(p, "sigma", 1));
    } else if (family == "weibull") {
      const double shape = take(p, "shape", 1.5);
      model = make_weibull(d, shape, take(p, "scale", 1));
    } else if (family == "beta") {
      const double a = take(p, "a", 2);
      model = make_beta(d, a, take(p, "b", 2));
    } else if (family == "gamma") {
      const double shape = take(p, "shape", 2);
      model = make_gamma(d, shape, take(p, "rate", 1));
    } else if (family == "lognormal") {
      const double mu = take(p, "mu", 0);
      model = make_lognormal(d, mu, take(p, "sigma", 1));
    }
  }
  if (model && !p.empty()) {
    return fail(Errc::invalid_argument, vkn::format("unknown parameter for {}", family), p.begin()->first);
  }
  return model;
}

}  // namespace vkn::sampler
