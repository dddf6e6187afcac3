// ExprBuilder and the operator overloads. Operations on constants fold to constants.
#include <cmath>

#include "sampler/expr_tape.h"
#include "util/strformat.h"
#include "vknode/sampler/expr.h"

namespace vkn::sampler {
namespace {

bool is_unary(ExprOp op) { return op >= ExprOp::neg && op <= ExprOp::powi; }
bool is_binary(ExprOp op) { return op >= ExprOp::add && op <= ExprOp::pow; }

bool valid_name(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  const auto alpha = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); };
  if (!alpha(name[0])) return false;
  for (char c : name) {
    if (!alpha(c) && !(c >= '0' && c <= '9') && c != '_') return false;
  }
  return name.find("__") == std::string_view::npos;
}

}  // namespace

std::string_view to_string(ExprOp op) {
  static constexpr std::string_view kNames[] = {
      "constant", "param", "data", "neg", "exp", "log", "log1p", "sqrt", "sin", "cos", "tanh", "lgamma",
      "logistic", "log1p_exp", "powi", "add", "sub", "mul", "div", "pow", "sum"};
  return kNames[static_cast<size_t>(op)];
}

void ExprBuilder::record(Error e) {
  if (!error_) error_ = std::move(e);
}

bool ExprBuilder::check(Expr e) {
  if (e.builder() == this && e.id() < nodes_.size()) return true;
  record(Error::invalid_argument("expression combines nodes of different builders (or an empty Expr)"));
  return false;
}

Expr ExprBuilder::add_node(Node node) {
  nodes_.push_back(node);
  return Expr(this, static_cast<uint32_t>(nodes_.size() - 1));
}

Expr ExprBuilder::constant(double v) { return add_node({ExprOp::constant, 0, 0, 0, v}); }

Expr ExprBuilder::param(size_t i) {
  if (i > 0x7FFFFFFF) {
    record(Error::invalid_argument("parameter index too large", vkn::format("{}", i)));
    i = 0;
  }
  if (auto it = param_ids_.find(i); it != param_ids_.end()) return Expr(this, it->second);
  Expr e = add_node({ExprOp::param, 0, 0, static_cast<int32_t>(i)});
  param_ids_.emplace(i, e.id());
  return e;
}

std::vector<Expr> ExprBuilder::params(size_t n) {
  std::vector<Expr> out;
  for (size_t i = 0; i < n; ++i) out.push_back(param(i));
  return out;
}

ExprData ExprBuilder::data(std::string name, std::span<const double> values) {
  if (!valid_name(name)) record(Error::invalid_argument("bad data name", name));
  for (const auto& d : data_) {
    if (d.name == name) record(Error::invalid_argument("data name used twice", name));
  }
  data_.push_back({std::move(name), std::vector<float>(values.begin(), values.end())});
  return {static_cast<uint32_t>(data_.size() - 1)};
}

Expr ExprBuilder::at(ExprData d, size_t index) {
  if (d.index >= data_.size() || index >= data_[d.index].values.size()) {
    record(Error::invalid_argument("data index out of range", vkn::format("{}", index)));
    return constant(std::nan(""));
  }
  return add_node({ExprOp::data, d.index, static_cast<uint32_t>(index)});
}

Expr ExprBuilder::unary(ExprOp op, Expr x) {
  if (!is_unary(op) || op == ExprOp::powi) {
    record(Error::invalid_argument("not a unary operation", to_string(op)));
    return constant(std::nan(""));
  }
  if (!check(x)) return constant(std::nan(""));
  const Node& a = nodes_[x.id()];
  if (a.op == ExprOp::constant) return constant(detail::expr_apply(op, a.value, 0, 0));
  return add_node({op, x.id()});
}

