// SplitLeapfrogBackend: one sampler run spread over several backends, typically one GPU
// backend per device of the machine. Each part takes a contiguous share of the chains (as
// equal as possible); advance() and trajectories() run the parts at the same time, one thread
// each, and join their outputs in chain order. Every chain keeps its own Philox streams, so
// the draws do not depend on how the chains are split.
//
// A part that fails with a fallback error (is_fallback_error) is retired: its share is
// restored and run on a CPU backend, now and in every later call, while the other parts go
// on; name() then shows "cpu" in its place and fallback_reasons() says why. Other errors come
// back as they are. Used by one thread at a time, like every backend.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "vknode/sampler/leapfrog_backend.h"

namespace vkn::sampler {

class SplitLeapfrogBackend final : public LeapfrogBackend {
 public:
  // Takes the parts (at least one); borrows the model. cpu_threads: for the CPU that takes over
  // a failed part (0: all cores). Errors: invalid_argument (no parts), out_of_host_memory.
  static Result<std::unique_ptr<SplitLeapfrogBackend>> create(const Model& model,
                                                              std::vector<std::unique_ptr<LeapfrogBackend>> parts,
                                                              unsigned cpu_threads = 0);
  ~SplitLeapfrogBackend() override;
  SplitLeapfrogBackend(const SplitLeapfrogBackend&) = delete;
  SplitLeapfrogBackend& operator=(const SplitLeapfrogBackend&) = delete;

  // "split[gpu:A, gpu:B]"; a retired part shows as "cpu".
  std::string_view name() const override { return name_; }
  Result<void> advance(std::span<ChainState> states, const AdvanceRequest& request, AdvanceOutput& out) override;
  Result<TrajectoryBatch> trajectories(const TrajectoryRequest& request) override;

  size_t parts() const;
  // One line per retired part: "<part name> failed: <error>".
  const std::vector<std::string>& fallback_reasons() const { return fallback_reasons_; }

  struct Part;

 private:
  SplitLeapfrogBackend(std::vector<Part> parts, std::unique_ptr<CpuLeapfrogBackend> cpu);
  void rename();

  std::vector<Part> parts_;
  std::unique_ptr<CpuLeapfrogBackend> cpu_;
  std::string name_;
  std::vector<std::string> fallback_reasons_;
};

}  // namespace vkn::sampler
