// Test helpers around a model's GLSL: a compute shader that evaluates vkn_log_density for one
// point per invocation, and glslc run on it through std::system.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "vknode/sampler/model.h"

namespace vkn::sampler::testing {

// Layout: binding 0 holds, per invocation, q[0..d) on input and grad[0..d), lp on output
// (stride d + 1), in the model's precision. `count` is a push constant.
inline std::string glsl_harness(const Model& model, Precision p) {
  const std::string real = p == Precision::f64 ? "double" : "float";
  std::string s = "#version 450\nlayout(local_size_x = 64) in;\n";
  s += "layout(std430, set = 0, binding = 0) buffer Io { " + real + " io[]; };\n";
  s += "layout(push_constant) uniform Push { uint count; } pc;\n";
  s += model.glsl({p});
  s += "void main() {\n  uint c = gl_GlobalInvocationID.x;\n  if (c >= pc.count) return;\n";
  s += "  uint base = c * uint(VKN_DIM + 1);\n";
  s += "  " + real + " q[VKN_DIM];\n  " + real + " g[VKN_DIM];\n";
  s += "  for (int i = 0; i < VKN_DIM; ++i) q[i] = io[base + uint(i)];\n";
  s += "  " + real + " lp = vkn_log_density(q, g);\n";
  s += "  for (int i = 0; i < VKN_DIM; ++i) io[base + uint(i)] = g[i];\n";
  s += "  io[base + uint(VKN_DIM)] = lp;\n}\n";
  return s;
}

inline bool have_glslc() { return std::system("glslc --version > /dev/null 2>&1") == 0; }

// A fresh path in the temp directory (unique per process and call).
inline std::filesystem::path temp_path(std::string_view stem, std::string_view ext) {
  static std::atomic<int> counter{0};
  return std::filesystem::temp_directory_path() /
         (std::string(stem) + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter++) + std::string(ext));
}

struct GlslcResult {
  bool ok = false;
  std::string log;
  std::vector<uint32_t> spirv;
};

// Compiles compute-shader source with glslc (Vulkan 1.2 target).
inline GlslcResult run_glslc(const std::string& source) {
  const auto src = temp_path("vkn_sampler", ".comp"), spv = temp_path("vkn_sampler", ".spv"),
             log = temp_path("vkn_sampler", ".log");
  std::ofstream(src) << source;
  const std::string cmd = "glslc --target-env=vulkan1.2 -O -o '" + spv.string() + "' '" + src.string() + "' > '" +
                          log.string() + "' 2>&1";
  GlslcResult r;
  r.ok = std::system(cmd.c_str()) == 0;
  {
    std::ifstream in(log);
    r.log.assign(std::istreambuf_iterator<char>(in), {});
  }
  if (r.ok) {
    std::ifstream in(spv, std::ios::binary);
    std::vector<char> bytes(std::istreambuf_iterator<char>(in), {});
    r.spirv.resize(bytes.size() / 4);
    std::memcpy(r.spirv.data(), bytes.data(), r.spirv.size() * 4);
  }
  std::error_code ec;
  std::filesystem::remove(src, ec);
  std::filesystem::remove(spv, ec);
  std::filesystem::remove(log, ec);
  return r;
}

}  // namespace vkn::sampler::testing
