// Metrics: the daemon's request counters for the Prometheus endpoint (requests by
// type, errors by code, a latency histogram), and PrometheusText, which writes the
// text exposition format (version 0.0.4) with HELP and TYPE lines. Metrics is
// lock-free (atomics) and thread-safe: every thread that answers a request records
// it. PrometheusText is thread-compatible.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "protocol/wire.h"
#include "vknode/error.h"

namespace vkn::server {

// Builds one exposition: metric families, each announced once by HELP and TYPE
// before its samples.
class PrometheusText {
 public:
  // Requires: `name` matches [a-zA-Z_:][a-zA-Z0-9_:]*; type is counter, gauge or histogram.
  void family(std::string_view name, std::string_view type, std::string_view help);
  // `labels` is empty or `key="value",...` with values escaped by label().
  void sample(std::string_view name, std::string_view labels, double value);
  // `key="value"` with the value's backslashes, quotes and newlines escaped.
  static std::string label(std::string_view key, std::string_view value);
  const std::string& text() const { return out_; }

 private:
  std::string out_;
};

class Metrics {
 public:
  // Upper bounds of the latency histogram's buckets, in seconds (then +Inf).
  static constexpr std::array<double, 16> kLatencyBounds = {
      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
      0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};

  // Counts one answered request of `type` (answered `code`, ok for success) that took
  // `latency` from reading its frame to its reply.
  void record(protocol::MessageType type, Errc code, std::chrono::nanoseconds latency);

  // Writes vknode_requests_total, vknode_request_errors_total and
  // vknode_request_duration_seconds.
  void render(PrometheusText& out) const;

 private:
  static constexpr size_t kTypeSlots = 16;  // the known types, then one for others
  // Errc values up to the last one, then one for others.
  static constexpr size_t kCodeSlots = static_cast<size_t>(Errc::cancelled) + 2;
  static size_t type_slot(protocol::MessageType type);

  std::array<std::atomic<uint64_t>, kTypeSlots> requests_{};
  std::array<std::atomic<uint64_t>, kCodeSlots> errors_{};
  std::array<std::atomic<uint64_t>, kLatencyBounds.size() + 1>
      latency_buckets_{};  // not cumulative
  std::atomic<uint64_t> latency_count_{0};
  std::atomic<uint64_t> latency_sum_ns_{0};
};

}  // namespace vkn::server
