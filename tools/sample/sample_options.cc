#include "sample_options.h"

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>

#include "util/strformat.h"
#include "vknode/gpu/device.h"
#include "vknode/sampler/expr.h"
#include "vknode/sampler/models.h"

namespace vkn::cli {
namespace {

using namespace vkn::sampler;

bool parse_u64(std::string_view s, uint64_t& out) {
  if (s.empty()) return false;
  char* end = nullptr;
  const std::string text(s);
  out = std::strtoull(text.c_str(), &end, 10);
  return end && *end == '\0' && text[0] != '-';
}

bool parse_double(std::string_view s, double& out) {
  if (s.empty()) return false;
  char* end = nullptr;
  const std::string text(s);
  out = std::strtod(text.c_str(), &end);
  return end && *end == '\0';
}

// Returns an empty string on success, else the usage error.
std::string parse_args(std::span<char* const> args, SampleOptions& o) {
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string_view a = args[i];
    auto value = [&](std::string_view& v) {
      if (i + 1 >= args.size()) return false;
      v = args[++i];
      return true;
    };
    auto u32 = [&](uint32_t& out) -> std::string {
      std::string_view v;
      uint64_t x = 0;
      if (!value(v) || !parse_u64(v, x) || x > 0xffffffffull)
        return vkn::format("{} needs a non-negative integer", a);
      out = static_cast<uint32_t>(x);
      return {};
    };
    auto real = [&](double& out) -> std::string {
      std::string_view v;
      if (!value(v) || !parse_double(v, out)) return vkn::format("{} needs a number", a);
      return {};
    };
    std::string err;
    std::string_view v;
    if (a == "--chains") {
      err = u32(o.config.chains);
    } else if (a == "--warmup") {
      err = u32(o.config.warmup);
    } else if (a == "--draws") {
      err = u32(o.config.draws);
    } else if (a == "--steps") {
      err = u32(o.config.steps);
    } else if (a == "--threads") {
      uint32_t t = 0;
      err = u32(t);
      o.config.threads = t;
    } else if (a == "--seed") {
      uint64_t s = 0;
      if (!value(v) || !parse_u64(v, s)) err = "--seed needs a non-negative integer";
      o.config.seed = s;
    } else if (a == "--step-size") {
      err = real(o.config.step_size);
    } else if (a == "--target-accept") {
      err = real(o.config.target_accept);
    } else if (a == "--adapt-steps") {
      o.config.adapt_steps = true;
    } else if (a == "--pooled-metric") {
      o.config.metric_pooled = true;
    } else if (a == "--pooled-step-size") {
      o.config.step_size_pooled = true;
    } else if (a == "--gpus") {
      if (!value(v) || v.empty()) err = "--gpus needs all or a list of device selectors (0,1)";
      o.gpus = v;
    } else if (a == "--params") {
      if (!value(v)) err = "--params needs K=V,...";
      o.params = v;
    } else if (a == "--expr") {
      if (!value(v)) err = "--expr needs a text";
      o.expr = v;
    } else if (a == "--dim") {
      uint32_t d = 0;
      err = u32(d);
      o.dim = d;
    } else if (a == "--logistic") {
      if (!value(v)) err = "--logistic needs a CSV file";
      o.logistic_csv = v;
    } else if (a == "--synthetic") {
      if (!value(v)) err = "--synthetic needs N,D";
      o.synthetic = v;
    } else if (a == "--device") {
      if (!value(v) || (v != "auto" && v != "daemon" && v != "gpu" && v != "cpu")) {
        err = "--device is auto, daemon, gpu or cpu";
      }
      o.device = v;
    } else if (a == "--precision") {
      if (!value(v) || (v != "f32" && v != "f64")) err = "--precision is f32 or f64";
      o.precision = v;
    } else if (a == "--output") {
      if (!value(v)) err = "--output needs a prefix";
      o.output = v;
    } else if (a == "--json") {
      o.json = true;
    } else if (a == "--no-progress") {
      o.progress = false;
    } else if (!a.empty() && a[0] != '-' && o.family.empty()) {
      o.family = a;
    } else {
      err = vkn::format("unexpected argument '{}'", a);
    }
    if (!err.empty()) return err;
  }
  const int sources =
      !o.family.empty() + !o.expr.empty() + !o.logistic_csv.empty() + !o.synthetic.empty();
  if (sources != 1) return "give exactly one model: FAMILY, --expr, --logistic or --synthetic";
  if (!o.expr.empty() && o.dim == 0) return "--expr needs --dim D (D > 0)";
  return {};
}

// Simulated logistic-regression data: x[., 0] = 1, the rest N(0, 1) (rounded to f32);
// beta = (0.5, 1, -0.7, 1, -0.7, ...).
void synthetic_logistic(size_t n, size_t d, std::vector<double>& x, std::vector<double>& y) {
  std::mt19937_64 rng(20261128);
  std::normal_distribution<double> normal;
  std::uniform_real_distribution<double> unit;
  x.assign(n * d, 0);
  y.assign(n, 0);
  for (size_t i = 0; i < n; ++i) {
    double eta = 0;
    for (size_t j = 0; j < d; ++j) {
      const double v = j == 0 ? 1.0 : static_cast<double>(static_cast<float>(normal(rng)));
      x[i * d + j] = v;
      eta += v * (j == 0 ? 0.5 : (j % 2 ? 1.0 : -0.7));
    }
    y[i] = unit(rng) < 1.0 / (1.0 + std::exp(-eta)) ? 1.0 : 0.0;
  }
}

Result<void> read_logistic_csv(const std::string& path, std::vector<double>& x,
                               std::vector<double>& y, size_t& d) {
  std::ifstream in(path);
  if (!in) return fail(Errc::not_found, "cannot open data file", path);
  std::string line;
  size_t row = 0, cols = 0;
  while (std::getline(in, line)) {
    ++row;
    if (line.empty() || line[0] == '#') continue;
    std::vector<double> values;
    std::stringstream ss(line);
    std::string cell;
    bool numeric = true;
    while (std::getline(ss, cell, ',')) {
      double v = 0;
      while (!cell.empty() && (cell.back() == '\r' || cell.back() == ' ')) cell.pop_back();
      if (!parse_double(cell, v)) numeric = false;
      values.push_back(v);
    }
    if (!numeric) {
      if (row == 1) continue;  // header
      return fail(Errc::invalid_argument, "non-numeric value",
                  vkn::format("{} line {}", path, row));
    }
    if (cols == 0) cols = values.size();
    if (values.size() != cols || cols < 2) {
      return fail(Errc::invalid_argument, "ragged or too narrow row",
                  vkn::format("{} line {}", path, row));
    }
    x.push_back(1.0);
    for (size_t j = 0; j + 1 < cols; ++j) x.push_back(values[j]);
    y.push_back(values.back());
  }
  if (y.empty()) return fail(Errc::invalid_argument, "no data rows", path);
  d = cols;
  return {};
}

Result<std::unique_ptr<Model>> build_model_impl(const SampleOptions& o) {
  if (!o.family.empty()) return make_builtin(o.family, o.params);
  if (!o.expr.empty()) {
    ParseOptions po;
    po.dimension = o.dim;
    auto m = ExprModel::parse(o.expr, po);
    if (!m) return fail(m.error());
    return std::unique_ptr<Model>(std::move(*m));
  }
  std::vector<double> x, y;
  size_t d = 0;
  if (!o.synthetic.empty()) {
    const auto comma = o.synthetic.find(',');
    uint64_t n = 0, dd = 0;
    if (comma == std::string::npos || !parse_u64(o.synthetic.substr(0, comma), n) ||
        !parse_u64(o.synthetic.substr(comma + 1), dd) || n == 0 || dd == 0) {
      return fail(Errc::invalid_argument, "--synthetic needs N,D with N, D > 0", o.synthetic);
    }
    d = dd;
    synthetic_logistic(n, d, x, y);
  } else if (auto r = read_logistic_csv(o.logistic_csv, x, y, d); !r) {
    return fail(r.error());
  }
  return make_logistic_regression(d, x, y);
}

}  // namespace

