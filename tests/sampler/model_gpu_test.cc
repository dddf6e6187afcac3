// GPU vs CPU: every model's GLSL, compiled with glslc and run on the test device (lavapipe in
// CI), gives the CPU's log density and gradient at random points: to about 1e-5 relative in
// f32 and 1e-10 in f64. The sampler library itself does not depend on the GPU layer; only this
// test does.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "sampler/glsl_harness.h"
#include "sampler/test_models.h"
#include "testing/gpu_fixture.h"
#include "vknode/sampler/expr.h"

namespace vkn::sampler {
namespace {

class ModelGpuTest : public vkn::testing::GpuTest {
 protected:
  template <typename Real>
  void check(const std::string& label, const Model& model, Precision p, double tol) {
    constexpr uint32_t kPoints = 96;
    const size_t d = model.dimension(), stride = d + 1;
    std::mt19937_64 rng(1234);
    std::uniform_real_distribution<double> u(-1.5, 1.5);
    std::vector<Real> io(kPoints * stride);
    for (auto& x : io) x = static_cast<Real>(static_cast<float>(u(rng)));
    const auto compiled = testing::run_glslc(testing::glsl_harness(model, p));
    ASSERT_TRUE(compiled.ok) << label << ":\n" << compiled.log;
    auto kernel = kernels_->get_or_create(compiled.spirv, {}, label);
    ASSERT_TRUE(kernel.has_value()) << label << ": " << kernel.error().to_string();
    Buffer buffer = make_buffer(io);
    std::vector<Buffer> data;
    std::vector<BufferBinding> bindings = {{0, &buffer}};
    for (const auto& db : model.data_buffers()) data.push_back(make_buffer(db.values));
    const auto buffers = model.data_buffers();
    for (size_t i = 0; i < data.size(); ++i) bindings.push_back({buffers[i].binding, &data[i]});
    const uint32_t count = kPoints;
    VKN_ASSERT_OK(stream_->record_dispatch(**kernel, bindings, push_of(count), {(kPoints + 63) / 64, 1, 1}));
    VKN_ASSERT_OK(stream_->submit_and_wait(vkn::testing::kWait));
    const auto out = read_buffer<Real>(buffer, io.size());
    for (uint32_t c = 0; c < kPoints; ++c) {
      std::vector<double> q(d), g(d);
      for (size_t i = 0; i < d; ++i) q[i] = static_cast<double>(io[c * stride + i]);
      const double lp = model.log_density(q, g);
      double scale = 1.0;
      for (double x : g) scale = std::max(scale, std::abs(x));
      EXPECT_NEAR(out[c * stride + d], lp, tol * std::max(1.0, std::abs(lp))) << label << " point " << c;
      for (size_t i = 0; i < d; ++i) {
        EXPECT_NEAR(out[c * stride + i], g[i], tol * scale) << label << " point " << c << " grad " << i;
      }
    }
  }

  static std::vector<testing::NamedModel> models() {
    auto all = testing::all_builtin_models();
    ParseOptions o;
    o.data["y"] = {1.0, 2.0, 3.0};
    o.dimension = 3;
    for (const char* text : {"-0.5*q0^2 - log(1+exp(q1)) - q2^2",
                             "lgamma(2 + q0^2) + pow(1.5 + q1^2, q2) + tanh(q0) * sin(q1) / (2 + cos(q2)) - sum(q)^2",
                             "-(y[0] - q0)^2 - (y[2] - q2)^2 + log1p_exp(q1) - logistic(q0) + sqrt(1 + q1^2)"}) {
      all.push_back({text, std::shared_ptr<Model>(std::move(*ExprModel::parse(text, o)))});
    }
    return all;
  }
};

TEST_F(ModelGpuTest, F32MatchesTheCpu) {
  if (!testing::have_glslc()) GTEST_SKIP() << "glslc is not on PATH";
  for (const auto& [label, model] : models()) check<float>(label, *model, Precision::f32, 2e-5);
}

TEST_F(ModelGpuTest, F64MatchesTheCpu) {
  if (!testing::have_glslc()) GTEST_SKIP() << "glslc is not on PATH";
  if (!device_->info().has_float64) GTEST_SKIP() << "device lacks shaderFloat64";
  for (const auto& [label, model] : models()) check<double>(label, *model, Precision::f64, 1e-10);
}

}  // namespace
}  // namespace vkn::sampler
