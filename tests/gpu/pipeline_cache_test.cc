#include "vknode/gpu/pipeline_cache.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>

#include "gpu/pipeline_cache_file.h"
#include "testing/gpu_fixture.h"
#include "util/file_ops.h"
#include "vknode/gpu/builtin_kernels.h"

namespace vkn {
namespace {

namespace fs = std::filesystem;

// Fails every write with ENOSPC, as a full disk would.
class FullDiskFileOps : public PosixFileOps {
 public:
  Result<void> write_all(FileHandle& file, std::span<const uint8_t>) override {
    return fail(file_error(ENOSPC, "write", file.path()));
  }
};

class PipelineCacheTest : public testing::GpuTest {
 protected:
  void SetUp() override {
    GpuTest::SetUp();
    char tmpl[] = "/tmp/vknode-pcache-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    GpuTest::TearDown();
    fs::remove_all(dir_);
  }
  std::unique_ptr<PipelineCache> open(FileOps* ops = nullptr) {
    PipelineCacheOptions o;
    o.directory = dir_;
    o.file_ops = ops;
    auto pc = PipelineCache::open(*device_, o);
    EXPECT_TRUE(pc.has_value()) << pc.error().to_string();
    return pc ? std::move(*pc) : nullptr;
  }
  void build_all(PipelineCache& pc) {
    for (BuiltinKernel k : all_builtin_kernels()) {
      auto kernel = Kernel::create(*device_, &pc, builtin_spirv(k));
      ASSERT_TRUE(kernel.has_value()) << kernel.error().to_string();
    }
  }
  // Whether the driver keeps pipeline data beyond the 32-byte header.
  static bool driver_stores_pipelines(const PipelineCache& pc) { return pc.size_bytes() > 32; }
  fs::path dir_;
};

TEST_F(PipelineCacheTest, PersistWritesAFileThatTheNextOpenLoads) {
  auto pc = open();
  ASSERT_NE(pc, nullptr);
  EXPECT_EQ(pc->stats().loaded_bytes, 0u);
  build_all(*pc);
  EXPECT_TRUE(pc->is_dirty());
  const auto s = pc->stats();
  EXPECT_EQ(s.hits + s.misses + s.unknown, all_builtin_kernels().size());
  ASSERT_TRUE(pc->persist().has_value());
  EXPECT_FALSE(pc->is_dirty());
  ASSERT_TRUE(fs::exists(pc->path()));
  EXPECT_EQ(pc->path().parent_path(), dir_);
  pc.reset();

  auto again = open();
  ASSERT_NE(again, nullptr);
  EXPECT_GT(again->stats().loaded_bytes, 0u);
  EXPECT_TRUE(again->stats().load_warning.empty());
  build_all(*again);
  const auto s2 = again->stats();
  if (driver_stores_pipelines(*again)) {
    // Every pipeline now comes from the cache loaded from disk.
    EXPECT_EQ(s2.misses, 0u);
    EXPECT_EQ(s2.hits + s2.unknown, all_builtin_kernels().size());
  } else {
    // lavapipe (Mesa 22.3) keeps nothing in VkPipelineCache: every creation is a miss.
    EXPECT_EQ(s2.hits, 0u);
  }
}

TEST_F(PipelineCacheTest, CorruptFileWarnsAndStartsEmpty) {
  auto pc = open();
  build_all(*pc);
  ASSERT_TRUE(pc->persist().has_value());
  const fs::path file = pc->path();
  pc.reset();
  {
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(fs::file_size(file) - 5));
    f.put('\x5a');
  }
  auto corrupt = open();
  ASSERT_NE(corrupt, nullptr);
  EXPECT_EQ(corrupt->stats().loaded_bytes, 0u);
  EXPECT_NE(corrupt->stats().load_warning.find("checksum"), std::string::npos) << corrupt->stats().load_warning;
  build_all(*corrupt);  // still fully usable
  fs::resize_file(file, 10);
  auto truncated = open();
  ASSERT_NE(truncated, nullptr);
  EXPECT_FALSE(truncated->stats().load_warning.empty());
}

TEST_F(PipelineCacheTest, FullDiskIsAnIoErrorAndKeepsTheOldFile) {
  auto pc = open();
  build_all(*pc);
  ASSERT_TRUE(pc->persist().has_value());
  const auto before = fs::file_size(pc->path());
  pc.reset();
  FullDiskFileOps full;
  auto failing = open(&full);
  ASSERT_NE(failing, nullptr);
  auto k = Kernel::create(*device_, failing.get(), builtin_spirv(BuiltinKernel::spin), {}, "x");
  ASSERT_TRUE(k.has_value());
  auto r = failing->persist();
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Errc::io_error);
  EXPECT_EQ(fs::file_size(failing->path()), before);
  for (const auto& e : fs::directory_iterator(dir_)) {
    EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos) << "temp file left: " << e.path();
  }
}

