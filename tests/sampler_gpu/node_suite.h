// NodeSuite: an in-process node started once for a test suite, with a pipeline cache
// directory of its own, stopped (and the directory removed) after the suite. The suite
// fails if the node's device reported validation errors. Suite names the node:
//   class MyTest : public NodeSuite<MyTest> { public: static constexpr std::string_view kNode = "..."; };
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <string_view>

#include "vknode/node/node.h"

namespace vkn::sampler::testing {

template <typename Suite>
class NodeSuite : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = std::filesystem::temp_directory_path() /
           ("vknode-" + std::string(Suite::kNode) + "-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    NodeOptions o;
    o.name = std::string(Suite::kNode);
    o.cache_dir = dir_;
    auto r = start(o);
    ASSERT_TRUE(r.has_value()) << r.error().to_string();
  }
  static void TearDownTestSuite() {
    if (alive(Suite::kNode)) {
      auto s = status(Suite::kNode);
      ASSERT_TRUE(s.has_value());
      EXPECT_EQ(s->validation_errors, 0u) << "validation errors on the node's device";
      (void)stop(Suite::kNode);
    }
    std::filesystem::remove_all(dir_);
  }
  static CallOptions call() {
    CallOptions c;
    c.node = std::string(Suite::kNode);
    return c;
  }
  static inline std::filesystem::path dir_;
};

}  // namespace vkn::sampler::testing
