// The in-process NodeTarget and local_device(): the device facts read through the node and
// read by UUID without a device are the same; a target passed in GpuBackendOptions is used.
#include "vknode/sampler/node_target.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "sampler/test_models.h"
#include "sampler_gpu/node_suite.h"
#include "vknode/sampler/gpu_backend.h"
#include "vknode/sampler/models.h"

namespace vkn::sampler {
namespace {

namespace fs = std::filesystem;

class NodeTargetTest : public testing::NodeSuite<NodeTargetTest> {
 public:
  static constexpr std::string_view kNode = "sampler-target-test";
};

TEST_F(NodeTargetTest, LocalDeviceByUuidMatchesTheNodesDevice) {
  auto target = make_in_process_target(call());
  auto through_node = target->device();
  ASSERT_TRUE(through_node.has_value()) << through_node.error().to_string();
  EXPECT_EQ(through_node->shader_cache_dir, dir_);  // beside the node's pipeline cache
  auto st = status(kNode);
  ASSERT_TRUE(st.has_value());
  auto local = local_device(st->device_uuid);
  ASSERT_TRUE(local.has_value()) << local.error().to_string();
  EXPECT_EQ(local->name, through_node->name);
  EXPECT_EQ(local->name, st->device_name);
  EXPECT_EQ(local->cpu, through_node->cpu);
  EXPECT_EQ(local->float64, through_node->float64);
  EXPECT_EQ(local->max_storage_buffer_range, through_node->max_storage_buffer_range);
  EXPECT_EQ(local->arithmetic_subgroup, through_node->arithmetic_subgroup);
  EXPECT_EQ(local->shared_memory_bytes, through_node->shared_memory_bytes);
  EXPECT_EQ(local->max_workgroup_invocations, through_node->max_workgroup_invocations);
  EXPECT_TRUE(local->shader_cache_dir.empty());
}

TEST_F(NodeTargetTest, UnknownUuidIsNotFound) {
  auto r = local_device("00000000-0000-0000-0000-000000000000");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Errc::not_found);
}

TEST_F(NodeTargetTest, BackendUsesTheTargetItIsGiven) {
  auto model = testing::must(make_normal(3));
  GpuBackendOptions o;
  o.call.node = "no-such-node";  // ignored: the target names the node
  o.target = make_in_process_target(call());
  auto b = GpuLeapfrogBackend::create(*model, o);
  ASSERT_TRUE(b.has_value()) << b.error().to_string();
  std::vector<double> q0{0.1, 0.2, 0.3}, p0{1, 0, -1}, metric{1, 1, 1}, eps{0.1};
  TrajectoryRequest r;
  r.chains = 1;
  r.steps = 2;
  r.q0 = q0;
  r.p0 = p0;
  r.inv_metric = metric;
  r.step_size = eps;
  auto t = (*b)->trajectories(r);
  ASSERT_TRUE(t.has_value()) << t.error().to_string();
  EXPECT_EQ(t->lp.size(), 3u);
  EXPECT_EQ((*b)->stats().programs, 1u);
  // Without the target, the same options name no node.
  o.target = nullptr;
  auto none = GpuLeapfrogBackend::create(*model, o);
  ASSERT_FALSE(none.has_value());
  EXPECT_EQ(none.error().code, Errc::node_dead);
}

}  // namespace
}  // namespace vkn::sampler