TEST_F(PipelineCacheTest, TwoCachesPersistingToOneDirectoryKeepBothSetsOfPipelines) {
  auto a = open();
  auto b = open();
  ASSERT_TRUE(Kernel::create(*device_, a.get(), builtin_spirv(BuiltinKernel::fill_u32)).has_value());
  ASSERT_TRUE(Kernel::create(*device_, b.get(), builtin_spirv(BuiltinKernel::axpy_f32)).has_value());
  ASSERT_TRUE(a->persist().has_value());
  ASSERT_TRUE(b->persist().has_value());  // merges a's pipelines first
  a.reset();
  b.reset();
  auto c = open();
  ASSERT_TRUE(Kernel::create(*device_, c.get(), builtin_spirv(BuiltinKernel::fill_u32)).has_value());
  ASSERT_TRUE(Kernel::create(*device_, c.get(), builtin_spirv(BuiltinKernel::axpy_f32)).has_value());
  if (driver_stores_pipelines(*c)) {
    EXPECT_EQ(c->stats().misses, 0u);
  }
  EXPECT_GT(c->stats().loaded_bytes, 0u);
}

TEST_F(PipelineCacheTest, KnownLayoutsSkipSpirvIntakeInTheNextProcess) {
  auto pc = open();
  VKN_ASSERT_OK_AND_ASSIGN(first, Kernel::create(*device_, pc.get(), builtin_spirv(BuiltinKernel::axpy_f32)));
  ASSERT_TRUE(pc->find_layout(first->id()).has_value());
  ASSERT_TRUE(pc->persist().has_value());
  pc.reset();
  auto again = open();
  EXPECT_EQ(again->stats().layouts, 1u);
  VKN_ASSERT_OK_AND_ASSIGN(second, Kernel::create(*device_, again.get(), builtin_spirv(BuiltinKernel::axpy_f32)));
  EXPECT_EQ(second->layout().bindings.size(), first->layout().bindings.size());
  EXPECT_EQ(second->layout().push_constant_bytes, first->layout().push_constant_bytes);
  EXPECT_EQ(second->layout().local_size, first->layout().local_size);
  // A damaged side file is ignored: kernels are validated again, nothing breaks.
  const fs::path side = fs::path(again->path().string() + ".layouts");
  again.reset();
  ASSERT_TRUE(fs::exists(side));
  fs::resize_file(side, fs::file_size(side) - 3);
  auto damaged = open();
  EXPECT_EQ(damaged->stats().layouts, 0u);
  VKN_ASSERT_OK_AND_ASSIGN(third, Kernel::create(*device_, damaged.get(), builtin_spirv(BuiltinKernel::axpy_f32)));
  EXPECT_EQ(third->layout().bindings.size(), 2u);
}

// The driver warm-up at open creates and drops a pipeline of its own: it is neither
// counted as a hit or miss nor kept as a kernel, and turning it off changes nothing else.
TEST_F(PipelineCacheTest, DriverWarmUpAtOpenIsNotCountedAsAKernel) {
  for (bool warm_up : {true, false}) {
    PipelineCacheOptions o;
    o.directory = dir_;
    o.warm_up_driver = warm_up;
    VKN_ASSERT_OK_AND_ASSIGN(pc, PipelineCache::open(*device_, o));
    const auto s = pc->stats();
    EXPECT_EQ(s.hits + s.misses + s.unknown, 0u) << "warm_up " << warm_up;
    EXPECT_TRUE(s.load_warning.empty());
    VKN_ASSERT_OK_AND_ASSIGN(k, Kernel::create(*device_, pc.get(), builtin_spirv(BuiltinKernel::fill_u32)));
    EXPECT_EQ(pc->stats().hits + pc->stats().misses + pc->stats().unknown, 1u);
    EXPECT_EQ(device_->validation_error_count(), 0u);
  }
}

TEST_F(PipelineCacheTest, InMemoryCacheNeverTouchesDisk) {
  PipelineCacheOptions o;
  o.directory = dir_;
  o.persistent = false;
  auto pc = PipelineCache::open(*device_, o);
  ASSERT_TRUE(pc.has_value());
  EXPECT_FALSE((*pc)->is_persistent());
  ASSERT_TRUE(Kernel::create(*device_, pc->get(), builtin_spirv(BuiltinKernel::fill_u32)).has_value());
  EXPECT_TRUE((*pc)->persist().has_value());
  EXPECT_TRUE(fs::is_empty(dir_));
}

}  // namespace
}  // namespace vkn
