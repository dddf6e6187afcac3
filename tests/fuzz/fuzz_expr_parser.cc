// Fuzz target: the sampler's expression parser (model text from the command line or a
// file). It must reject bad text with invalid_argument and a position, bound its
// recursion, and build models whose log density can be evaluated without crashing.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "vknode/sampler/expr.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace vkn::sampler;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  ParseOptions options;
  options.dimension = 3;
  options.data["y"] = {0.5, -1.0, 2.0, 3.5};
  options.data["x"] = {1.0};
  auto model = ExprModel::parse(text, options);
  if (model && (*model)->dimension() <= 64) {
    std::vector<double> q((*model)->dimension(), 0.25), grad((*model)->dimension());
    (void)(*model)->log_density(q, grad);
    (void)(*model)->glsl();
  }
  return 0;
}
