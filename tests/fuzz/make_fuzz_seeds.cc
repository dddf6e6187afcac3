// Writes seed inputs for every fuzz target into <out>/<target>/: valid encodings of
// each format (so the fuzzer starts past the magic and checksum checks) and a few
// near misses. Usage: make_fuzz_seeds OUT_DIR. Run once when a format changes; the
// committed corpus under tests/fuzz/corpus/ grew from these seeds.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "fuzz_seeds.h"
#include "gpu/kernel_layout_codec.h"
#include "gpu/spirv_intake.h"
#include "protocol/codec.h"
#include "protocol/messages.h"
#include "protocol/wire.h"
#include "server/snapshot.h"
#include "vknode/gpu/builtin_kernels.h"

namespace fs = std::filesystem;
using namespace vkn;

namespace {

fs::path g_out;

template <typename Bytes>
void write_seed(const std::string& target, const std::string& name, const Bytes& bytes) {
  const fs::path dir = g_out / target;
  fs::create_directories(dir);
  std::ofstream f(dir / name, std::ios::binary);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

std::vector<std::byte> as_bytes(std::initializer_list<int> v) {
  std::vector<std::byte> out;
  for (int x : v) out.push_back(static_cast<std::byte>(x));
  return out;
}

Program sample_program() {
  Program p;
  p.steps.push_back(UploadStep{"a", 8, as_bytes({1, 2, 3, 4})});
  DispatchStep d;
  d.kernel.fill(0x5a);
  d.bindings.push_back(NamedBinding{0, "a", 0, 0});
  d.bindings.push_back(NamedBinding{1, "b", 64, 128});
  d.push = as_bytes({9, 9, 9, 9, 1, 0, 0, 0});
  d.groups = {4, 2, 1};
  p.steps.push_back(d);
  p.steps.push_back(CopyStep{"a", 0, "b", 16, 32});
  p.steps.push_back(FillStep{"b", 0, 64, 0xdeadbeef});
  p.steps.push_back(BarrierStep{});
  p.steps.push_back(DownloadStep{"b", 0, 16});
  return p;
}

// messages target input: selector, attachment length (u16), payload, attachment.
void message_seed(int selector, const std::string& name, auto&& message) {
  protocol::Writer w;
  protocol::encode(w, message);
  auto payload = w.take();
  std::vector<std::byte> seed{static_cast<std::byte>(selector), std::byte{0}, std::byte{0}};
  seed.insert(seed.end(), payload.begin(), payload.end());
  write_seed("messages", name, seed);
}

void messages_and_frames() {
  using namespace protocol;
  message_seed(1, "hello", HelloRequest{1, 1, "fuzz"});
  message_seed(2, "hello_reply", DaemonHello{1, "0.1.0", 7, 1000, false, kMaxPayload, kDefaultShmThreshold,
                                             kMaxAttachment});
  DaemonStatus s;
  s.live = s.ready = true;
  s.daemon_version = "0.1.0";
  NodeStatus n;
  n.name = "vknoded-1";
  n.health = NodeHealth::ready;
  s.devices.push_back(n);
  message_seed(3, "status", s);
  const std::vector<std::byte> spirv(64, std::byte{3});
  message_seed(4, "register_kernel", RegisterKernelRequest{spirv, {{0, 64}, {1, 7}}, "saxpy"});
  KernelEntry k;
  k.id.fill(1);
  k.name = "fill_u32";
  k.builtin = true;
  message_seed(5, "kernel_list", std::vector<KernelEntry>{k});
  const BufferSpec spec{256, ElementType::f32, {8, 8}, true};
  message_seed(6, "create_buffer", CreateBufferRequest{"x", spec, true});
  const auto data = as_bytes({1, 2, 3});
  message_seed(7, "write_buffer", WriteBufferRequest{"x", 4, data});
  message_seed(8, "read_buffer", ReadBufferRequest{"x", 4, 8});
  message_seed(9, "delete_buffer", NameRequest{"x"});
  message_seed(10, "list_buffers", ListBuffersRequest{true});
  BufferListEntry e;
  e.info.name = "x";
  e.info.spec = spec;
  message_seed(11, "buffer_list", std::vector<BufferListEntry>{e});
  message_seed(12, "program", sample_program());
  ProgramResult result;
  result.downloads = {as_bytes({1, 2}), {}, as_bytes({3})};
  message_seed(13, "program_result", result);
  {
    Writer w;
    encode_error(w, Error{Errc::not_found, 0, "no such buffer"});
    auto payload = w.take();
    std::vector<std::byte> seed{std::byte{0}, std::byte{0}, std::byte{0}};
    seed.insert(seed.end(), payload.begin(), payload.end());
    write_seed("messages", "error_envelope", seed);
  }
  // A write whose blob lives in the attachment (the input's last 16 bytes).
  {
    Writer w;
    w.str("x");
    w.u64(0);
    w.blob_ref(0, 16);
    auto payload = w.take();
    std::vector<std::byte> seed{std::byte{7}, std::byte{16}, std::byte{0}};
    seed.insert(seed.end(), payload.begin(), payload.end());
    seed.resize(seed.size() + 16, std::byte{0x77});
    write_seed("messages", "write_buffer_attachment", seed);
  }

  // Frames: a hello request, a ping, a reply with an error envelope, a bad magic.
  auto frame = [](MessageType type, uint32_t flags, std::vector<std::byte> payload) {
    FrameHeader h;
    h.type = type;
    h.flags = flags;
    h.request_id = 7;
    h.payload_size = static_cast<uint32_t>(payload.size());
    const HeaderBytes hb = encode_header(h);
    std::vector<std::byte> out(hb.begin(), hb.end());
    out.insert(out.end(), payload.begin(), payload.end());
    return out;
  };
  Writer hello;
  encode(hello, HelloRequest{1, 1, "fuzz"});
  write_seed("frame", "hello", frame(MessageType::hello, 0, hello.take()));
  write_seed("frame", "ping", frame(MessageType::ping, 0, {}));
  Writer err;
  encode_error(err, Error{Errc::quota_exceeded, 0, "too many"});
  write_seed("frame", "error_reply", frame(MessageType::exec, kFlagReply, err.take()));
  auto bad = frame(MessageType::ping, 0, {});
  bad[0] = std::byte{0};
  write_seed("frame", "bad_magic", bad);
  auto attach = frame(MessageType::write_buffer, kFlagAttachment, as_bytes({1, 2, 3}));
  write_seed("frame", "attachment_flag_without_fd", attach);
}

void gpu_formats() {
  std::map<KernelId, KernelLayout> layouts;
  int i = 0;
  for (BuiltinKernel kernel : {BuiltinKernel::fill_u32, BuiltinKernel::copy_u32, BuiltinKernel::axpy_f32,
                               BuiltinKernel::reduce_sum_f32, BuiltinKernel::philox_f32, BuiltinKernel::spin}) {
    const auto words = builtin_spirv(kernel);
    const std::string name(to_string(kernel));
    write_seed("spirv_intake", name + ".spv", std::as_bytes(words));
    auto layout = inspect_spirv(words);
    if (!layout) {
      std::fprintf(stderr, "inspect_spirv(%s): %s\n", name.c_str(), layout.error().to_string().c_str());
      continue;
    }
    std::vector<uint8_t> one;
    encode_kernel_layout(*layout, one);
    write_seed("kernel_layout", name + ".layout", one);
    KernelId id{};
    id.fill(static_cast<uint8_t>(++i));
    layouts.emplace(id, *layout);
  }
  write_seed("kernel_layout", "side_file", encode_layout_file(layouts));
  write_seed("kernel_layout", "empty_side_file", encode_layout_file({}));

  const PipelineCacheKey key = fuzz::pipeline_cache_key();
  const fs::path tmp = g_out / "tmp-pipeline.vkpc";
  for (size_t extra : {0, 40, 300}) {
    if (auto r = store_pipeline_cache_file(posix_file_ops(), tmp, key, fuzz::driver_blob(key, extra)); !r) {
      std::fprintf(stderr, "store: %s\n", r.error().to_string().c_str());
      continue;
    }
    auto bytes = posix_file_ops().read_file(tmp, 1 << 20);
    if (bytes) write_seed("pipeline_cache_file", "valid_" + std::to_string(extra), *bytes);
  }
  fs::remove(tmp);
}

void snapshots() {
  std::vector<server::DurableImage> images;
  images.push_back({"u0/weights", BufferSpec{16, ElementType::f32, {4}, true}, std::vector<std::byte>(16, std::byte{5})});
  images.push_back({"u1000/x", BufferSpec{3, ElementType::bytes, {}, true}, as_bytes({1, 2, 3})});
  write_seed("snapshot", "two_images", server::encode_snapshot(images));
  write_seed("snapshot", "empty", server::encode_snapshot({}));
}

void expressions() {
  const char* texts[] = {
      "-0.5 * q0 * q0",
      "-0.5 * (q[0] - 1)^2 - log1p_exp(q1) + lgamma(2.0 + exp(q2))",
      "sum(q) - pi * sqrt(square(q0) + 1)",
      "logistic(q0) * inv_logit(q1) + tanh(sin(q2) * cos(q0))",
      "sum(-0.5 * (y[0] - q0)^2, -0.5 * (y[3] - q1)^2, log(x[0] + exp(q2)))",
      "pow(q0, 3) + pow(q1, q2) - log1p(q0 * q0)",
      "((((q0))))",
      "1e308 * q0 / 0.0",
  };
  int i = 0;
  for (const char* t : texts) write_seed("expr_parser", "expr" + std::to_string(i++), std::string(t));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_fuzz_seeds OUT_DIR\n");
    return 2;
  }
  g_out = argv[1];
  messages_and_frames();
  gpu_formats();
  snapshots();
  expressions();
  return 0;
}
