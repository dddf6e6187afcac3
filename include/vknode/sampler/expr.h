// Custom log densities as expressions: an ExprBuilder records a DAG of operations on the
// parameters q[i], constants and data; ExprModel turns one node of it into a Model whose CPU
// evaluation (forward values, then reverse-mode adjoints) and GLSL (the same straight-line
// forward and adjoint code, one statement per node and in the same order) compute the same
// function. parse_expr() reads the same expressions from text, for the CLI.
//
//   ExprBuilder b;
//   Expr x = b.param(0), y = b.param(1);
//   Expr lp = -0.5 * x * x - log1p_exp(y) + lgamma(2.0 + exp(y));
//   auto model = ExprModel::create(b, lp);          // dimension 2, names q0, q1
//
// Nodes are immutable and every node's operands are older than the node, so the graph is
// topologically ordered by construction and nothing recurses over it. Operators combining
// Exprs of different builders (or an invalid Expr) record an error in the builder, which
// ExprModel::create reports. An ExprBuilder is not thread-safe; an ExprModel is immutable and
// thread-safe, and does not refer to its builder after create().
//
// Semantics shared by both paths: log of a negative number and pow(x, y) with x < 0 are NaN;
// pow with a constant integer exponent (|n| <= 64) is exact repeated multiplication, so
// (-2)^3 = -8; lgamma(x) is log |Gamma(x)|; a NaN log density counts as -inf.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "vknode/error.h"
#include "vknode/sampler/model.h"

namespace vkn::sampler {

enum class ExprOp : uint8_t {
  constant, param, data,                            // leaves
  neg, exp, log, log1p, sqrt, sin, cos, tanh,       // unary
  lgamma, logistic, log1p_exp, powi,                // unary (powi: integer exponent)
  add, sub, mul, div, pow,                          // binary
  sum,                                              // n-ary
};

std::string_view to_string(ExprOp op);

class ExprBuilder;
namespace detail {
struct ExprTape;
}

// A handle on one node of an ExprBuilder: valid while the builder lives. Trivially copyable.
class Expr {
 public:
  Expr() = default;
  bool valid() const { return builder_ != nullptr; }
  ExprBuilder* builder() const { return builder_; }
  uint32_t id() const { return id_; }

 private:
  friend class ExprBuilder;
  Expr(ExprBuilder* builder, uint32_t id) : builder_(builder), id_(id) {}
  ExprBuilder* builder_ = nullptr;
  uint32_t id_ = 0;
};

// A data vector registered with a builder; index it with ExprBuilder::at().
struct ExprData {
  uint32_t index = 0;
};

class ExprBuilder {
 public:
  struct Node {
    ExprOp op = ExprOp::constant;
    uint32_t a = 0, b = 0;  // operands; for data: a = data index, b = element
    int32_t n = 0;          // param index, or powi exponent
    double value = 0;       // constants
    uint32_t args_begin = 0, args_count = 0;  // sum: operands in args()
  };
  struct DataVector {
    std::string name;
    std::vector<float> values;  // rounded to f32 like every model's data (see model.h)
  };

  ExprBuilder() = default;
  ExprBuilder(const ExprBuilder&) = delete;  // Exprs point at their builder
  ExprBuilder& operator=(const ExprBuilder&) = delete;

  Expr constant(double v);
  // q[i]; the same i always gives the same node.
  Expr param(size_t i);
  // q[0] .. q[n-1].
  std::vector<Expr> params(size_t n);
  // Registers a data vector under `name` ([A-Za-z][A-Za-z0-9_]*, unique, no "__"); a bad name
  // is recorded as the builder's error.
  ExprData data(std::string name, std::span<const double> values);
  // Element `index` of registered data (out of range: recorded error).
  Expr at(ExprData data, size_t index);

  Expr unary(ExprOp op, Expr x);
  Expr binary(ExprOp op, Expr x, Expr y);
  Expr powi(Expr x, int n);
  // The sum of all terms (0 for none).
  Expr sum(std::span<const Expr> terms);

