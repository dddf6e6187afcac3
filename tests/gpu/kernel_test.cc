#include "vknode/gpu/kernel.h"

#include <gtest/gtest.h>

#include "gpu/shader_compiler.h"
#include "testing/gpu_fixture.h"
#include "vknode/gpu/builtin_kernels.h"
#include "vknode/gpu/device.h"
#include "vknode/gpu/stream.h"

namespace vkn {
namespace {

using testing::kWait;

class KernelTest : public testing::GpuTest {};

TEST_F(KernelTest, ReflectsTheAxpyLayout) {
  VKN_ASSERT_OK_AND_ASSIGN(k, Kernel::create(*device_, nullptr, builtin_spirv(BuiltinKernel::axpy_f32)));
  ASSERT_EQ(k->layout().bindings.size(), 2u);
  EXPECT_TRUE(k->layout().bindings[0].read_only);
  EXPECT_FALSE(k->layout().bindings[1].read_only);
  EXPECT_EQ(k->layout().push_constant_bytes, sizeof(AxpyPush));
  EXPECT_EQ(k->layout().local_size[0], kBuiltinWorkgroupSize);
  EXPECT_NE(k->pipeline(), VK_NULL_HANDLE);
}

TEST_F(KernelTest, InvalidSpirvIsRejectedBeforeTheDriver) {
  std::vector<uint32_t> junk = {0x07230203, 0x00010000, 0, 5, 0, 0xFFFFFFFF, 0x12345678};
  auto k = Kernel::create(*device_, nullptr, junk);
  ASSERT_FALSE(k.has_value());
  EXPECT_EQ(k.error().code, Errc::invalid_spirv);
  auto empty = Kernel::create(*device_, nullptr, std::span<const uint32_t>{});
  ASSERT_FALSE(empty.has_value());
  EXPECT_EQ(empty.error().code, Errc::invalid_spirv);
}

TEST_F(KernelTest, DispatchChecksCatchEveryMismatch) {
  VKN_ASSERT_OK_AND_ASSIGN(k, kernels_->get_or_create(builtin_spirv(BuiltinKernel::axpy_f32)));
  VKN_ASSERT_OK_AND_ASSIGN(x, Buffer::create(*device_, 1024));
  VKN_ASSERT_OK_AND_ASSIGN(y, Buffer::create(*device_, 1024));
  const AxpyPush push{256, 2.0f};
  const auto p = push_of(push);
  const BufferBinding good[] = {{0, &x}, {1, &y}};
  EXPECT_TRUE(k->check_dispatch(good, p, {1, 1, 1}).has_value());
  const BufferBinding missing[] = {{0, &x}};
  const BufferBinding extra[] = {{0, &x}, {1, &y}, {2, &y}};
  const BufferBinding twice[] = {{0, &x}, {0, &y}};
  const BufferBinding undeclared[] = {{0, &x}, {5, &y}};
  const BufferBinding null_buffer[] = {{0, &x}, {1, nullptr}};
  const BufferBinding out_of_range[] = {{0, &x}, {1, &y, 512, 1024}};
  // Off by half the device's storage-buffer offset alignment (or by 1 byte past the end when it is 1).
  const uint64_t align = device_->info().min_storage_buffer_offset_alignment;
  const BufferBinding misaligned[] = {{0, &x, align > 1 ? align / 2 : 1023, 2}, {1, &y}};
  for (auto bindings : {std::span<const BufferBinding>(missing), std::span<const BufferBinding>(extra),
                        std::span<const BufferBinding>(twice), std::span<const BufferBinding>(undeclared),
                        std::span<const BufferBinding>(null_buffer), std::span<const BufferBinding>(out_of_range),
                        std::span<const BufferBinding>(misaligned)}) {
    auto r = k->check_dispatch(bindings, p, {1, 1, 1});
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().code, Errc::invalid_argument);
  }
  EXPECT_EQ(k->check_dispatch(good, p.first(4), {1, 1, 1}).error().code, Errc::invalid_argument);
  const uint32_t too_many = device_->info().max_workgroup_count[0] + 1u;
  if (too_many != 0) {
    EXPECT_EQ(k->check_dispatch(good, p, {too_many, 1, 1}).error().code, Errc::invalid_argument);
  }
  EXPECT_EQ(stream_->record_dispatch(*k, missing, p, {1, 1, 1}).error().code, Errc::invalid_argument);
  EXPECT_FALSE(stream_->has_open_batch());
}

TEST_F(KernelTest, CacheReturnsOneKernelPerContentAndSpecialization) {
  VKN_ASSERT_OK_AND_ASSIGN(a, kernels_->get_or_create(builtin_spirv(BuiltinKernel::fill_u32)));
  VKN_ASSERT_OK_AND_ASSIGN(b, kernels_->get_or_create(builtin_spirv(BuiltinKernel::fill_u32)));
  EXPECT_EQ(a.get(), b.get());
  EXPECT_EQ(kernels_->size(), 1u);
  EXPECT_EQ(kernels_->find(a->id()).get(), a.get());
  const SpecConstant spec[] = {{7, 1}};
  EXPECT_NE(kernel_id(builtin_spirv(BuiltinKernel::fill_u32), spec), a->id());
  EXPECT_TRUE(kernels_->erase(a->id()));
  EXPECT_EQ(kernels_->find(a->id()), nullptr);
}

TEST_F(KernelTest, OrdinaryKernelsShareTheDevicesPipelineLayout) {
  ASSERT_NE(device_->shared_pipeline_layout(), VK_NULL_HANDLE);
  VKN_ASSERT_OK_AND_ASSIGN(axpy, Kernel::create(*device_, nullptr, builtin_spirv(BuiltinKernel::axpy_f32)));
  VKN_ASSERT_OK_AND_ASSIGN(fill, Kernel::create(*device_, nullptr, builtin_spirv(BuiltinKernel::fill_u32)));
  EXPECT_EQ(axpy->pipeline_layout(), device_->shared_pipeline_layout());
  EXPECT_EQ(fill->pipeline_layout(), device_->shared_pipeline_layout());
  EXPECT_LT(axpy->creation_times().layout_us, 1000.0);
}

// A binding beyond the shared layout's range gets a layout of its own, and dispatches
// through it write the right buffer (with the validation layer watching in ctest).
TEST_F(KernelTest, ABindingBeyondTheSharedRangeGetsItsOwnLayout) {
  const uint32_t high = Device::kSharedLayoutBindings + 3;
  const std::string source = R"(#version 450
layout(local_size_x = 64) in;
layout(std430, set = 0, binding = 1) readonly buffer In { uint inv[]; };
layout(std430, set = 0, binding = )" + std::to_string(high) + R"() buffer Out { uint outv[]; };
layout(push_constant) uniform Push { uint count; uint add; } pc;
void main() {
  uint i = gl_GlobalInvocationID.x;
  if (i < pc.count) outv[i] = inv[i] + pc.add;
}
)";
  ShaderCompileOptions options;
  options.use_cache = false;
  VKN_ASSERT_OK_AND_ASSIGN(compiled, compile_compute_shader(source, options));
  VKN_ASSERT_OK_AND_ASSIGN(k, Kernel::create(*device_, nullptr, compiled.spirv));
  EXPECT_NE(k->pipeline_layout(), VK_NULL_HANDLE);
  EXPECT_NE(k->pipeline_layout(), device_->shared_pipeline_layout());

