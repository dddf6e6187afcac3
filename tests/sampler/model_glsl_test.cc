// Every model's GLSL, in both precisions, compiles with glslc inside a compute shader.
#include <gtest/gtest.h>

#include "sampler/glsl_harness.h"
#include "sampler/test_models.h"
#include "vknode/sampler/expr.h"

namespace vkn::sampler {
namespace {

std::vector<testing::NamedModel> glsl_models() {
  auto models = testing::all_builtin_models();
  ParseOptions o;
  o.data["y"] = {1.0, 2.0, 3.0};
  o.dimension = 3;
  for (const char* text : {"-0.5*q0^2 - log(1+exp(q1))",
                           "lgamma(2 + q0^2) + pow(1.5 + q1^2, q2) + tanh(q0) * sin(q1) / (2 + cos(q2)) - sum(q)^2",
                           "-(y[0] - q0)^2 - (y[2] - q2)^2 + log1p_exp(q1) - logistic(q0) + sqrt(1 + q1^2)"}) {
    auto m = ExprModel::parse(text, o);
    EXPECT_TRUE(m.has_value()) << m.error().to_string();
    if (m) models.push_back({text, std::shared_ptr<Model>(std::move(*m))});
  }
  return models;
}

TEST(ModelGlslTest, EveryModelCompilesInBothPrecisions) {
  if (!testing::have_glslc()) GTEST_SKIP() << "glslc is not on PATH";
  for (const auto& [label, model] : glsl_models()) {
    for (Precision p : {Precision::f32, Precision::f64}) {
      const std::string source = testing::glsl_harness(*model, p);
      const auto r = testing::run_glslc(source);
      EXPECT_TRUE(r.ok) << label << (p == Precision::f64 ? " f64" : " f32") << ":\n" << r.log << "\n" << source;
      EXPECT_GT(r.spirv.size(), 5u);
    }
  }
}

TEST(ModelGlslTest, DataBlocksFollowTheOptions) {
  auto model = testing::must(make_eight_schools());
  GlslOptions o;
  o.data_set = 1;
  o.data_binding_base = 3;
  const std::string s = model->glsl(o);
  EXPECT_NE(s.find("layout(std430, set = 1, binding = 3) readonly buffer VknData_y { float vkn_y[]; };"),
            std::string::npos);
  EXPECT_NE(s.find("binding = 4) readonly buffer VknData_sigma"), std::string::npos);
  EXPECT_NE(s.find("const int VKN_DIM = 10;"), std::string::npos);
  EXPECT_EQ(s.find("double"), std::string::npos);
  EXPECT_NE(model->glsl({Precision::f64}).find("double vkn_log_density"), std::string::npos);
}

TEST(ModelGlslTest, BrokenSourceFailsToCompile) {
  if (!testing::have_glslc()) GTEST_SKIP() << "glslc is not on PATH";
  const auto r = testing::run_glslc("#version 450\nlayout(local_size_x = 1) in;\nvoid main() { undefined(); }\n");
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.log.find("undefined"), std::string::npos);
}

}  // namespace
}  // namespace vkn::sampler
