#include "vknode/sampler/model.h"

#include "util/strformat.h"

namespace vkn::sampler {

std::vector<std::string> vector_names(std::string_view base, size_t n) {
  std::vector<std::string> names;
  names.reserve(n);
  for (size_t i = 0; i < n; ++i) names.push_back(vkn::format("{}.{}", base, i + 1));
  return names;
}

std::vector<std::string> Model::param_names() const { return vector_names("q", dimension()); }

std::vector<double> Model::constrain(std::span<const double> q) const {
  return {q.begin(), q.end()};
}

}  // namespace vkn::sampler