  std::vector<uint32_t> in(100);
  for (uint32_t i = 0; i < in.size(); ++i) in[i] = 3 * i;
  Buffer src = make_buffer(in);
  Buffer dst = make_buffer(std::vector<uint32_t>(in.size(), 0xDEADBEEF));
  const uint32_t push[2] = {static_cast<uint32_t>(in.size()), 7};
  const BufferBinding b[] = {{1, &src}, {high, &dst}};
  ASSERT_TRUE(stream_->record_dispatch(*k, b, std::as_bytes(std::span(push)), {2, 1, 1}).has_value());
  ASSERT_TRUE(stream_->submit_and_wait(kWait).has_value());
  const auto out = read_buffer<uint32_t>(dst, in.size());
  for (uint32_t i = 0; i < in.size(); ++i) ASSERT_EQ(out[i], 3 * i + 7) << "at " << i;
}

TEST_F(KernelTest, KernelIdHexRoundTrips) {
  const KernelId id = kernel_id(builtin_spirv(BuiltinKernel::copy_u32));
  const std::string hex = to_hex(id);
  ASSERT_EQ(hex.size(), 64u);
  VKN_ASSERT_OK_AND_ASSIGN(back, kernel_id_from_hex(hex));
  EXPECT_EQ(back, id);
  EXPECT_EQ(kernel_id_from_hex("xyz").error().code, Errc::invalid_argument);
  EXPECT_EQ(kernel_id_from_hex(std::string(64, 'g')).error().code, Errc::invalid_argument);
}

}  // namespace
}  // namespace vkn
