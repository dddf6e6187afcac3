#include "core_dispatch.h"

#include <chrono>
#include <span>

#include "util/strformat.h"
#include "vknode/gpu/builtin_kernels.h"

namespace vkn::detail {
namespace {
constexpr std::chrono::seconds kTimeout{60};
}  // namespace

std::vector<std::byte> tiny_fill_push() {
  const FillPush push{kTinyWords, kTinyFillValue};
  auto b = std::as_bytes(std::span(&push, 1));
  return {b.begin(), b.end()};
}

Result<std::unique_ptr<CoreDispatch>> CoreDispatch::create(const std::string& device_selector) {
  auto c = std::unique_ptr<CoreDispatch>(new CoreDispatch);
  auto device = Device::create(DeviceOptions{.selector = device_selector, .validation_from_env = false});
  if (!device) return fail(device.error());
  c->device_ = std::move(*device);
  auto stream = Stream::create(*c->device_);
  if (!stream) return fail(stream.error());
  c->stream_ = std::move(*stream);
  auto buffer = Buffer::create(*c->device_, kTinyWords * 4);
  if (!buffer) return fail(buffer.error());
  c->buffer_.emplace(std::move(*buffer));
  c->kernels_ = std::make_unique<KernelCache>(*c->device_, nullptr);
  auto kernel = c->kernels_->get_or_create(builtin_spirv(BuiltinKernel::fill_u32));
  if (!kernel) return fail(kernel.error());
  c->kernel_ = *kernel;
  return c;
}

Result<void> CoreDispatch::once() {
  const BufferBinding b[] = {{0, &*buffer_}};
  if (auto r = stream_->record_dispatch(*kernel_, b, push_, {1, 1, 1}); !r) return r;
  return stream_->submit_and_wait(kTimeout);
}

Result<void> CoreDispatch::verify() {
  std::vector<uint32_t> words(kTinyWords);
  if (auto r = stream_->download(*buffer_, 0, std::as_writable_bytes(std::span(words)), kTimeout); !r) return r;
  for (uint32_t i = 0; i < kTinyWords; ++i) {
    if (words[i] != kTinyFillValue) {
      return fail(Errc::job_failed, vkn::format("the core dispatch left word {} at {}, not {}", i, words[i], kTinyFillValue));
    }
  }
  return {};
}

}  // namespace vkn::detail
