// ExprTape: the nodes of an ExprModel reachable from its root, renumbered in topological order,
// with the data they read. evaluate() runs the forward and reverse passes on the CPU;
// emit_glsl() writes the same passes as straight-line GLSL. Immutable after build; evaluate()
// is thread-safe (scratch is thread_local).
#pragma once

#include <string>
#include <vector>

#include "vknode/sampler/expr.h"

namespace vkn::sampler::detail {

struct ExprTape {
  std::vector<ExprBuilder::Node> nodes;      // operands refer to tape indices
  std::vector<uint32_t> args;                // sum operands (tape indices)
  std::vector<uint8_t> active;               // depends on some parameter
  std::vector<ExprBuilder::DataVector> data; // only the vectors the tape reads
  uint32_t root = 0;
  size_t dimension = 0;
};

// The value of one operation on already-evaluated operands (n: powi exponent).
double expr_apply(ExprOp op, double a, double b, int n);

// Extracts the tape of `root`. dimension 0: inferred. Errors as ExprModel::create.
Result<ExprTape> build_tape(const ExprBuilder& builder, Expr root, size_t dimension);

// lp (NaN mapped to -inf) and its gradient.
double evaluate(const ExprTape& tape, std::span<const double> q, std::span<double> grad);

std::string emit_glsl(const ExprTape& tape, const GlslOptions& options);

}  // namespace vkn::sampler::detail
