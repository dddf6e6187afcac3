// GLSL helpers shared by every model's generated source: a small math library with the same
// algorithms as special_math.h on the CPU (so lgamma/digamma/log1p_exp agree closely), and
// literal formatting. Stateless; thread-safe.
#pragma once

#include <string>
#include <string_view>

#include "vknode/sampler/model.h"

namespace vkn::sampler::detail {

// "float" or "double".
std::string_view glsl_real_type(Precision p);

// A GLSL literal of type REAL that denotes exactly `v` rounded to that type, e.g. "0.5",
// "(-2.5LF)"; non-finite values become bit casts. Negative values are parenthesized.
std::string glsl_literal(double v, Precision p);

// The prelude every model emits first: `const int VKN_DIM = d;` and the helpers
//   vkn_exp vkn_log vkn_log1p vkn_sqrt vkn_sin vkn_cos vkn_tanh vkn_pow vkn_powi
//   vkn_lgamma vkn_digamma vkn_logistic vkn_log1p_exp vkn_inf vkn_nan
// all taking and returning REAL (vkn_powi takes (REAL, int)).
std::string glsl_prelude(Precision p, size_t dimension);

// One readonly std430 block per data buffer:
//   layout(std430, set = S, binding = B) readonly buffer VknData_<name> { float vkn_<name>[]; };
std::string glsl_data_block(std::string_view name, uint32_t set, uint32_t binding);

// Replaces every "REAL" with the type and, for f32, strips the "LF" literal suffix from a
// template written for doubles.
std::string glsl_instantiate(std::string_view tmpl, Precision p);

}  // namespace vkn::sampler::detail
