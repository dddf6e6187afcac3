// The GPU side of a sampling run from the command line (SampleOptions::device): the machine's
// daemon (daemon, or auto when one answers), else one in-process node per selected device and
// a GPU backend on each (a SplitLeapfrogBackend over them when there are several). When none
// is there, backend() is null and note() says why: the run goes to the CPU.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "sample_options.h"
#include "vknode/sampler/leapfrog_backend.h"

namespace vkn::sampler {
class SplitLeapfrogBackend;
}

namespace vkn::cli {

class SampleBackend {
 public:
  // Connects to the daemon (on its device node daemon_slot modulo their number: MPI ranks of
  // one machine take the daemon's devices in turn) or starts nodes on `selectors`
  // (gpu_selectors()); a device whose node or backend cannot start
  // is left out (and named in note()). Errors: invalid_argument or unsupported from the
  // backend (the model's shader does not compile, f64 without shaderFloat64): these are the
  // user's to fix, not a reason to fall back.
  static Result<std::unique_ptr<SampleBackend>> start(const sampler::Model& model, const SampleOptions& o,
                                                      const std::vector<std::string>& selectors,
                                                      const std::string& name_prefix, uint32_t daemon_slot = 0);
  ~SampleBackend();  // backends first, then their nodes

  sampler::LeapfrogBackend* backend() const { return backend_.get(); }
  const std::string& note() const { return note_; }
  // Why parts of a split run moved to the CPU (empty when nothing failed).
  std::string split_fallbacks() const;
  // The node names started, one per device in use.
  const std::vector<std::string>& nodes() const { return nodes_; }

 private:
  SampleBackend() = default;
  std::vector<std::string> nodes_;
  std::unique_ptr<sampler::LeapfrogBackend> backend_;
  sampler::SplitLeapfrogBackend* split_ = nullptr;  // backend_ when it is a split
  std::string note_;
};

}  // namespace vkn::cli
