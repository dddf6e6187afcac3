#include "gpu/spirv_intake.h"

#include <array>
#include <bit>
#include <cstdint>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <gtest/gtest.h>
#include <spirv-tools/libspirv.h>

#include "vknode_test_shaders/intake_aliased_spv.h"
#include "vknode_test_shaders/intake_buffer_array_spv.h"
#include "vknode_test_shaders/intake_image_spv.h"
#include "vknode_test_shaders/intake_saxpy_spv.h"
#include "vknode_test_shaders/intake_set1_spv.h"
#include "vknode_test_shaders/intake_spec_local_size_spv.h"
#include "vknode_test_shaders/intake_uniform_spv.h"

namespace vkn {
namespace {

constexpr uint32_t kOpEntryPoint = 15;
constexpr uint32_t kExecutionModelVertex = 0;

std::vector<uint32_t> copy_of(std::span<const uint32_t> words) {
  return {words.begin(), words.end()};
}

template <typename H, void (*Destroy)(H)>
struct Deleter {
  void operator()(H handle) const { Destroy(handle); }
};
template <typename H, void (*Destroy)(H)>
using Owned = std::unique_ptr<std::remove_pointer_t<H>, Deleter<H, Destroy>>;

// Assembles SPIR-V for modules glslc cannot produce (several entry points, LocalSizeId, ...).
// The target environment picks the SPIR-V version written into the header.
std::vector<uint32_t> assemble(std::string_view text, spv_target_env env = SPV_ENV_VULKAN_1_3) {
  const Owned<spv_context, spvContextDestroy> context(spvContextCreate(env));
  spv_binary raw_binary = nullptr;
  spv_diagnostic raw_diagnostic = nullptr;
  const spv_result_t result =
      spvTextToBinary(context.get(), text.data(), text.size(), &raw_binary, &raw_diagnostic);
  const Owned<spv_binary, spvBinaryDestroy> binary(raw_binary);
  const Owned<spv_diagnostic, spvDiagnosticDestroy> diagnostic(raw_diagnostic);
  if (result != SPV_SUCCESS) {
    ADD_FAILURE() << "assembly failed: " << (diagnostic ? diagnostic->error : "?");
    return {};
  }
  return {binary->code, binary->code + binary->wordCount};
}

// A compute module whose `main` does nothing. `modes` holds execution modes and decorations,
// `types` the types and constants declared after the void function type.
std::string compute_module(std::string_view modes, std::string_view types = "",
                           std::string_view capabilities = "") {
  return std::string("OpCapability Shader\n") + std::string(capabilities) +
         "OpMemoryModel Logical GLSL450\n"
         "OpEntryPoint GLCompute %main \"main\"\n" +
         std::string(modes) +
         "%void = OpTypeVoid\n"
         "%fn = OpTypeFunction %void\n" +
         std::string(types) +
         "%main = OpFunction %void None %fn\n"
         "%entry = OpLabel\n"
         "OpReturn\n"
         "OpFunctionEnd\n";
}

// Word index of the first instruction with `opcode`, or 0 when there is none.
size_t find_instruction(std::span<const uint32_t> words, uint32_t opcode) {
  for (size_t i = 5; i < words.size();) {
    const uint32_t word_count = words[i] >> 16;
    if ((words[i] & 0xffffu) == opcode) return i;
    if (word_count == 0) break;
    i += word_count;
  }
  return 0;
}

::testing::AssertionResult fails_with(const Result<KernelLayout>& result, Errc code) {
  if (result) return ::testing::AssertionFailure() << "succeeded, expected " << to_string(code);
  if (result.error().code != code) {
    return ::testing::AssertionFailure()
           << "failed with " << result.error().to_string() << ", expected " << to_string(code);
  }
  if (result.error().message.empty()) return ::testing::AssertionFailure() << "empty message";
  return ::testing::AssertionSuccess();
}

TEST(SpirvIntakeTest, ReflectsBindingsPushConstantsAndLocalSize) {
  const auto layout = inspect_spirv(kIntakeSaxpySpv);
  ASSERT_TRUE(layout) << layout.error().to_string();
  EXPECT_EQ(layout->entry_point, "main");
  ASSERT_EQ(layout->bindings.size(), 3u);
  for (uint32_t i = 0; i < 3; ++i) {
    EXPECT_EQ(layout->bindings[i].binding, i);  // sorted, though declared 2, 0, 1
    EXPECT_FALSE(layout->bindings[i].name.empty());
  }
  EXPECT_TRUE(layout->bindings[0].read_only);
  EXPECT_FALSE(layout->bindings[1].read_only);
  EXPECT_FALSE(layout->bindings[2].read_only);
  EXPECT_EQ(layout->push_constant_bytes, 8u);  // {uint n; float a;}
  EXPECT_EQ(layout->local_size, (std::array<uint32_t, 3>{64, 1, 1}));
  EXPECT_TRUE(layout->spec_constants.empty());
}

TEST(SpirvIntakeTest, KernelWithoutPushConstantsReportsZeroBytes) {
  const auto layout = inspect_spirv(kIntakeSpecLocalSizeSpv);
  ASSERT_TRUE(layout) << layout.error().to_string();
  EXPECT_EQ(layout->push_constant_bytes, 0u);
  ASSERT_EQ(layout->bindings.size(), 1u);
  EXPECT_FALSE(layout->bindings[0].read_only);
}

TEST(SpirvIntakeTest, SpecConstantLocalSizeUsesDefaultWithoutValue) {
  const auto layout = inspect_spirv(kIntakeSpecLocalSizeSpv);
  ASSERT_TRUE(layout) << layout.error().to_string();
  EXPECT_EQ(layout->local_size, (std::array<uint32_t, 3>{32, 2, 1}));
}

TEST(SpirvIntakeTest, SpecConstantValueAppliedToLocalSize) {
  const SpecConstant spec[] = {{0, 128}};
  const auto layout = inspect_spirv(kIntakeSpecLocalSizeSpv, spec);
  ASSERT_TRUE(layout) << layout.error().to_string();
  EXPECT_EQ(layout->local_size, (std::array<uint32_t, 3>{128, 2, 1}));
}

TEST(SpirvIntakeTest, SpecValueForOtherIdLeavesLocalSizeAlone) {
  const SpecConstant spec[] = {{1, 9}, {3, 0}};
  const auto layout = inspect_spirv(kIntakeSpecLocalSizeSpv, spec);
  ASSERT_TRUE(layout) << layout.error().to_string();
  EXPECT_EQ(layout->local_size, (std::array<uint32_t, 3>{32, 2, 1}));
}

TEST(SpirvIntakeTest, ListsSpecConstantDefaultsSortedById) {
  const SpecConstant spec[] = {{2, 7}};  // values given do not change the listed defaults
  const auto layout = inspect_spirv(kIntakeSpecLocalSizeSpv, spec);
  ASSERT_TRUE(layout) << layout.error().to_string();
  const auto& constants = layout->spec_constants;
  ASSERT_EQ(constants.size(), 4u);
  const uint32_t expected[] = {32, 4, std::bit_cast<uint32_t>(1.5f), 1};
  for (uint32_t i = 0; i < 4; ++i) {
    EXPECT_EQ(constants[i].id, i);
    EXPECT_EQ(constants[i].default_value, expected[i]) << "spec id " << i;
  }
}

TEST(SpirvIntakeTest, UnknownSpecIdIsInvalidArgument) {
  const SpecConstant spec[] = {{0, 64}, {7, 1}};
  const auto layout = inspect_spirv(kIntakeSpecLocalSizeSpv, spec);
  ASSERT_TRUE(fails_with(layout, Errc::invalid_argument));
  EXPECT_NE(layout.error().message.find('7'), std::string::npos) << layout.error().message;
}

TEST(SpirvIntakeTest, SpecIdForKernelWithoutSpecConstantsIsInvalidArgument) {
  const SpecConstant spec[] = {{0, 64}};
  EXPECT_TRUE(fails_with(inspect_spirv(kIntakeSaxpySpv, spec), Errc::invalid_argument));
}

TEST(SpirvIntakeTest, DuplicateSpecIdIsInvalidArgument) {
  const SpecConstant spec[] = {{1, 2}, {0, 64}, {1, 3}};
  const auto layout = inspect_spirv(kIntakeSpecLocalSizeSpv, spec);
  ASSERT_TRUE(fails_with(layout, Errc::invalid_argument));
  EXPECT_NE(layout.error().message.find("twice"), std::string::npos) << layout.error().message;
}

TEST(SpirvIntakeTest, SpecValueOfZeroLocalSizeIsInvalidSpirv) {
  const SpecConstant spec[] = {{0, 0}};
  EXPECT_TRUE(fails_with(inspect_spirv(kIntakeSpecLocalSizeSpv, spec), Errc::invalid_spirv));
}

TEST(SpirvIntakeTest, LocalSizeIdSpecConstantApplied) {
  const auto words = assemble(
      compute_module("OpExecutionModeId %main LocalSizeId %x %one %two\nOpDecorate %x SpecId 7\n",
                     "%uint = OpTypeInt 32 0\n%x = OpSpecConstant %uint 16\n"
                     "%one = OpConstant %uint 1\n%two = OpConstant %uint 2\n"));
  const auto by_default = inspect_spirv(words);
  ASSERT_TRUE(by_default) << by_default.error().to_string();
  EXPECT_EQ(by_default->local_size, (std::array<uint32_t, 3>{16, 1, 2}));
  ASSERT_EQ(by_default->spec_constants.size(), 1u);
  EXPECT_EQ(by_default->spec_constants[0].id, 7u);
  EXPECT_EQ(by_default->spec_constants[0].default_value, 16u);

  const SpecConstant spec[] = {{7, 256}};
  const auto specialized = inspect_spirv(words, spec);
  ASSERT_TRUE(specialized) << specialized.error().to_string();
  EXPECT_EQ(specialized->local_size, (std::array<uint32_t, 3>{256, 1, 2}));
}

TEST(SpirvIntakeTest, AcceptsSpirv10Module) {
  const auto words =
      assemble(compute_module("OpExecutionMode %main LocalSize 4 4 1\n"), SPV_ENV_UNIVERSAL_1_0);
  ASSERT_GT(words.size(), 1u);
  EXPECT_EQ(words[1], 0x00010000u);  // SPIR-V 1.0
  const auto layout = inspect_spirv(words);
  ASSERT_TRUE(layout) << layout.error().to_string();
  EXPECT_EQ(layout->local_size, (std::array<uint32_t, 3>{4, 4, 1}));
  EXPECT_TRUE(layout->bindings.empty());
}

TEST(SpirvIntakeTest, ZeroLocalSizeIsInvalidSpirv) {
  const auto words = assemble(compute_module("OpExecutionMode %main LocalSize 0 1 1\n"));
  EXPECT_TRUE(fails_with(inspect_spirv(words), Errc::invalid_spirv));
}

TEST(SpirvIntakeTest, SixtyFourBitSpecConstantIsUnsupported) {
  const auto words = assemble(compute_module(
      "OpExecutionMode %main LocalSize 1 1 1\nOpDecorate %big SpecId 4\n",
      "%ulong = OpTypeInt 64 0\n%big = OpSpecConstant %ulong 5\n", "OpCapability Int64\n"));
  const auto layout = inspect_spirv(words);
  ASSERT_TRUE(fails_with(layout, Errc::unsupported));
  EXPECT_NE(layout.error().message.find("64-bit"), std::string::npos) << layout.error().message;
}

TEST(SpirvIntakeTest, SeveralEntryPointsAreInvalidSpirv) {
  const auto words = assemble(
      "OpCapability Shader\nOpMemoryModel Logical GLSL450\n"
      "OpEntryPoint GLCompute %a \"a\"\nOpEntryPoint GLCompute %b \"b\"\n"
      "OpExecutionMode %a LocalSize 1 1 1\nOpExecutionMode %b LocalSize 1 1 1\n"
      "%void = OpTypeVoid\n%fn = OpTypeFunction %void\n"
      "%a = OpFunction %void None %fn\n%la = OpLabel\nOpReturn\nOpFunctionEnd\n"
      "%b = OpFunction %void None %fn\n%lb = OpLabel\nOpReturn\nOpFunctionEnd\n");
  const auto layout = inspect_spirv(words);
  ASSERT_TRUE(fails_with(layout, Errc::invalid_spirv));
  EXPECT_NE(layout.error().message.find("exactly one entry point"), std::string::npos)
      << layout.error().message;
}

TEST(SpirvIntakeTest, VertexEntryPointIsRejected) {
  auto words = copy_of(kIntakeSaxpySpv);
  const size_t entry = find_instruction(words, kOpEntryPoint);
  ASSERT_NE(entry, 0u);
  words[entry + 1] = kExecutionModelVertex;
  EXPECT_TRUE(fails_with(inspect_spirv(words), Errc::invalid_spirv));
}

TEST(SpirvIntakeTest, ValidatorMessageNamesFailingInstruction) {
  // Storing to a constant: the validator rejects it and quotes the OpStore.
  const auto words = assemble(
      "OpCapability Shader\nOpMemoryModel Logical GLSL450\n"
      "OpEntryPoint GLCompute %main \"main\"\nOpExecutionMode %main LocalSize 1 1 1\n"
      "%void = OpTypeVoid\n%fn = OpTypeFunction %void\n%uint = OpTypeInt 32 0\n"
      "%c = OpConstant %uint 3\n"
      "%main = OpFunction %void None %fn\n%entry = OpLabel\nOpStore %c %c\nOpReturn\n"
      "OpFunctionEnd\n");
  const auto layout = inspect_spirv(words);
  ASSERT_TRUE(fails_with(layout, Errc::invalid_spirv));
  EXPECT_NE(layout.error().message.find("OpStore"), std::string::npos) << layout.error().message;
}

TEST(SpirvIntakeTest, EmptyInputIsInvalidSpirv) {
  EXPECT_TRUE(fails_with(inspect_spirv({}), Errc::invalid_spirv));
}

TEST(SpirvIntakeTest, InputShorterThanHeaderIsInvalidSpirv) {
  const uint32_t words[] = {kSpirvMagic, 0x00010500, 0};
  EXPECT_TRUE(fails_with(inspect_spirv(words), Errc::invalid_spirv));
}

TEST(SpirvIntakeTest, GarbageIsInvalidSpirv) {
  std::mt19937 rng(7);
  std::vector<uint32_t> words(64);
  for (uint32_t& w : words) w = rng();
  EXPECT_TRUE(fails_with(inspect_spirv(words), Errc::invalid_spirv));
  words[0] = kSpirvMagic;  // a plausible header over garbage
  words[1] = 0x00010500;
  EXPECT_TRUE(fails_with(inspect_spirv(words), Errc::invalid_spirv));
}

TEST(SpirvIntakeTest, WrongMagicIsInvalidSpirv) {
  auto words = copy_of(kIntakeSaxpySpv);
  words[0] = std::byteswap(kSpirvMagic);
  const auto layout = inspect_spirv(words);
  ASSERT_TRUE(fails_with(layout, Errc::invalid_spirv));
  EXPECT_NE(layout.error().message.find("magic"), std::string::npos) << layout.error().message;
}

TEST(SpirvIntakeTest, TruncatedModuleIsInvalidSpirv) {
  const std::span<const uint32_t> whole(kIntakeSaxpySpv);
  EXPECT_TRUE(fails_with(inspect_spirv(whole.first(whole.size() / 2)), Errc::invalid_spirv));
  EXPECT_TRUE(fails_with(inspect_spirv(whole.first(whole.size() - 1)), Errc::invalid_spirv));
}

TEST(SpirvIntakeTest, ModuleOverSizeLimitIsInvalidSpirv) {
  auto words = copy_of(kIntakeSaxpySpv);
  words.resize(kMaxSpirvWords + 1, 0);
  const auto layout = inspect_spirv(words);
  ASSERT_TRUE(fails_with(layout, Errc::invalid_spirv));
  EXPECT_NE(layout.error().message.find("4 MiB"), std::string::npos) << layout.error().message;
}

TEST(SpirvIntakeTest, UniformBufferIsUnsupported) {
  const auto layout = inspect_spirv(kIntakeUniformSpv);
  ASSERT_TRUE(fails_with(layout, Errc::unsupported));
  EXPECT_NE(layout.error().message.find("uniform buffer"), std::string::npos)
      << layout.error().message;
  EXPECT_NE(layout.error().message.find("binding 0"), std::string::npos) << layout.error().message;
}

TEST(SpirvIntakeTest, StorageImageIsUnsupported) {
  EXPECT_TRUE(fails_with(inspect_spirv(kIntakeImageSpv), Errc::unsupported));
}

TEST(SpirvIntakeTest, DescriptorSetOtherThanZeroIsUnsupported) {
  const auto layout = inspect_spirv(kIntakeSet1Spv);
  ASSERT_TRUE(fails_with(layout, Errc::unsupported));
  EXPECT_NE(layout.error().message.find("set 1"), std::string::npos) << layout.error().message;
}

TEST(SpirvIntakeTest, BuffersSharingBindingAreUnsupported) {
  const auto layout = inspect_spirv(kIntakeAliasedSpv);
  ASSERT_TRUE(fails_with(layout, Errc::unsupported));
  EXPECT_NE(layout.error().message.find("binding 0"), std::string::npos) << layout.error().message;
}

TEST(SpirvIntakeTest, ArrayOfBuffersIsUnsupported) {
  EXPECT_TRUE(fails_with(inspect_spirv(kIntakeBufferArraySpv), Errc::unsupported));
}

// Every single-word corruption yields a value or an error with a message; none crashes.
void corrupt_words_one_at_a_time(std::span<const uint32_t> module, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<size_t> position(5, module.size() - 1);
  int rejected = 0;
  for (int i = 0; i < 200; ++i) {
    auto words = copy_of(module);
    const size_t at = position(rng);
    // Alternate small values (plausible ids, opcodes, literals), bit flips and random words.
    switch (i % 3) {
      case 0:
        words[at] = rng() % 64;
        break;
      case 1:
        words[at] ^= 1u << (rng() % 32);
        break;
      default:
        words[at] = rng();
        break;
    }
    const auto layout = inspect_spirv(words);
    if (!layout) {
      ++rejected;
      EXPECT_NE(layout.error().code, Errc::ok);
      EXPECT_FALSE(layout.error().message.empty()) << "word " << at;
    }
  }
  EXPECT_GT(rejected, 0);
}

TEST(SpirvIntakeTest, SingleWordCorruptionsNeverCrash) {
  corrupt_words_one_at_a_time(kIntakeSaxpySpv, 1);
  corrupt_words_one_at_a_time(kIntakeSpecLocalSizeSpv, 2);
}

}  // namespace
}  // namespace vkn