  const std::vector<Node>& nodes() const { return nodes_; }
  const std::vector<uint32_t>& args() const { return args_; }
  const std::vector<DataVector>& data_vectors() const { return data_; }
  // The first misuse recorded (mixed builders, bad data), if any.
  const std::optional<Error>& error() const { return error_; }

 private:
  Expr add_node(Node node);
  bool check(Expr e);
  void record(Error e);

  std::vector<Node> nodes_;
  std::vector<uint32_t> args_;
  std::vector<DataVector> data_;
  std::unordered_map<size_t, uint32_t> param_ids_;
  std::optional<Error> error_;
};

Expr operator+(Expr x, Expr y);
Expr operator-(Expr x, Expr y);
Expr operator*(Expr x, Expr y);
Expr operator/(Expr x, Expr y);
Expr operator+(Expr x, double y);
Expr operator-(Expr x, double y);
Expr operator*(Expr x, double y);
Expr operator/(Expr x, double y);
Expr operator+(double x, Expr y);
Expr operator-(double x, Expr y);
Expr operator*(double x, Expr y);
Expr operator/(double x, Expr y);
Expr operator-(Expr x);
Expr exp(Expr x);
Expr log(Expr x);
Expr log1p(Expr x);
Expr sqrt(Expr x);
Expr sin(Expr x);
Expr cos(Expr x);
Expr tanh(Expr x);
Expr lgamma(Expr x);
Expr logistic(Expr x);   // 1 / (1 + exp(-x))
Expr log1p_exp(Expr x);  // log(1 + exp(x)), overflow-safe
Expr pow(Expr x, Expr y);
Expr pow(Expr x, double y);  // integer y with |y| <= 64: exact powi
Expr square(Expr x);
Expr sum(std::span<const Expr> terms);  // Requires: terms non-empty (for the builder)

struct ParseOptions {
  size_t max_length = 64 * 1024;  // characters
  // Recursion bound: each parenthesis or call argument costs 2, each unary sign or '^' 1.
  size_t max_depth = 200;
  size_t dimension = 0;            // for sum(q); 0: sum(q) is an error
  // Data usable as name[i] in the text.
  std::map<std::string, std::vector<double>, std::less<>> data;
};

// Parses an expression into `builder`. Grammar (whitespace is ignored):
//   expr  := term (('+' | '-') term)*        term := unary (('*' | '/') unary)*
//   unary := ('-' | '+') unary | power        power := primary ('^' unary)?   (right-assoc)
//   primary := number | 'q' digits | 'q[' digits ']' | 'pi' | data '[' digits ']'
//            | function '(' expr (',' expr)* ')' | '(' expr ')'
// Functions: exp log log1p sqrt sin cos tanh lgamma logistic inv_logit log1p_exp square
// pow(x, y) sum(q) sum(e1, e2, ...). Errors are invalid_argument with the 1-based position:
// "expression: expected ')' at position 12".
Result<Expr> parse_expr(ExprBuilder& builder, std::string_view text, const ParseOptions& options = {});

class ExprModel final : public Model {
 public:
  // The model of `log_density` (a node of `builder`). dimension 0: one more than the largest
  // parameter index used. Errors: invalid_argument for the builder's recorded error, an Expr
  // of another builder, parameter indices >= dimension, or no parameters at all.
  static Result<std::unique_ptr<ExprModel>> create(const ExprBuilder& builder, Expr log_density,
                                                   size_t dimension = 0, std::string name = "expr");
  // parse_expr + create, with the text as the model's name.
  static Result<std::unique_ptr<ExprModel>> parse(std::string_view text, const ParseOptions& options = {});
  ~ExprModel() override;

  size_t dimension() const override;
  std::string name() const override { return name_; }
  std::vector<std::string> param_names() const override;  // q0, q1, ...
  double log_density(std::span<const double> q, std::span<double> grad) const override;
  std::string glsl(const GlslOptions& options = {}) const override;
  std::vector<DataBuffer> data_buffers() const override;
  // Nodes in the evaluated tape (reachable from the root).
  size_t tape_size() const;

 private:
  ExprModel(std::unique_ptr<detail::ExprTape> tape, std::string name);
  std::unique_ptr<detail::ExprTape> tape_;
  std::string name_;
};

}  // namespace vkn::sampler
