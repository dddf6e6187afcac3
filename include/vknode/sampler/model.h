// Model: a log density on R^d (the unconstrained space) with its gradient, computed the same way
// on the CPU (log_density) and on the GPU (the GLSL text from glsl()). Samplers see only this
// interface. Implementations are immutable after construction, and log_density may be called
// from many threads at once (every const member is thread-safe).
//
// GLSL contract (both precisions). glsl() returns self-contained GLSL 4.50 text that a compute
// shader pastes after its own `#version 450` line and layout declarations. It defines
//
//   const int VKN_DIM = <dimension>;
//   REAL vkn_log_density(in REAL q[VKN_DIM], out REAL grad[VKN_DIM]);
//
// where REAL is `float` (Precision::f32) or `double` (Precision::f64), plus helper functions
// whose names start with `vkn_`. The function returns the log density at q (Jacobian included)
// and writes its gradient; impossible points return -inf or NaN, which a sampler must treat as
// "reject". The f64 text needs shaderFloat64 and uses software exp/log/sin/cos (GLSL has no
// double transcendentals), accurate to a few ulp.
// Data-bearing models declare one read-only std430 storage buffer per entry of data_buffers():
//
//   layout(std430, set = <data_set>, binding = <data_binding_base + i>) readonly buffer
//       VknData_<name> { float vkn_<name>[]; };
//
// Data are always stored as f32 (also in the f64 variant, which widens on load); models round
// their data to f32 on construction so that the CPU computes on exactly the numbers the GPU sees.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace vkn::sampler {

enum class Precision { f32, f64 };

// Where data buffers bind unless the caller says otherwise.
inline constexpr uint32_t kDataBindingBase = 8;

struct GlslOptions {
  Precision precision = Precision::f32;
  uint32_t data_set = 0;
  uint32_t data_binding_base = kDataBindingBase;  // buffer i binds at data_binding_base + i
};

// One data set a model's GLSL reads: upload `values` once into a storage buffer and bind it at
// `binding` (the suggestion for GlslOptions{} defaults: kDataBindingBase + index).
struct DataBuffer {
  std::string name;  // GLSL array is `vkn_<name>`; [A-Za-z][A-Za-z0-9_]*
  uint32_t binding = 0;
  std::vector<float> values;
};

class Model {
 public:
  virtual ~Model() = default;

  // Number of unconstrained parameters.
  virtual size_t dimension() const = 0;
  // A short human-readable description, e.g. "normal(mu=0, sigma=1)[10]".
  virtual std::string name() const = 0;

  // log p(q) on the unconstrained scale, Jacobian of the constraining transform included;
  // writes d/dq into grad. Returns -inf (grad unspecified) where the density is zero or the
  // value is not a number. Requires: q.size() == grad.size() == dimension().
  virtual double log_density(std::span<const double> q, std::span<double> grad) const = 0;

  // Names of the constrained output values, Stan style ("theta.1", "mu", ...). May be longer
  // than dimension() when the model also reports derived quantities.
  virtual std::vector<std::string> param_names() const;
  // The output values (size param_names().size()) of the unconstrained point q.
  virtual std::vector<double> constrain(std::span<const double> q) const;

  // GLSL source defining vkn_log_density (see the contract above).
  virtual std::string glsl(const GlslOptions& options = {}) const = 0;
  // The data the GLSL reads, with bindings for GlslOptions{} (empty for data-free models).
  virtual std::vector<DataBuffer> data_buffers() const { return {}; }
};

// "theta.1" ... "theta.n": Stan's names for the elements of a vector parameter.
std::vector<std::string> vector_names(std::string_view base, size_t n);

}  // namespace vkn::sampler