const char* const kSampleOptionsHelp =
    "model (one of):\n"
    "  FAMILY [--params K=V,...]  built-in: normal student_t cauchy exponential half_normal "
    "weibull\n"
    "                             beta gamma lognormal eight_schools (e.g. normal --params "
    "d=10,sigma=2)\n"
    "  --expr TEXT --dim D        custom log density in q0..q{D-1}, e.g. \"-0.5*q0^2 - q1^2\"\n"
    "  --logistic FILE.csv        logistic regression: numeric CSV, last column y (0/1), other\n"
    "                             columns features; an intercept column is added; a header row is "
    "skipped\n"
    "  --synthetic N,D            logistic regression on N simulated rows with D coefficients\n"
    "\n"
    "options:\n"
    "  --chains N (4)  --warmup N (1000)  --draws N (1000)  --steps K (16)  --seed S (0)\n"
    "  --step-size E (0.1)  --target-accept A (0.8)  --adapt-steps (ChEES)  --pooled-metric\n"
    "  --pooled-step-size (after warm-up all chains use the mean adapted step size)\n"
    "  --device auto|daemon|gpu|cpu (auto): daemon: the machine's vknode daemon; gpu: in-process\n"
    "                  nodes; auto: the daemon if one answers, else in-process nodes. The CPU\n"
    "                  takes over when neither is there and whenever a node fails\n"
    "  --gpus all|SEL,SEL  devices to spread the chains over, one node each (default: the\n"
    "                      default device; all: every GPU of the machine)\n"
    "  --precision f32|f64 (f32)  --threads N (CPU threads, 0 = all)\n"
    "  --output PREFIX  write CmdStan CSVs PREFIX_1.csv ... one per chain\n"
    "  --json           the summary as JSON instead of the table\n"
    "  --no-progress    no progress bar (it is shown on stderr only when stderr is a terminal)\n";

std::string parse_sample_args(std::span<char* const> args, SampleOptions& o) { return parse_args(args, o); }

Result<std::unique_ptr<Model>> build_model(const SampleOptions& o) { return build_model_impl(o); }

std::vector<std::string> gpu_selectors(const std::string& gpus) {
  if (gpus.empty()) return {""};
  std::vector<std::string> out;
  if (gpus == "all") {
    if (auto devices = list_devices()) {
      for (const auto& d : *devices) {
        if (d.type != VK_PHYSICAL_DEVICE_TYPE_CPU) out.push_back(std::to_string(d.index));
      }
    }
    if (out.empty()) out.push_back("");
    return out;
  }
  std::stringstream ss(gpus);
  std::string item;
  while (std::getline(ss, item, ',')) out.push_back(item);
  return out;
}

}  // namespace vkn::cli
