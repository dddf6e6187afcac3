#include "server/metrics.h"

#include <cmath>

#include "util/strformat.h"

namespace vkn::server {
namespace {

using protocol::MessageType;

// Every MessageType, in the order of their slots.
constexpr std::array<MessageType, 13> kKnownTypes = {
    MessageType::hello,           MessageType::ping,         MessageType::status,
    MessageType::register_kernel, MessageType::list_kernels, MessageType::create_buffer,
    MessageType::write_buffer,    MessageType::read_buffer,  MessageType::delete_buffer,
    MessageType::list_buffers,    MessageType::exec,         MessageType::persist_cache,
    MessageType::shutdown};

std::string number(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 1e15) return vkn::format("{}", static_cast<int64_t>(v));
  return vkn::format("{}", v);
}

}  // namespace

void PrometheusText::family(std::string_view name, std::string_view type, std::string_view help) {
  out_ += vkn::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

void PrometheusText::sample(std::string_view name, std::string_view labels, double value) {
  if (labels.empty()) {
    out_ += vkn::format("{} {}\n", name, number(value));
  } else {
    out_ += vkn::format("{}{{{}}} {}\n", name, labels, number(value));
  }
}

std::string PrometheusText::label(std::string_view key, std::string_view value) {
  std::string escaped;
  for (char c : value) {
    if (c == '\\' || c == '"') {
      escaped += '\\';
      escaped += c;
    } else if (c == '\n') {
      escaped += "\\n";
    } else {
      escaped += c;
    }
  }
  return vkn::format("{}=\"{}\"", key, escaped);
}

size_t Metrics::type_slot(MessageType type) {
  for (size_t i = 0; i < kKnownTypes.size(); ++i) {
    if (kKnownTypes[i] == type) return i;
  }
  return kKnownTypes.size();
}

void Metrics::record(MessageType type, Errc code, std::chrono::nanoseconds latency) {
  requests_[type_slot(type)].fetch_add(1, std::memory_order_relaxed);
  if (code != Errc::ok) {
    const auto c = static_cast<size_t>(code);
    errors_[c < kCodeSlots ? c : kCodeSlots - 1].fetch_add(1, std::memory_order_relaxed);
  }
  const double seconds = std::chrono::duration<double>(latency).count();
  size_t bucket = 0;
  while (bucket < kLatencyBounds.size() && seconds > kLatencyBounds[bucket]) ++bucket;
  latency_buckets_[bucket].fetch_add(1, std::memory_order_relaxed);
  latency_sum_ns_.fetch_add(static_cast<uint64_t>(std::max<int64_t>(0, latency.count())),
                            std::memory_order_relaxed);
  latency_count_.fetch_add(1, std::memory_order_relaxed);
}

void Metrics::render(PrometheusText& out) const {
  out.family("vknode_requests_total", "counter", "Requests answered, by request type.");
  for (size_t i = 0; i <= kKnownTypes.size(); ++i) {
    const char* name = i < kKnownTypes.size() ? protocol::to_string(kKnownTypes[i]) : "unknown";
    out.sample("vknode_requests_total", PrometheusText::label("type", name),
               static_cast<double>(requests_[i].load(std::memory_order_relaxed)));
  }
  out.family("vknode_request_errors_total", "counter",
             "Requests answered with an error, by error code.");
  // Every code from the start, so that rate() sees a series go from 0 to 1.
  for (size_t c = 1; c < kCodeSlots; ++c) {
    const uint64_t n = errors_[c].load(std::memory_order_relaxed);
    if (c == kCodeSlots - 1 && n == 0) continue;  // codes this daemon does not know
    const std::string_view code =
        c < kCodeSlots - 1 ? to_string(static_cast<Errc>(c)) : std::string_view("unknown");
    out.sample("vknode_request_errors_total", PrometheusText::label("code", code),
               static_cast<double>(n));
  }
  out.family("vknode_request_duration_seconds", "histogram",
             "Time from reading a request to its reply.");
  uint64_t cumulative = 0;
  for (size_t b = 0; b <= kLatencyBounds.size(); ++b) {
    cumulative += latency_buckets_[b].load(std::memory_order_relaxed);
    const double le = b < kLatencyBounds.size() ? kLatencyBounds[b] : INFINITY;
    out.sample("vknode_request_duration_seconds_bucket", PrometheusText::label("le", number(le)),
               static_cast<double>(cumulative));
  }
  out.sample("vknode_request_duration_seconds_sum", "",
             static_cast<double>(latency_sum_ns_.load(std::memory_order_relaxed)) * 1e-9);
  out.sample("vknode_request_duration_seconds_count", "",
             static_cast<double>(latency_count_.load(std::memory_order_relaxed)));
}

}  // namespace vkn::server
