#include "sample_backend.h"

#include "util/strformat.h"
#include "vknode/node/node.h"
#include "vknode/sampler/daemon_target.h"
#include "vknode/sampler/gpu_backend.h"
#include "vknode/sampler/split_backend.h"

namespace vkn::cli {

using namespace vkn::sampler;

Result<std::unique_ptr<SampleBackend>> SampleBackend::start(const Model& model, const SampleOptions& o,
                                                            const std::vector<std::string>& selectors,
                                                            const std::string& name_prefix, uint32_t daemon_slot) {
  std::unique_ptr<SampleBackend> self(new SampleBackend());
  if (o.device == "cpu") return self;
  std::vector<std::unique_ptr<LeapfrogBackend>> parts;
  auto add_note = [&](const std::string& what) { self->note_ += (self->note_.empty() ? "" : "; ") + what; };
  if (o.device == "daemon" || o.device == "auto") {
    GpuBackendOptions go;
    go.precision = o.precision == "f64" ? Precision::f64 : Precision::f32;
    ClientOptions co;
    if (daemon_slot > 0) {
      if (auto c = Client::connect(); c) {
        if (auto st = (*c)->status(); st && !st->devices.empty()) co.device = daemon_slot % st->devices.size();
      }
    }
    auto b = create_daemon_backend(model, go, co);
    if (b) {
      self->backend_ = std::move(*b);
      return self;
    }
    if (b.error().code == Errc::invalid_argument || b.error().code == Errc::unsupported) return fail(b.error());
    if (o.device == "daemon") {
      add_note("no daemon: " + b.error().to_string());
      return self;
    }
  }
  for (size_t i = 0; i < selectors.size(); ++i) {
    NodeOptions no;
    no.name = selectors.size() == 1 ? name_prefix : vkn::format("{}-{}", name_prefix, i);
    no.device_selector = selectors[i];
    const std::string label = selectors[i].empty() ? "default device" : "device " + selectors[i];
    if (auto r = vkn::start(no); !r) {
      add_note(vkn::format("node on {} did not start: {}", label, r.error().to_string()));
      continue;
    }
    self->nodes_.push_back(no.name);
    GpuBackendOptions go;
    go.precision = o.precision == "f64" ? Precision::f64 : Precision::f32;
    go.call.node = no.name;
    auto b = GpuLeapfrogBackend::create(model, go);
    if (!b) {
      if (b.error().code == Errc::invalid_argument || b.error().code == Errc::unsupported) return fail(b.error());
      add_note(vkn::format("GPU backend on {} unavailable: {}", label, b.error().to_string()));
      continue;
    }
    parts.push_back(std::move(*b));
  }
  if (parts.size() == 1) {
    self->backend_ = std::move(parts[0]);
  } else if (parts.size() > 1) {
    auto split = SplitLeapfrogBackend::create(model, std::move(parts), o.config.threads);
    if (!split) return fail(split.error());
    self->split_ = split->get();
    self->backend_ = std::move(*split);
  }
  return self;
}

SampleBackend::~SampleBackend() {
  backend_.reset();
  for (const auto& n : nodes_) (void)vkn::stop(n);
}

std::string SampleBackend::split_fallbacks() const {
  std::string out;
  if (!split_) return out;
  for (const auto& r : split_->fallback_reasons()) out += (out.empty() ? "" : "; ") + r;
  return out;
}

}  // namespace vkn::cli
