// ShaderCompiler: GLSL to SPIR-V through shaderc, the on-disk cache (hit, corrupt entry,
// unwritable directory) and compile errors with line numbers.
#include "gpu/shader_compiler.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "testing/gpu_fixture.h"

namespace vkn {
namespace {

constexpr std::string_view kShader = R"(#version 450
layout(local_size_x = 64) in;
layout(std430, binding = 0) buffer B { float v[]; };
void main() { v[gl_GlobalInvocationID.x] *= 2.0; }
)";

class ShaderCompilerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("vkn_shaderc_" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  ShaderCompileOptions options() const {
    ShaderCompileOptions o;
    o.cache_dir = dir_;
    return o;
  }
  std::filesystem::path dir_;
};

TEST_F(ShaderCompilerTest, CompilesAndCachesByContent) {
  auto first = compile_compute_shader(kShader, options());
  ASSERT_TRUE(first.has_value()) << first.error().to_string();
  EXPECT_FALSE(first->from_cache);
  ASSERT_GT(first->spirv.size(), 5u);
  EXPECT_EQ(first->spirv[0], 0x07230203u);
  EXPECT_TRUE(std::filesystem::exists(dir_ / "spirv" / (first->cache_key + ".spv")));
  auto second = compile_compute_shader(kShader, options());
  ASSERT_TRUE(second.has_value());
  EXPECT_TRUE(second->from_cache);
  EXPECT_EQ(second->spirv, first->spirv);
  // Other options, other key.
  auto o = options();
  o.optimize = false;
  auto third = compile_compute_shader(kShader, o);
  ASSERT_TRUE(third.has_value());
  EXPECT_NE(third->cache_key, first->cache_key);
  EXPECT_FALSE(third->from_cache);
}

TEST_F(ShaderCompilerTest, CorruptEntryIsRecompiled) {
  auto first = compile_compute_shader(kShader, options());
  ASSERT_TRUE(first.has_value());
  const auto path = dir_ / "spirv" / (first->cache_key + ".spv");
  for (int variant = 0; variant < 3; ++variant) {
    {
      std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
      if (variant == 0) f.seekp(40), f.put('\x5a');              // a flipped payload byte
      if (variant == 1) f.seekp(0), f.put('X');                  // wrong magic
      if (variant == 2) std::filesystem::resize_file(path, 11);  // truncated
    }
    auto again = compile_compute_shader(kShader, options());
    ASSERT_TRUE(again.has_value()) << variant;
    EXPECT_FALSE(again->from_cache) << variant;
    EXPECT_EQ(again->spirv, first->spirv) << variant;
    auto healed = compile_compute_shader(kShader, options());
    ASSERT_TRUE(healed.has_value());
    EXPECT_TRUE(healed->from_cache) << variant;
  }
}

TEST_F(ShaderCompilerTest, ErrorsCarryLineNumbers) {
  const std::string bad =
      "#version 450\nlayout(local_size_x = 1) in;\nvoid main() {\n  float x = "
      "undefined_thing;\n}\n";
  auto o = options();
  o.name = "broken.comp";
  auto r = compile_compute_shader(bad, o);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Errc::invalid_argument);
  EXPECT_NE(r.error().message.find("broken.comp:4"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("undefined_thing"), std::string::npos) << r.error().message;
}

TEST_F(ShaderCompilerTest, UnwritableCacheStillCompiles) {
  std::filesystem::create_directories(dir_);
  std::ofstream(dir_ / "spirv") << "a file where the directory should be";
  auto r = compile_compute_shader(kShader, options());
  ASSERT_TRUE(r.has_value()) << r.error().to_string();
  EXPECT_FALSE(r->from_cache);
}

class ShaderCompilerGpuTest : public testing::GpuTest {};

TEST_F(ShaderCompilerGpuTest, CompiledKernelRuns) {
  auto compiled = compile_compute_shader(kShader, {.use_cache = false});
  ASSERT_TRUE(compiled.has_value());
  auto kernel = kernels_->get_or_create(compiled->spirv, {}, "doubler");
  ASSERT_TRUE(kernel.has_value()) << kernel.error().to_string();
  std::vector<float> v(64);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i);
  Buffer b = make_buffer(v);
  const std::vector<BufferBinding> bindings = {{0, &b}};
  VKN_ASSERT_OK(stream_->record_dispatch(**kernel, bindings, {}, {1, 1, 1}));
  VKN_ASSERT_OK(stream_->submit_and_wait(testing::kWait));
  const auto out = read_buffer<float>(b, v.size());
  for (size_t i = 0; i < v.size(); ++i) EXPECT_EQ(out[i], 2.0f * v[i]);
}

}  // namespace
}  // namespace vkn
