// The CPU side of ExprModel: tape extraction and the forward/reverse passes.
#include "sampler/expr_tape.h"

#include <cmath>
#include <limits>

#include "sampler/special_math.h"
#include "util/strformat.h"

namespace vkn::sampler::detail {

double expr_apply(ExprOp op, double a, double b, int n) {
  switch (op) {
    case ExprOp::neg: return -a;
    case ExprOp::exp: return std::exp(a);
    case ExprOp::log: return a < 0 ? std::nan("") : std::log(a);
    case ExprOp::log1p: return std::log1p(a);
    case ExprOp::sqrt: return std::sqrt(a);
    case ExprOp::sin: return std::sin(a);
    case ExprOp::cos: return std::cos(a);
    case ExprOp::tanh: return detail::tanh(a);
    case ExprOp::lgamma: return detail::lgamma(a);
    case ExprOp::logistic: return detail::logistic(a);
    case ExprOp::log1p_exp: return detail::log1p_exp(a);
    case ExprOp::powi: return detail::powi(a, n);
    case ExprOp::add: return a + b;
    case ExprOp::sub: return a - b;
    case ExprOp::mul: return a * b;
    case ExprOp::div: return a / b;
    case ExprOp::pow: return detail::pow(a, b);
    default: return std::nan("");
  }
}

Result<ExprTape> build_tape(const ExprBuilder& builder, Expr root, size_t dimension) {
  if (builder.error()) return fail(*builder.error());
  if (root.builder() != &builder || root.id() >= builder.nodes().size()) {
    return fail(Errc::invalid_argument, "the log density is not a node of this builder");
  }
  const auto& nodes = builder.nodes();
  const auto& args = builder.args();
  // Operands are older than their node: one backward sweep marks everything reachable.
  std::vector<uint8_t> reachable(root.id() + 1, 0);
  reachable[root.id()] = 1;
  for (size_t k = root.id() + 1; k-- > 0;) {
    if (!reachable[k]) continue;
    const auto& n = nodes[k];
    if (n.op >= ExprOp::neg && n.op <= ExprOp::powi) reachable[n.a] = 1;
    if (n.op >= ExprOp::add && n.op <= ExprOp::pow) reachable[n.a] = reachable[n.b] = 1;
    if (n.op == ExprOp::sum) {
      for (uint32_t i = 0; i < n.args_count; ++i) reachable[args[n.args_begin + i]] = 1;
    }
  }
  ExprTape tape;
  std::vector<uint32_t> remap(root.id() + 1, 0), data_remap(builder.data_vectors().size(), UINT32_MAX);
  int64_t max_param = -1;
  for (size_t k = 0; k <= root.id(); ++k) {
    if (!reachable[k]) continue;
    ExprBuilder::Node n = nodes[k];
    bool active = false;
    if (n.op == ExprOp::param) {
      active = true;
      max_param = std::max<int64_t>(max_param, n.n);
    } else if (n.op == ExprOp::data) {
      if (data_remap[n.a] == UINT32_MAX) {
        data_remap[n.a] = static_cast<uint32_t>(tape.data.size());
        tape.data.push_back(builder.data_vectors()[n.a]);
      }
      n.a = data_remap[n.a];
    } else if (n.op == ExprOp::sum) {
      const uint32_t begin = static_cast<uint32_t>(tape.args.size());
      for (uint32_t i = 0; i < n.args_count; ++i) {
        const uint32_t arg = remap[args[n.args_begin + i]];
        tape.args.push_back(arg);
        active = active || tape.active[arg];
      }
      n.args_begin = begin;
    } else if (n.op != ExprOp::constant) {
      n.a = remap[n.a];
      active = tape.active[n.a];
      if (n.op >= ExprOp::add) {
        n.b = remap[n.b];
        active = active || tape.active[n.b];
      }
    }
    remap[k] = static_cast<uint32_t>(tape.nodes.size());
    tape.nodes.push_back(n);
    tape.active.push_back(active ? 1 : 0);
  }
  tape.root = remap[root.id()];
  const size_t used = static_cast<size_t>(max_param + 1);
  if (dimension == 0) dimension = used;
  if (dimension == 0) return fail(Errc::invalid_argument, "the expression uses no parameters");
  if (used > dimension) {
    return fail(Errc::invalid_argument, "the expression uses a parameter past the dimension",
                vkn::format("q{} with dimension {}", max_param, dimension));
  }
  tape.dimension = dimension;
  return tape;
}

double evaluate(const ExprTape& tape, std::span<const double> q, std::span<double> grad) {
  thread_local std::vector<double> v, adj;
  const size_t n = tape.nodes.size();
  v.resize(n);
  for (size_t k = 0; k < n; ++k) {
    const auto& node = tape.nodes[k];
    switch (node.op) {
      case ExprOp::constant: v[k] = node.value; break;
      case ExprOp::param: v[k] = q[node.n]; break;
      case ExprOp::data: v[k] = tape.data[node.a].values[node.b]; break;
      case ExprOp::sum: {
        double s = 0;
        for (uint32_t i = 0; i < node.args_count; ++i) s += v[tape.args[node.args_begin + i]];
        v[k] = s;
        break;
      }
      default: v[k] = expr_apply(node.op, v[node.a], node.op >= ExprOp::add ? v[node.b] : 0.0, node.n); break;
    }
  }
  adj.assign(n, 0.0);
  adj[tape.root] = 1.0;
  for (size_t k = tape.root + 1; k-- > 0;) {
    if (!tape.active[k]) continue;
    const auto& node = tape.nodes[k];
    const double g = adj[k];
    const uint32_t a = node.a, b = node.b;
    switch (node.op) {
      case ExprOp::neg: adj[a] -= g; break;
      case ExprOp::exp: adj[a] += g * v[k]; break;
      case ExprOp::log: adj[a] += g / v[a]; break;
      case ExprOp::log1p: adj[a] += g / (1.0 + v[a]); break;
      case ExprOp::sqrt: adj[a] += g * 0.5 / v[k]; break;
      case ExprOp::sin: adj[a] += g * std::cos(v[a]); break;
      case ExprOp::cos: adj[a] -= g * std::sin(v[a]); break;
      case ExprOp::tanh: adj[a] += g * (1.0 - v[k] * v[k]); break;
      case ExprOp::lgamma: adj[a] += g * detail::digamma(v[a]); break;
      case ExprOp::logistic: adj[a] += g * v[k] * (1.0 - v[k]); break;
      case ExprOp::log1p_exp: adj[a] += g * detail::logistic(v[a]); break;
      case ExprOp::powi: adj[a] += g * node.n * detail::powi(v[a], node.n - 1); break;
      case ExprOp::add: adj[a] += g; adj[b] += g; break;
      case ExprOp::sub: adj[a] += g; adj[b] -= g; break;
      case ExprOp::mul: adj[a] += g * v[b]; adj[b] += g * v[a]; break;
      case ExprOp::div: adj[a] += g / v[b]; adj[b] -= g * v[k] / v[b]; break;
      case ExprOp::pow:
        adj[a] += g * v[b] * detail::pow(v[a], v[b] - 1.0);
        if (tape.active[b]) adj[b] += g * v[k] * std::log(v[a]);
        break;
      case ExprOp::sum:
        for (uint32_t i = 0; i < node.args_count; ++i) adj[tape.args[node.args_begin + i]] += g;
        break;
      default: break;
    }
  }
  for (double& x : grad) x = 0.0;
  for (size_t k = 0; k < n; ++k) {
    if (tape.nodes[k].op == ExprOp::param) grad[tape.nodes[k].n] += adj[k];
  }
  const double lp = v[tape.root];
  return std::isnan(lp) ? -std::numeric_limits<double>::infinity() : lp;
}

}  // namespace vkn::sampler::detail
