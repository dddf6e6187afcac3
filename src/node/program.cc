#include "vknode/node/program.h"

namespace vkn {

Program& Program::upload(std::string buffer, uint64_t offset, std::vector<std::byte> data) {
  steps.emplace_back(UploadStep{std::move(buffer), offset, std::move(data)});
  return *this;
}

Program& Program::dispatch(const KernelId& kernel, std::vector<NamedBinding> bindings, std::vector<std::byte> push,
                           GroupCount groups) {
  steps.emplace_back(DispatchStep{kernel, std::move(bindings), std::move(push), groups});
  return *this;
}

Program& Program::copy(std::string src, uint64_t src_offset, std::string dst, uint64_t dst_offset, uint64_t bytes) {
  steps.emplace_back(CopyStep{std::move(src), src_offset, std::move(dst), dst_offset, bytes});
  return *this;
}

Program& Program::fill(std::string buffer, uint64_t offset, uint64_t bytes, uint32_t value) {
  steps.emplace_back(FillStep{std::move(buffer), offset, bytes, value});
  return *this;
}

Program& Program::barrier() {
  steps.emplace_back(BarrierStep{});
  return *this;
}

Program& Program::download(std::string buffer, uint64_t offset, uint64_t bytes) {
  steps.emplace_back(DownloadStep{std::move(buffer), offset, bytes});
  return *this;
}

}  // namespace vkn
