#include "vknode/sampler/result_codec.h"

#include <cstring>
#include <string>
#include <type_traits>

namespace vkn::sampler {
namespace {

constexpr uint32_t kMagic = 0x53524b56;  // "VKRS"
constexpr uint32_t kVersion = 1;
// Far above any real run, low enough that a corrupt length cannot ask for terabytes.
constexpr uint64_t kMaxElements = uint64_t{1} << 34;

class Writer {
 public:
  template <typename T>
  void put(const T& v) {
    static_assert(std::is_trivially_copyable_v<T>);
    const auto* p = reinterpret_cast<const std::byte*>(&v);
    out.insert(out.end(), p, p + sizeof v);
  }
  template <typename T>
  void put_vector(const std::vector<T>& v) {
    put(uint64_t{v.size()});
    const auto* p = reinterpret_cast<const std::byte*>(v.data());
    out.insert(out.end(), p, p + v.size() * sizeof(T));
  }
  void put_string(const std::string& s) { put_vector(std::vector<char>(s.begin(), s.end())); }
  std::vector<std::byte> out;
};

class Reader {
 public:
  explicit Reader(std::span<const std::byte> in) : in_(in) {}
  template <typename T>
  bool get(T& v) {
    if (in_.size() - at_ < sizeof v) return false;
    std::memcpy(&v, in_.data() + at_, sizeof v);
    at_ += sizeof v;
    return true;
  }
  template <typename T>
  bool get_vector(std::vector<T>& v) {
    uint64_t n = 0;
    if (!get(n) || n > kMaxElements || n > (in_.size() - at_) / sizeof(T)) return false;
    v.resize(n);
    if (n == 0) return true;  // an empty vector's data() may be null: no memcpy from or to it
    std::memcpy(v.data(), in_.data() + at_, n * sizeof(T));
    at_ += n * sizeof(T);
    return true;
  }
  bool get_string(std::string& s) {
    std::vector<char> c;
    if (!get_vector(c)) return false;
    s.assign(c.begin(), c.end());
    return true;
  }
  bool done() const { return at_ == in_.size(); }

 private:
  std::span<const std::byte> in_;
  size_t at_ = 0;
};

}  // namespace

std::vector<std::byte> encode_result(const SampleResult& r) {
  Writer w;
  w.put(kMagic);
  w.put(kVersion);
  w.put(r.chains);
  w.put(r.draws);
  w.put(r.first_chain);
  w.put(r.warmup);
  w.put(r.steps);
  w.put(uint64_t{r.param_names.size()});
  for (const auto& name : r.param_names) w.put_string(name);
  w.put_vector(r.values);
  w.put_vector(r.lp);
  w.put_vector(r.accept_stat);
  w.put_vector(r.step_size);
  w.put_vector(r.energy);
  w.put_vector(r.n_leapfrog);
  w.put_vector(r.divergent);
  w.put_vector(r.adapted_step_size);
  w.put(uint64_t{r.inv_metric.size()});
  for (const auto& m : r.inv_metric) w.put_vector(m);
  w.put(r.trajectory_length);
  w.put_string(r.backend);
  w.put_string(r.fallback_reason);
  w.put(r.warmup_seconds);
  w.put(r.sampling_seconds);
  w.put(r.readback_seconds);
  w.put(r.gradient_evaluations);
  return std::move(w.out);
}

Result<SampleResult> decode_result(std::span<const std::byte> bytes) {
  auto bad = [](std::string_view why) {
    return fail(Errc::protocol_error, "not an encoded sampler result", std::string(why));
  };
  Reader in(bytes);
  SampleResult r;
  uint32_t magic = 0, version = 0;
  if (!in.get(magic) || magic != kMagic) return bad("wrong magic");
  if (!in.get(version) || version != kVersion) return bad("unknown version");
  uint64_t names = 0, metrics = 0;
  if (!in.get(r.chains) || !in.get(r.draws) || !in.get(r.first_chain) || !in.get(r.warmup) || !in.get(r.steps) ||
      !in.get(names) || names > kMaxElements) {
    return bad("truncated header");
  }
  for (uint64_t i = 0; i < names; ++i) {
    std::string name;
    if (!in.get_string(name)) return bad("truncated parameter names");
    r.param_names.push_back(std::move(name));
  }
  if (!in.get_vector(r.values) || !in.get_vector(r.lp) || !in.get_vector(r.accept_stat) ||
      !in.get_vector(r.step_size) || !in.get_vector(r.energy) || !in.get_vector(r.n_leapfrog) ||
      !in.get_vector(r.divergent) || !in.get_vector(r.adapted_step_size) || !in.get(metrics) ||
      metrics > kMaxElements) {
    return bad("truncated draws");
  }
  r.inv_metric.resize(metrics);
  for (auto& m : r.inv_metric) {
    if (!in.get_vector(m)) return bad("truncated metric");
  }
  if (!in.get(r.trajectory_length) || !in.get_string(r.backend) || !in.get_string(r.fallback_reason) ||
      !in.get(r.warmup_seconds) || !in.get(r.sampling_seconds) ||
      !in.get(r.readback_seconds) || !in.get(r.gradient_evaluations) || !in.done()) {
    return bad("truncated or overlong trailer");
  }
  const uint64_t n = uint64_t{r.chains} * r.draws;
  if (r.values.size() != n * r.param_names.size() || r.lp.size() != n || r.accept_stat.size() != n ||
      r.step_size.size() != n || r.energy.size() != n || r.n_leapfrog.size() != n || r.divergent.size() != n ||
      r.adapted_step_size.size() != r.chains || r.inv_metric.size() != r.chains) {
    return bad("lengths do not match chains and draws");
  }
  return r;
}

}  // namespace vkn::sampler
