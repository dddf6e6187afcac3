#include "vknode/sampler/cmdstan_csv.h"

#include <cmath>
#include <cstdio>

#include "util/file_ops.h"
#include "util/strformat.h"

namespace vkn::sampler {
namespace {

std::string real(double v, int sig_figs) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.*g", sig_figs, v);
  return buf;
}

std::string header(const SampleResult& r, uint32_t chain, const CsvMetadata& m) {
  const SamplerConfig& c = m.config;
  std::string s;
  auto line = [&](std::string_view text) {
    s += "# ";
    s += text;
    s += '\n';
  };
  line("stan_version_major = 2");
  line("stan_version_minor = 33");
  line("stan_version_patch = 0");
  line(vkn::format("model = {}", m.model));
  line("method = sample (Default)");
  line("  sample");
  line(vkn::format("    num_samples = {}", r.draws));
  line(vkn::format("    num_warmup = {}", r.warmup));
  line("    save_warmup = 0 (Default)");
  line("    thin = 1 (Default)");
  line("    adapt");
  line(vkn::format("      engaged = {}", (c.adapt_step_size || c.adapt_metric) && r.warmup > 0 ? 1 : 0));
  line("      gamma = 0.05 (Default)");
  line(vkn::format("      delta = {}", c.target_accept));
  line("      kappa = 0.75 (Default)");
  line("      t0 = 10 (Default)");
  line("      init_buffer = 75 (Default)");
  line("      term_buffer = 50 (Default)");
  line("      window = 25 (Default)");
  line("    algorithm = hmc (Default)");
  line("      hmc");
  line("        engine = static");
  line("          static");
  line(vkn::format("            int_time = {}", real(r.trajectory_length, m.sig_figs)));
  line("        metric = diag_e (Default)");
  line(vkn::format("        stepsize = {}", c.step_size));
  line(vkn::format("        stepsize_jitter = {}", c.step_size_jitter));
  line(vkn::format("    num_chains = {}", r.chains));
  line(vkn::format("id = {}", r.first_chain + chain + 1));
  line(vkn::format("init = {}", c.init_radius));
  line("random");
  line(vkn::format("  seed = {}", c.seed));
  line("output");
  line(vkn::format("  sig_figs = {}", m.sig_figs));
  line(vkn::format("vknode_device = {}", m.device.empty() ? r.backend : m.device));
  line(vkn::format("vknode_backend = {}", r.backend));
  line(vkn::format("vknode_steps = {}", c.steps));
  line(vkn::format("vknode_adapt_steps = {}", c.adapt_steps ? 1 : 0));
  line(vkn::format("vknode_metric_pooled = {}", c.metric_pooled ? 1 : 0));
  if (!r.fallback_reason.empty()) line(vkn::format("vknode_fallback = {}", r.fallback_reason));
  return s;
}

}  // namespace

std::string format_cmdstan_csv(const SampleResult& r, uint32_t chain, const CsvMetadata& m) {
  std::string s = header(r, chain, m);
  s += "lp__,accept_stat__,stepsize__,treedepth__,n_leapfrog__,divergent__,energy__";
  for (const auto& name : r.param_names) s += "," + name;
  s += '\n';
  if (r.warmup > 0 && chain < r.adapted_step_size.size()) {
    s += "# Adaptation terminated\n";
    s += "# Step size = " + real(r.adapted_step_size[chain], m.sig_figs) + "\n";
    s += "# Diagonal elements of inverse mass matrix:\n# ";
    const auto& metric = r.inv_metric[chain];
    for (size_t i = 0; i < metric.size(); ++i) s += (i ? ", " : "") + real(metric[i], m.sig_figs);
    s += '\n';
  }
  const size_t np = r.num_params();
  for (size_t i = 0; i < r.draws; ++i) {
    const size_t at = r.index(chain, i);
    s += real(r.lp[at], m.sig_figs) + "," + real(r.accept_stat[at], m.sig_figs) + "," +
         real(r.step_size[at], m.sig_figs) + ",0," + std::to_string(r.n_leapfrog[at]) + "," +
         std::to_string(r.divergent[at]) + "," + real(r.energy[at], m.sig_figs);
    for (size_t k = 0; k < np; ++k) s += "," + real(r.values[at * np + k], m.sig_figs);
    s += '\n';
  }
  s += "# \n";
  s += vkn::format("#  Elapsed Time: {:.3f} seconds (Warm-up)\n", r.warmup_seconds);
  s += vkn::format("#                {:.3f} seconds (Sampling)\n", r.sampling_seconds);
  s += vkn::format("#                {:.3f} seconds (Total)\n", r.warmup_seconds + r.sampling_seconds);
  s += "# \n";
  return s;
}

Result<std::vector<std::filesystem::path>> write_cmdstan_csvs(const std::filesystem::path& prefix,
                                                             const SampleResult& result, const CsvMetadata& meta) {
  std::vector<std::filesystem::path> paths;
  for (uint32_t c = 0; c < result.chains; ++c) {
    std::filesystem::path path = prefix;
    path += vkn::format("_{}.csv", result.first_chain + c + 1);
    const std::string text = format_cmdstan_csv(result, c, meta);
    const auto bytes = std::span(reinterpret_cast<const uint8_t*>(text.data()), text.size());
    if (auto r = write_file_atomically(posix_file_ops(), path, bytes); !r) return fail(r.error());
    paths.push_back(std::move(path));
  }
  return paths;
}

}  // namespace vkn::sampler
