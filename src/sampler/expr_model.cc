#include <cmath>

#include "sampler/expr_tape.h"
#include "vknode/sampler/expr.h"

namespace vkn::sampler {

ExprModel::ExprModel(std::unique_ptr<detail::ExprTape> tape, std::string name)
    : tape_(std::move(tape)), name_(std::move(name)) {}

ExprModel::~ExprModel() = default;

Result<std::unique_ptr<ExprModel>> ExprModel::create(const ExprBuilder& builder, Expr log_density, size_t dimension,
                                                     std::string name) {
  auto tape = detail::build_tape(builder, log_density, dimension);
  if (!tape) return fail(tape.error());
  return std::unique_ptr<ExprModel>(
      new ExprModel(std::make_unique<detail::ExprTape>(std::move(*tape)), std::move(name)));
}

Result<std::unique_ptr<ExprModel>> ExprModel::parse(std::string_view text, const ParseOptions& options) {
  ExprBuilder builder;
  auto root = parse_expr(builder, text, options);
  if (!root) return fail(root.error());
  return create(builder, *root, options.dimension, std::string(text.substr(0, 200)));
}

size_t ExprModel::dimension() const { return tape_->dimension; }

size_t ExprModel::tape_size() const { return tape_->nodes.size(); }

std::vector<std::string> ExprModel::param_names() const {
  std::vector<std::string> names;
  for (size_t i = 0; i < tape_->dimension; ++i) names.push_back("q" + std::to_string(i));
  return names;
}

double ExprModel::log_density(std::span<const double> q, std::span<double> grad) const {
  return detail::evaluate(*tape_, q, grad);
}

std::string ExprModel::glsl(const GlslOptions& options) const { return detail::emit_glsl(*tape_, options); }

std::vector<DataBuffer> ExprModel::data_buffers() const {
  std::vector<DataBuffer> out;
  for (size_t i = 0; i < tape_->data.size(); ++i) {
    out.push_back({tape_->data[i].name, kDataBindingBase + static_cast<uint32_t>(i), tape_->data[i].values});
  }
  return out;
}

}  // namespace vkn::sampler
