// A ChainGroup of threads in one process, standing in for MPI ranks: each thread runs sample()
// on its slice of the chains, and allreduce_sum adds the slots in rank order.
#pragma once

#include <barrier>
#include <memory>
#include <vector>

#include "vknode/sampler/chain_group.h"

namespace vkn::sampler::testing {

class ThreadChainGroup {
 public:
  ThreadChainGroup(uint32_t ranks, uint32_t total_chains)
      : total_chains_(total_chains), barrier_(static_cast<std::ptrdiff_t>(ranks)), slots_(ranks) {
    for (uint32_t r = 0; r < ranks; ++r) members_.push_back(std::make_unique<Member>(*this, r));
  }
  ChainGroup& member(uint32_t rank) { return *members_[rank]; }
  uint64_t allreduce_calls() const { return calls_; }

 private:
  struct Member final : ChainGroup {
    Member(ThreadChainGroup& g, uint32_t r) : group(g), me(r) {}
    uint32_t rank() const override { return me; }
    uint32_t size() const override { return static_cast<uint32_t>(group.slots_.size()); }
    uint32_t total_chains() const override { return group.total_chains_; }
    Result<void> allreduce_sum(std::span<double> values) override {
      group.slots_[me].assign(values.begin(), values.end());
      group.barrier_.arrive_and_wait();
      for (size_t i = 0; i < values.size(); ++i) {
        double s = 0;
        for (const auto& slot : group.slots_) {
          if (slot.size() != values.size()) return fail(Errc::invalid_argument, "allreduce sizes differ");
          s += slot[i];
        }
        values[i] = s;
      }
      if (me == 0) ++group.calls_;
      group.barrier_.arrive_and_wait();  // nobody overwrites a slot still being read
      return {};
    }
    ThreadChainGroup& group;
    uint32_t me;
  };

  uint32_t total_chains_;
  std::barrier<> barrier_;
  std::vector<std::vector<double>> slots_;
  std::vector<std::unique_ptr<Member>> members_;
  uint64_t calls_ = 0;
};

}  // namespace vkn::sampler::testing
