// format_summary_table and format_summary_json.
#include <cmath>
#include <cstdio>

#include "util/strformat.h"
#include "vknode/sampler/diagnostics.h"

namespace vkn::sampler {
namespace {

// 4 significant digits, "nan" for NaN.
std::string num(double v) {
  if (std::isnan(v)) return "nan";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

std::string whole(double v) {
  if (!std::isfinite(v)) return "nan";
  return vkn::format("{:.0f}", v);
}

std::string json_number(double v) {
  if (!std::isfinite(v)) return "null";
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += vkn::format("\\u{:04x}", static_cast<unsigned>(c));
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

}  // namespace

std::string format_summary_table(const RunSummary& s) {
  size_t name_width = 8;
  for (const auto& p : s.params) name_width = std::max(name_width, p.name.size());
  const std::string name_fmt = vkn::format("{{:<{}}}", name_width + 2);
  std::string out = vkn::format(name_fmt, "");
  for (const char* h : {"Mean", "MCSE", "StdDev", "5%", "50%", "95%", "ESS_bulk", "ESS_tail", "R_hat"}) {
    out += vkn::format("{:>10}", h);
  }
  out += '\n';
  for (const auto& p : s.params) {
    out += vkn::format(name_fmt, p.name);
    for (double v : {p.mean, p.mcse_mean, p.sd, p.q5, p.q50, p.q95}) out += vkn::format("{:>10}", num(v));
    out += vkn::format("{:>10}{:>10}", whole(p.ess_bulk), whole(p.ess_tail));
    out += vkn::format("{:>10}\n", std::isnan(p.rhat) ? std::string("nan") : vkn::format("{:.3f}", p.rhat));
  }
  out += vkn::format("\n{} chains x {} draws after {} warm-up iterations, on {}.\n", s.chains, s.draws, s.warmup,
                     s.backend.empty() ? std::string("?") : s.backend);
  if (!s.fallback_reason.empty()) out += vkn::format("Fell back to the CPU: {}\n", s.fallback_reason);
  out += vkn::format("Mean accept_stat {:.3f}, mean step size {}, mean leapfrog steps {:.1f}, trajectory length {}.\n",
                     s.mean_accept_stat, num(s.mean_step_size), s.mean_n_leapfrog, num(s.trajectory_length));
  out += vkn::format("Divergences: {}. Time: {:.2f} s warm-up, {:.2f} s sampling; {} gradient evaluations.\n",
                     s.divergences, s.warmup_seconds, s.sampling_seconds, s.gradient_evaluations);
  out += vkn::format("Smallest ESS_bulk {}, ESS_tail {}", whole(s.min_ess_bulk), whole(s.min_ess_tail));
  if (s.sampling_seconds > 0) out += vkn::format(" ({} ESS_bulk per sampling second)", num(s.min_ess_bulk / s.sampling_seconds));
  out += ".\n";
  return out;
}

std::string format_summary_json(const RunSummary& s) {
  std::string out = "{";
  out += vkn::format("\"chains\":{},\"draws\":{},\"warmup\":{},\"backend\":{},\"fallback_reason\":{},", s.chains, s.draws,
                     s.warmup, json_string(s.backend), json_string(s.fallback_reason));
  out += vkn::format("\"mean_accept_stat\":{},\"mean_step_size\":{},\"mean_n_leapfrog\":{},\"trajectory_length\":{},",
                     json_number(s.mean_accept_stat), json_number(s.mean_step_size), json_number(s.mean_n_leapfrog),
                     json_number(s.trajectory_length));
  out += vkn::format("\"divergences\":{},\"gradient_evaluations\":{},\"warmup_seconds\":{},\"sampling_seconds\":{},",
                     s.divergences, s.gradient_evaluations, json_number(s.warmup_seconds),
                     json_number(s.sampling_seconds));
  out += vkn::format("\"min_ess_bulk\":{},\"min_ess_tail\":{},", json_number(s.min_ess_bulk), json_number(s.min_ess_tail));
  out += "\"params\":[";
  for (size_t i = 0; i < s.params.size(); ++i) {
    const auto& p = s.params[i];
    if (i) out += ',';
    out += vkn::format(
        "{{\"name\":{},\"mean\":{},\"mcse_mean\":{},\"sd\":{},\"q5\":{},\"q50\":{},\"q95\":{},\"ess_bulk\":{},"
        "\"ess_tail\":{},\"rhat\":{}}}",
        json_string(p.name), json_number(p.mean), json_number(p.mcse_mean), json_number(p.sd), json_number(p.q5),
        json_number(p.q50), json_number(p.q95), json_number(p.ess_bulk), json_number(p.ess_tail), json_number(p.rhat));
  }
  out += "]}";
  return out;
}

}  // namespace vkn::sampler
