// emit_glsl: the tape as straight-line GLSL, statement for statement the passes of evaluate().
#include "sampler/expr_tape.h"
#include "sampler/glsl_math.h"
#include "util/strformat.h"

namespace vkn::sampler::detail {
namespace {

std::string_view glsl_function(ExprOp op) {
  switch (op) {
    case ExprOp::exp: return "vkn_exp";
    case ExprOp::log: return "vkn_log";
    case ExprOp::log1p: return "vkn_log1p";
    case ExprOp::sqrt: return "vkn_sqrt";
    case ExprOp::sin: return "vkn_sin";
    case ExprOp::cos: return "vkn_cos";
    case ExprOp::tanh: return "vkn_tanh";
    case ExprOp::lgamma: return "vkn_lgamma";
    case ExprOp::logistic: return "vkn_logistic";
    case ExprOp::log1p_exp: return "vkn_log1p_exp";
    default: return "";
  }
}

std::string_view glsl_operator(ExprOp op) {
  switch (op) {
    case ExprOp::add: return "+";
    case ExprOp::sub: return "-";
    case ExprOp::mul: return "*";
    case ExprOp::div: return "/";
    default: return "?";
  }
}

std::string forward(const ExprTape& t, size_t k, Precision p) {
  const auto& n = t.nodes[k];
  switch (n.op) {
    case ExprOp::constant: return glsl_literal(n.value, p);
    case ExprOp::param: return vkn::format("q[{}]", n.n);
    case ExprOp::data: return vkn::format("REAL(vkn_{}[{}])", t.data[n.a].name, n.b);
    case ExprOp::neg: return vkn::format("-v{}", n.a);
    case ExprOp::powi: return vkn::format("vkn_powi(v{}, {})", n.a, n.n);
    case ExprOp::pow: return vkn::format("vkn_pow(v{}, v{})", n.a, n.b);
    case ExprOp::add:
    case ExprOp::sub:
    case ExprOp::mul:
    case ExprOp::div: return vkn::format("v{} {} v{}", n.a, glsl_operator(n.op), n.b);
    case ExprOp::sum: {
      std::string s = "0.0LF";
      for (uint32_t i = 0; i < n.args_count; ++i) s += vkn::format(" + v{}", t.args[n.args_begin + i]);
      return s;
    }
    default: return vkn::format("{}(v{})", glsl_function(n.op), n.a);
  }
}

// The adjoint statements of node k (only into active operands).
std::string reverse(const ExprTape& t, size_t k) {
  const auto& n = t.nodes[k];
  const bool a = n.op != ExprOp::sum && n.op != ExprOp::constant && n.op != ExprOp::param &&
                 n.op != ExprOp::data && t.active[n.a];
  const bool b = n.op >= ExprOp::add && n.op <= ExprOp::pow && t.active[n.b];
  auto ga = [&](std::string_view op, const std::string& rhs) {
    return a ? vkn::format("  g{} {}= g{} * {};\n", n.a, op, k, rhs) : std::string();
  };
  auto gb = [&](std::string_view op, const std::string& rhs) {
    return b ? vkn::format("  g{} {}= g{} * {};\n", n.b, op, k, rhs) : std::string();
  };
  const std::string va = vkn::format("v{}", n.a), vb = vkn::format("v{}", n.b), vk = vkn::format("v{}", k);
  switch (n.op) {
    case ExprOp::neg: return a ? vkn::format("  g{} -= g{};\n", n.a, k) : "";
    case ExprOp::exp: return ga("+", vk);
    case ExprOp::log: return a ? vkn::format("  g{} += g{} / {};\n", n.a, k, va) : "";
    case ExprOp::log1p: return a ? vkn::format("  g{} += g{} / (1.0LF + {});\n", n.a, k, va) : "";
    case ExprOp::sqrt: return a ? vkn::format("  g{} += g{} * 0.5LF / {};\n", n.a, k, vk) : "";
    case ExprOp::sin: return ga("+", "vkn_cos(" + va + ")");
    case ExprOp::cos: return ga("-", "vkn_sin(" + va + ")");
    case ExprOp::tanh: return ga("+", "(1.0LF - " + vk + " * " + vk + ")");
    case ExprOp::lgamma: return ga("+", "vkn_digamma(" + va + ")");
    case ExprOp::logistic: return a ? vkn::format("  g{} += g{} * {} * (1.0LF - {});\n", n.a, k, vk, vk) : "";
    case ExprOp::log1p_exp: return ga("+", "vkn_logistic(" + va + ")");
    case ExprOp::powi:
      return a ? vkn::format("  g{} += g{} * REAL({}) * vkn_powi({}, {});\n", n.a, k, n.n, va, n.n - 1) : "";
    case ExprOp::add: return (a ? vkn::format("  g{} += g{};\n", n.a, k) : "") + (b ? vkn::format("  g{} += g{};\n", n.b, k) : "");
    case ExprOp::sub: return (a ? vkn::format("  g{} += g{};\n", n.a, k) : "") + (b ? vkn::format("  g{} -= g{};\n", n.b, k) : "");
    case ExprOp::mul: return ga("+", vb) + gb("+", va);
    case ExprOp::div:
      return (a ? vkn::format("  g{} += g{} / {};\n", n.a, k, vb) : "") +
             (b ? vkn::format("  g{} -= g{} * {} / {};\n", n.b, k, vk, vb) : "");
    case ExprOp::pow: return ga("+", vb + " * vkn_pow(" + va + ", " + vb + " - 1.0LF)") + gb("+", vk + " * vkn_log(" + va + ")");
    case ExprOp::sum: {
      std::string s;
      for (uint32_t i = 0; i < n.args_count; ++i) {
        const uint32_t arg = t.args[n.args_begin + i];
        if (t.active[arg]) s += vkn::format("  g{} += g{};\n", arg, k);
      }
      return s;
    }
    default: return "";
  }
}

}  // namespace

std::string emit_glsl(const ExprTape& t, const GlslOptions& options) {
  const Precision p = options.precision;
  std::string s = glsl_prelude(p, t.dimension);
  for (size_t i = 0; i < t.data.size(); ++i) {
    s += glsl_data_block(t.data[i].name, options.data_set, options.data_binding_base + static_cast<uint32_t>(i));
  }
  std::string body = "REAL vkn_log_density(in REAL q[VKN_DIM], out REAL grad[VKN_DIM]) {\n";
  for (size_t k = 0; k <= t.root; ++k) body += vkn::format("  REAL v{} = {};\n", k, forward(t, k, p));
  for (size_t k = 0; k <= t.root; ++k) {
    if (t.active[k]) body += vkn::format("  REAL g{} = {};\n", k, k == t.root ? "1.0LF" : "0.0LF");
  }
  for (size_t k = t.root + 1; k-- > 0;) {
    if (t.active[k]) body += reverse(t, k);
  }
  std::vector<int64_t> param_node(t.dimension, -1);
  for (size_t k = 0; k <= t.root; ++k) {
    if (t.nodes[k].op == ExprOp::param) param_node[t.nodes[k].n] = static_cast<int64_t>(k);
  }
  for (size_t i = 0; i < t.dimension; ++i) {
    body += param_node[i] < 0 ? vkn::format("  grad[{}] = 0.0LF;\n", i)
                              : vkn::format("  grad[{}] = g{};\n", i, param_node[i]);
  }
  body += vkn::format("  return v{};\n}\n", t.root);
  return s + glsl_instantiate(body, p);
}

}  // namespace vkn::sampler::detail
