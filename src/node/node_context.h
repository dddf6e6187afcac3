// NodeContext: the Context a node's job sees: the node's GPU objects (its worker's, or
// those of a caller running an exec inline) plus the caller's scratch store, looked up
// only when the job asks for it.
#pragma once

#include <map>
#include <string>

#include "node/node_impl.h"

namespace vkn::detail {

class NodeContext final : public Context {
 public:
  NodeContext(NodeImpl& node, std::map<std::string, ScratchStore>& stores, const std::string& client)
      : node_(node), stores_(stores), client_(client) {}
  Device& device() override { return node_.device(); }
  Stream& stream() override { return node_.stream(); }
  KernelCache& kernels() override { return node_.kernels(); }
  PipelineCache& pipeline_cache() override { return node_.pipeline_cache(); }
  BufferRegistry& buffers() override { return node_.registry(); }
  ScratchStore& scratch() override {
    if (scratch_ == nullptr) scratch_ = &stores_[client_];
    return *scratch_;
  }
  Result<void> submit_and_wait() override { return node_.submit_and_wait(); }
  Result<Kernel*> kernel(const KernelId& id) override { return node_.kernel(id); }

 private:
  NodeImpl& node_;
  std::map<std::string, ScratchStore>& stores_;
  const std::string& client_;
  ScratchStore* scratch_ = nullptr;
};

}  // namespace vkn::detail
