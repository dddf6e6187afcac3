// The daemon's Prometheus page (docs/daemon.md, "Metrics"): the request counters of
// Metrics, then gauges and counters read at scrape time from the queue, the user
// table and each device node's status. Runs on the metrics endpoint's thread, so it
// reads only what is safe from any thread (atomics, mutex-guarded tables, node status).
#include "protocol/messages.h"
#include "server/server_impl.h"
#include "util/strformat.h"

namespace vkn::server {

std::string Server::Impl::render_metrics() {
  PrometheusText out;
  metrics_.render(out);
  auto gauge = [&](std::string_view name, std::string_view help, double value) {
    out.family(name, "gauge", help);
    out.sample(name, "", value);
  };
  gauge("vknode_uptime_seconds", "Seconds since the daemon started.",
        std::chrono::duration<double>(Clock::now() - started_).count());
  gauge("vknode_clients_connected", "Client connections open now.",
        static_cast<double>(connection_count_.load()));
  gauge("vknode_queue_depth", "Requests waiting in the daemon's fair queues.",
        static_cast<double>(queue_.size()));
  gauge("vknode_requests_running", "Requests a worker is running now.",
        static_cast<double>(running_.load()));
  const auto [buffers, bytes] = users_.totals();
  gauge("vknode_buffers", "Buffers that clients hold, on every device node.",
        static_cast<double>(buffers));
  gauge("vknode_buffer_bytes", "Bytes of the buffers that clients hold, on every device node.",
        static_cast<double>(bytes));
  out.family("vknode_snapshots_total", "counter", "Durable-buffer snapshots written.");
  out.sample("vknode_snapshots_total", "", static_cast<double>(snapshots_.load()));

  // Per device node, labelled by its index (the protocol's device field), and for
  // readability by the device's name and UUID on the ready gauge.
  std::vector<NodeStatus> devices;  // one per backend, so its index is the device index
  for (const auto& b : backends_) {
    auto of_node = b->status();
    devices.push_back(of_node.empty() ? NodeStatus{} : std::move(of_node.front()));
  }
  struct PerDevice {
    const char* name;
    const char* type;
    const char* help;
    double (*value)(const NodeStatus&);
  };
  const PerDevice families[] = {
      {"vknode_device_registry_bytes", "gauge", "Bytes in the device node's buffer registry.",
       [](const NodeStatus& d) { return static_cast<double>(d.registry_bytes); }},
      {"vknode_device_registry_budget_bytes", "gauge", "The device node's registry budget.",
       [](const NodeStatus& d) { return static_cast<double>(d.registry_budget); }},
      {"vknode_device_buffers", "gauge", "Buffers in the device node's registry.",
       [](const NodeStatus& d) { return static_cast<double>(d.buffer_count); }},
      {"vknode_device_queue_depth", "gauge", "Jobs queued on the device node.",
       [](const NodeStatus& d) { return static_cast<double>(d.queue_depth); }},
      {"vknode_device_execs_total", "counter", "Programs the device node ran.",
       [](const NodeStatus& d) { return static_cast<double>(d.exec_count); }},
      {"vknode_device_errors_total", "counter", "Jobs of the device node that failed.",
       [](const NodeStatus& d) { return static_cast<double>(d.errors); }},
      {"vknode_device_resets_total", "counter", "Device rebuilds after loss or a hang.",
       [](const NodeStatus& d) { return static_cast<double>(d.device_resets); }},
      {"vknode_pipeline_cache_hits_total", "counter", "Pipelines found in the pipeline cache.",
       [](const NodeStatus& d) { return static_cast<double>(d.cache_hits); }},
      {"vknode_pipeline_cache_misses_total", "counter", "Pipelines compiled afresh.",
       [](const NodeStatus& d) { return static_cast<double>(d.cache_misses); }},
  };
  out.family("vknode_device_ready", "gauge",
             "1 when the device node accepts work (health ready), else 0.");
  for (size_t i = 0; i < devices.size(); ++i) {
    const NodeStatus& d = devices[i];
    out.sample("vknode_device_ready",
               vkn::format("{},{},{},{}", PrometheusText::label("device", vkn::format("{}", i)),
                           PrometheusText::label("name", d.device_name),
                           PrometheusText::label("uuid", d.device_uuid),
                           PrometheusText::label("health", protocol::health_name(d.health))),
               d.health == NodeHealth::ready ? 1 : 0);
  }
  for (const PerDevice& f : families) {
    out.family(f.name, f.type, f.help);
    for (size_t i = 0; i < devices.size(); ++i) {
      out.sample(f.name, PrometheusText::label("device", vkn::format("{}", i)),
                 f.value(devices[i]));
    }
  }
  return out.text();
}

}  // namespace vkn::server
