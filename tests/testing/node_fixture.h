// NodeFixture: a node per test, named after the test, with a pipeline cache directory of
// its own; the test fails if the node's device reported validation errors. Header-only, for
// test executables that link vknode_node.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "vknode/gpu/builtin_kernels.h"
#include "vknode/node/node.h"

namespace vkn::testing {

class NodeFixture : public ::testing::Test {
 protected:
  // `prefix` starts the node's name and the cache directory's ("test-", "rel-", ...).
  explicit NodeFixture(std::string prefix) : prefix_(std::move(prefix)) {}

  void SetUp() override {
    std::string tmpl = "/tmp/vknode-" + prefix_ + "XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    name_ = prefix_ + ::testing::UnitTest::GetInstance()->current_test_info()->name();
    call_.node = name_;
  }
  void TearDown() override {
    if (alive(name_)) {
      auto s = status(name_);
      ASSERT_TRUE(s.has_value());
      EXPECT_EQ(s->validation_errors, 0u) << "validation errors on the node's device";
      (void)stop(name_);
    }
    std::filesystem::remove_all(dir_);
  }
  NodeOptions options() {
    NodeOptions o;
    o.name = name_;
    o.cache_dir = dir_;
    o.hang_limit = std::chrono::seconds(5);
    o.restart_backoff = std::chrono::milliseconds(10);
    return o;
  }
  void start_node(const NodeOptions& o) {
    auto r = start(o);
    ASSERT_TRUE(r.has_value()) << r.error().to_string();
  }
  template <typename T>
  static std::vector<std::byte> push_bytes(const T& p) {
    auto b = std::as_bytes(std::span(&p, 1));
    return {b.begin(), b.end()};
  }
  // A spin dispatch on buffer "spin_out" (64 x 16 words) that runs for about `iterations`
  // of the kernel's loop.
  static Program spin_program(uint32_t iterations) {
    Program p;
    p.dispatch(builtin_kernel_id(BuiltinKernel::spin), {{0, "spin_out"}}, push_bytes(SpinPush{iterations, 64 * 16}),
               {16, 1, 1});
    return p;
  }

  std::string prefix_;
  std::filesystem::path dir_;
  std::string name_;
  CallOptions call_;
};

}  // namespace vkn::testing
