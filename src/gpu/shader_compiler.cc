#include "gpu/shader_compiler.h"

#include <shaderc/shaderc.h>

#include <cstring>
#include <memory>

#include "gpu/pipeline_cache_file.h"
#include "util/file_ops.h"
#include "util/log.h"
#include "util/sha256.h"
#include "util/strformat.h"

namespace vkn {
namespace {

constexpr char kMagic[8] = {'V', 'K', 'N', 'S', 'P', 'V', '0', '1'};
constexpr uint32_t kSpirvMagic = 0x07230203u;
constexpr size_t kMaxEntryBytes = 64u << 20;

// Bumped whenever the way this file drives shaderc changes.
constexpr std::string_view kDriverTag = "vknode-shaderc-1 vulkan1.2";

std::string cache_key(std::string_view source, const ShaderCompileOptions& o) {
  Sha256 h;
  const std::string header =
      vkn::format("{}|{}|opt={}|", shader_compiler_version(), o.name, o.optimize ? 1 : 0);
  h.update({reinterpret_cast<const uint8_t*>(header.data()), header.size()});
  h.update({reinterpret_cast<const uint8_t*>(source.data()), source.size()});
  const Sha256Digest d = h.finish();
  return to_hex(d);
}

// The words of a valid entry, or nothing.
std::vector<uint32_t> parse_entry(const std::vector<uint8_t>& bytes) {
  if (bytes.size() < sizeof(kMagic) + 4 + kSha256Size) return {};
  if (std::memcmp(bytes.data(), kMagic, sizeof(kMagic)) != 0) return {};
  const size_t payload = bytes.size() - sizeof(kMagic) - kSha256Size;
  if (payload % 4 != 0) return {};
  const std::span<const uint8_t> words(bytes.data() + sizeof(kMagic), payload);
  const Sha256Digest sum = sha256(words);
  if (std::memcmp(sum.data(), bytes.data() + sizeof(kMagic) + payload, kSha256Size) != 0) return {};
  std::vector<uint32_t> spirv(payload / 4);
  std::memcpy(spirv.data(), words.data(), payload);
  if (spirv[0] != kSpirvMagic) return {};
  return spirv;
}

std::vector<uint8_t> make_entry(const std::vector<uint32_t>& spirv) {
  std::vector<uint8_t> out(sizeof(kMagic) + spirv.size() * 4 + kSha256Size);
  std::memcpy(out.data(), kMagic, sizeof(kMagic));
  std::memcpy(out.data() + sizeof(kMagic), spirv.data(), spirv.size() * 4);
  const Sha256Digest sum = sha256({out.data() + sizeof(kMagic), spirv.size() * 4});
  std::memcpy(out.data() + sizeof(kMagic) + spirv.size() * 4, sum.data(), kSha256Size);
  return out;
}

struct CompilerDeleter {
  void operator()(shaderc_compiler_t c) const { shaderc_compiler_release(c); }
};
struct OptionsDeleter {
  void operator()(shaderc_compile_options_t o) const { shaderc_compile_options_release(o); }
};
struct ResultDeleter {
  void operator()(shaderc_compilation_result_t r) const { shaderc_result_release(r); }
};

Result<std::vector<uint32_t>> run_shaderc(std::string_view source, const ShaderCompileOptions& o) {
  std::unique_ptr<shaderc_compiler, CompilerDeleter> compiler(shaderc_compiler_initialize());
  std::unique_ptr<shaderc_compile_options, OptionsDeleter> options(
      shaderc_compile_options_initialize());
  if (!compiler || !options) return fail(Errc::out_of_host_memory, "shaderc initialisation failed");
  shaderc_compile_options_set_target_env(options.get(), shaderc_target_env_vulkan,
                                         shaderc_env_version_vulkan_1_2);
  shaderc_compile_options_set_source_language(options.get(), shaderc_source_language_glsl);
  shaderc_compile_options_set_optimization_level(
      options.get(),
      o.optimize ? shaderc_optimization_level_performance : shaderc_optimization_level_zero);
  std::unique_ptr<shaderc_compilation_result, ResultDeleter> result(
      shaderc_compile_into_spv(compiler.get(), source.data(), source.size(), shaderc_compute_shader,
                               o.name.c_str(), "main", options.get()));
  if (!result) return fail(Errc::out_of_host_memory, "shaderc returned no result", o.name);
  if (shaderc_result_get_compilation_status(result.get()) != shaderc_compilation_status_success) {
    std::string message = shaderc_result_get_error_message(result.get());
    while (!message.empty() && message.back() == '\n') message.pop_back();
    return fail(Errc::invalid_argument, "GLSL compilation failed", message);
  }
  const size_t bytes = shaderc_result_get_length(result.get());
  std::vector<uint32_t> spirv(bytes / 4);
  std::memcpy(spirv.data(), shaderc_result_get_bytes(result.get()), spirv.size() * 4);
  return spirv;
}

}  // namespace

std::string shader_compiler_version() {
  unsigned version = 0, revision = 0;
  shaderc_get_spv_version(&version, &revision);
  return vkn::format("{} spv {:x}.{}", kDriverTag, version, revision);
}

Result<CompiledShader> compile_compute_shader(std::string_view source,
                                              const ShaderCompileOptions& options) {
  CompiledShader out;
  out.cache_key = cache_key(source, options);
  FileOps& ops = options.file_ops ? *options.file_ops : posix_file_ops();
  std::filesystem::path dir;
  if (options.use_cache) {
    if (!options.cache_dir.empty()) {
      dir = options.cache_dir / "spirv";
    } else if (auto base = default_pipeline_cache_dir()) {
      dir = *base / "spirv";
    }
  }
  const std::filesystem::path path = dir.empty() ? dir : dir / (out.cache_key + ".spv");
  if (!path.empty()) {
    if (auto bytes = ops.read_file(path, kMaxEntryBytes)) {
      out.spirv = parse_entry(*bytes);
      if (!out.spirv.empty()) {
        out.from_cache = true;
        return out;
      }
      log(LogLevel::info, "shader cache entry {} is corrupt; recompiling", path);
    }
  }
  auto spirv = run_shaderc(source, options);
  if (!spirv) return fail(spirv.error());
  out.spirv = std::move(*spirv);
  if (!path.empty()) {
    const std::vector<uint8_t> entry = make_entry(out.spirv);
    auto written = ops.create_directories(dir);
    if (written) written = write_file_atomically(ops, path, entry);
    if (!written) log(LogLevel::debug, "shader cache not written: {}", written.error().to_string());
  }
  return out;
}

}  // namespace vkn