Expr ExprBuilder::binary(ExprOp op, Expr x, Expr y) {
  if (!is_binary(op)) {
    record(Error::invalid_argument("not a binary operation", to_string(op)));
    return constant(std::nan(""));
  }
  if (!check(x) || !check(y)) return constant(std::nan(""));
  const Node& a = nodes_[x.id()];
  const Node& b = nodes_[y.id()];
  if (op == ExprOp::pow && b.op == ExprOp::constant && b.value == std::round(b.value) && std::abs(b.value) <= 64) {
    return powi(x, static_cast<int>(b.value));
  }
  if (a.op == ExprOp::constant && b.op == ExprOp::constant) {
    return constant(detail::expr_apply(op, a.value, b.value, 0));
  }
  return add_node({op, x.id(), y.id()});
}

Expr ExprBuilder::powi(Expr x, int n) {
  if (!check(x)) return constant(std::nan(""));
  const Node& a = nodes_[x.id()];
  if (a.op == ExprOp::constant) return constant(detail::expr_apply(ExprOp::powi, a.value, 0, n));
  if (n == 1) return x;
  return add_node({ExprOp::powi, x.id(), 0, n});
}

Expr ExprBuilder::sum(std::span<const Expr> terms) {
  if (terms.empty()) return constant(0.0);
  for (Expr t : terms) {
    if (!check(t)) return constant(std::nan(""));
  }
  if (terms.size() == 1) return terms[0];
  Node node{ExprOp::sum};
  node.args_begin = static_cast<uint32_t>(args_.size());
  node.args_count = static_cast<uint32_t>(terms.size());
  for (Expr t : terms) args_.push_back(t.id());
  return add_node(node);
}

namespace {

// The builder of an operation between an Expr and a double.
Expr lift(Expr x, double v) { return x.valid() ? x.builder()->constant(v) : Expr(); }
Expr bin(ExprOp op, Expr x, Expr y) {
  ExprBuilder* b = x.valid() ? x.builder() : y.builder();
  return b ? b->binary(op, x, y) : Expr();
}
Expr un(ExprOp op, Expr x) { return x.valid() ? x.builder()->unary(op, x) : Expr(); }

}  // namespace

Expr operator+(Expr x, Expr y) { return bin(ExprOp::add, x, y); }
Expr operator-(Expr x, Expr y) { return bin(ExprOp::sub, x, y); }
Expr operator*(Expr x, Expr y) { return bin(ExprOp::mul, x, y); }
Expr operator/(Expr x, Expr y) { return bin(ExprOp::div, x, y); }
Expr operator+(Expr x, double y) { return x + lift(x, y); }
Expr operator-(Expr x, double y) { return x - lift(x, y); }
Expr operator*(Expr x, double y) { return x * lift(x, y); }
Expr operator/(Expr x, double y) { return x / lift(x, y); }
Expr operator+(double x, Expr y) { return lift(y, x) + y; }
Expr operator-(double x, Expr y) { return lift(y, x) - y; }
Expr operator*(double x, Expr y) { return lift(y, x) * y; }
Expr operator/(double x, Expr y) { return lift(y, x) / y; }
Expr operator-(Expr x) { return un(ExprOp::neg, x); }
Expr exp(Expr x) { return un(ExprOp::exp, x); }
Expr log(Expr x) { return un(ExprOp::log, x); }
Expr log1p(Expr x) { return un(ExprOp::log1p, x); }
Expr sqrt(Expr x) { return un(ExprOp::sqrt, x); }
Expr sin(Expr x) { return un(ExprOp::sin, x); }
Expr cos(Expr x) { return un(ExprOp::cos, x); }
Expr tanh(Expr x) { return un(ExprOp::tanh, x); }
Expr lgamma(Expr x) { return un(ExprOp::lgamma, x); }
Expr logistic(Expr x) { return un(ExprOp::logistic, x); }
Expr log1p_exp(Expr x) { return un(ExprOp::log1p_exp, x); }
Expr pow(Expr x, Expr y) { return bin(ExprOp::pow, x, y); }
Expr pow(Expr x, double y) { return pow(x, lift(x, y)); }
Expr square(Expr x) { return x.valid() ? x.builder()->powi(x, 2) : Expr(); }
Expr sum(std::span<const Expr> terms) {
  for (Expr t : terms) {
    if (t.valid()) return t.builder()->sum(terms);
  }
  return Expr();
}

}  // namespace vkn::sampler
