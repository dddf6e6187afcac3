// The commands that talk to a running daemon: status, ping, buffers, kernels, stop.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "cli_output.h"
#include "command.h"
#include "protocol/messages.h"
#include "util/sha256.h"
#include "util/strformat.h"
#include "vknode/client/client.h"

namespace vkn::cli {
namespace {

struct CommonOptions {
  std::string socket;
  bool json = false;
  bool all = false;
  int count = 1;
  uint32_t device = 0;  // the daemon's device node (`--device N`)
};

// Parses the options every client command shares; returns kExitOk to go on, or an exit code.
// `allow_all` also allows --device (both are for `vknode buffers`).
int parse_common(const char* command, const char* help, Args args, CommonOptions* o, bool allow_all,
                 bool allow_count) {
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string_view a = args[i];
    const bool has_value = i + 1 < args.size();
    if (a == "--help" || a == "-h") {
      std::fputs(help, stdout);
      return -1;
    } else if (a == "--socket" && has_value) {
      o->socket = args[++i];
    } else if (a == "--json") {
      o->json = true;
    } else if (a == "--all" && allow_all) {
      o->all = true;
    } else if ((a == "--count" || a == "-c") && has_value && allow_count) {
      o->count = std::max(1, std::atoi(args[++i]));
    } else if (a == "--device" && has_value && allow_all) {
      char* end = nullptr;
      const unsigned long v = std::strtoul(args[++i], &end, 10);
      if (end == args[i] || *end != '\0' || v > UINT32_MAX) {
        std::fprintf(stderr, "vknode %s: --device takes a device node index (see vknode status)\n",
                     command);
        return kExitUsage;
      }
      o->device = static_cast<uint32_t>(v);
    } else {
      std::fprintf(stderr, "vknode %s: unknown or incomplete option '%s'\n\n%s", command, args[i],
                   help);
      return kExitUsage;
    }
  }
  return kExitOk;
}

std::unique_ptr<Client> connect_or_report(const char* command, const CommonOptions& o,
                                          int* exit_code) {
  ClientOptions co;
  co.socket_path = o.socket;
  co.name = std::string("vknode ") + command;
  co.device = o.device;
  auto c = Client::connect(co);
  if (!c) {
    std::fprintf(stderr, "vknode %s: %s\n", command, c.error().to_string().c_str());
    *exit_code = c.error().code == Errc::node_dead || c.error().code == Errc::not_found
                     ? kExitNoDaemon
                     : kExitFailure;
    return nullptr;
  }
  return std::move(*c);
}

int report(const char* command, const Error& e) {
  std::fprintf(stderr, "vknode %s: %s\n", command, e.to_string().c_str());
  return e.code == Errc::node_dead ? kExitNoDaemon : kExitFailure;
}

constexpr const char* kExitCodes =
    "\nexit codes: 0 ok, 1 failure, 2 bad usage, 3 no daemon running.\n";

void status_json(const DaemonStatus& s) {
  JsonWriter j;
  j.begin_object()
      .field("live", s.live)
      .field("ready", s.ready)
      .field("daemon_version", s.daemon_version)
      .field("protocol_version", static_cast<uint64_t>(s.protocol_version))
      .field("pid", s.pid)
      .field("daemon_uid", s.daemon_uid)
      .field("socket", s.socket_path)
      .field("state_dir", s.state_dir)
      .field("uptime_ms", static_cast<uint64_t>(s.uptime.count()))
      .field("connections", s.connections)
      .field("queued_requests", s.queued_requests)
      .field("running_requests", s.running_requests)
      .field("requests", s.requests)
      .field("request_errors", s.request_errors)
      .field("rejected_quota", s.rejected_quota)
      .field("snapshots", s.snapshots)
      .field("last_snapshot_error", s.last_snapshot_error);
  j.begin_array("devices");
  for (size_t i = 0; i < s.devices.size(); ++i) {
    const NodeStatus& d = s.devices[i];
    j.begin_object()
        .field("index", static_cast<uint64_t>(i))
        .field("node", d.name)
        .field("health", protocol::health_name(d.health))
        .field("device", d.device_name)
        .field("device_uuid", d.device_uuid)
        .field("uptime_ms", static_cast<uint64_t>(d.uptime.count()))
        .field("exec_count", d.exec_count)
        .field("inline_execs", d.inline_execs)
        .field("job_count", d.job_count)
        .field("queue_depth", d.queue_depth)
        .field("timeouts", d.timeouts)
        .field("errors", d.errors)
        .field("restarts", d.restarts)
        .field("device_resets", d.device_resets)
        .field("registry_bytes", d.registry_bytes)
        .field("registry_budget", d.registry_budget)
        .field("buffer_count", d.buffer_count)
        .field("kernel_count", d.kernel_count)
        .field("quarantined_kernels", d.quarantined_kernels)
        .field("cache_hits", d.cache_hits)
        .field("cache_misses", d.cache_misses)
        .field("cache_bytes", d.cache_bytes)
        .field("cache_path", d.cache_path)
        .field("last_error", d.last_error)
        .end_object();
  }
  j.end_array();
  const UserUsage& u = s.usage;
  j.begin_object("usage")
      .field("uid", u.uid)
      .field("bytes", u.bytes)
      .field("buffers", u.buffers)
      .field("queued", u.queued)
      .field("kernels", u.kernels)
      .field("quota_bytes", u.quota_bytes)
      .field("quota_buffers", u.quota_buffers)
      .field("quota_queued", u.quota_queued)
      .end_object();
  j.end_object();
  std::puts(j.str().c_str());
}

void status_table(const DaemonStatus& s) {
  std::printf("vknode daemon %s (protocol %u), pid %u, uid %u, up %s\n", s.daemon_version.c_str(),
              s.protocol_version, s.pid, s.daemon_uid, human_duration_ms(s.uptime.count()).c_str());
  std::printf("  live %-4s ready %s\n", s.live ? "yes" : "no", s.ready ? "yes" : "no");
  std::printf("  socket     %s\n  state dir  %s\n", s.socket_path.c_str(), s.state_dir.c_str());
  std::printf("  clients    %llu connected, %llu queued, %llu running\n",
              static_cast<unsigned long long>(s.connections),
              static_cast<unsigned long long>(s.queued_requests),
              static_cast<unsigned long long>(s.running_requests));
  std::printf("  requests   %llu answered, %llu errors, %llu over quota\n",
              static_cast<unsigned long long>(s.requests),
              static_cast<unsigned long long>(s.request_errors),
              static_cast<unsigned long long>(s.rejected_quota));
  std::printf("  snapshots  %llu written%s%s\n", static_cast<unsigned long long>(s.snapshots),
              s.last_snapshot_error.empty() ? "" : ", last error: ", s.last_snapshot_error.c_str());
  std::puts("");
  // One row per device node; `#` is the index clients name (--device, RequestOptions).
  std::puts(vkn::format("  {:>2} {:<22} {:<10} {:<28} {:>8} {:>8} {:>6} {:>8} {:>20} {:>14}", "#",
                        "node", "health", "device", "execs", "errors", "resets", "buffers",
                        "registry", "cache hit/miss")
                .c_str());
  for (size_t i = 0; i < s.devices.size(); ++i) {
    const NodeStatus& d = s.devices[i];
    std::puts(vkn::format("  {:>2} {:<22} {:<10} {:<28} {:>8} {:>8} {:>6} {:>8} {:>20} {:>14}", i,
                          d.name, protocol::health_name(d.health), d.device_name.substr(0, 28),
                          d.exec_count, d.errors, d.device_resets, d.buffer_count,
                          human_bytes(d.registry_bytes) + " / " + human_bytes(d.registry_budget),
                          vkn::format("{}/{}", d.cache_hits, d.cache_misses))
                  .c_str());
    std::printf("     uuid %s\n", d.device_uuid.c_str());
    if (!d.last_error.empty()) std::printf("     last error: %s\n", d.last_error.c_str());
  }
  const UserUsage& u = s.usage;
  std::printf(
      "\n  you (uid %u): %llu buffers of %llu, %s of %s, %llu requests in flight of %llu, %llu "
      "kernels\n",
      u.uid, static_cast<unsigned long long>(u.buffers),
      static_cast<unsigned long long>(u.quota_buffers), human_bytes(u.bytes).c_str(),
      u.quota_bytes ? human_bytes(u.quota_bytes).c_str() : "the node's budget",
      static_cast<unsigned long long>(u.queued), static_cast<unsigned long long>(u.quota_queued),
      static_cast<unsigned long long>(u.kernels));
}

}  // namespace

int status_command(Args args) {
  static constexpr const char* kHelp =
      "usage: vknode status [--json] [--socket PATH]\n\n"
      "Shows the daemon's health (live, ready, per-device state), its clients and\n"
      "requests, and your usage against your quotas.";
  CommonOptions o;
  if (int r = parse_common("status", kHelp, args, &o, false, false); r != kExitOk) {
    if (r < 0) std::fputs(kExitCodes, stdout);
    return r < 0 ? kExitOk : r;
  }
  int code = kExitOk;
  auto client = connect_or_report("status", o, &code);
  if (!client) {
    if (o.json) std::puts("{\"live\":false,\"ready\":false}");
    return code;
  }
  auto s = client->status();
  if (!s) return report("status", s.error());
  if (o.json) {
    status_json(*s);
  } else {
    status_table(*s);
  }
  return s->ready ? kExitOk : kExitFailure;
}

int ping_command(Args args) {
  static constexpr const char* kHelp =
      "usage: vknode ping [--count N] [--socket PATH]\n\n"
      "Sends N pings (default 1) to the daemon and prints each round trip.";
  CommonOptions o;
  if (int r = parse_common("ping", kHelp, args, &o, false, true); r != kExitOk) {
    if (r < 0) std::fputs(kExitCodes, stdout);
    return r < 0 ? kExitOk : r;
  }
  int code = kExitOk;
  auto client = connect_or_report("ping", o, &code);
  if (!client) return code;
  for (int i = 0; i < o.count; ++i) {
    const auto start = std::chrono::steady_clock::now();
    if (auto r = client->ping(RequestOptions{std::chrono::seconds(5)}); !r)
      return report("ping", r.error());
    const double us =
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count();
    std::printf("pong from pid %u: %.1f us\n", client->daemon().daemon_pid, us);
  }
  return kExitOk;
}

int buffers_command(Args args) {
  static constexpr const char* kHelp =
      "usage: vknode buffers [--all] [--device N] [--json] [--socket PATH]\n\n"
      "Lists your buffers on the daemon's device node N (default 0; `vknode status` lists\n"
      "the nodes). --all: every user's, for root or the daemon's user.";
  CommonOptions o;
  if (int r = parse_common("buffers", kHelp, args, &o, true, false); r != kExitOk) {
    if (r < 0) std::fputs(kExitCodes, stdout);
    return r < 0 ? kExitOk : r;
  }
  int code = kExitOk;
  auto client = connect_or_report("buffers", o, &code);
  if (!client) return code;
  auto list = client->list_buffers(o.all);
  if (!list) return report("buffers", list.error());
  if (o.json) {
    JsonWriter j;
    j.begin_array();
    for (const BufferListEntry& e : *list) {
      j.begin_object()
          .field("name", e.info.name)
          .field("bytes", e.info.spec.bytes)
          .field("element", protocol::element_type_name(e.info.spec.element))
          .field("durable", e.info.spec.durable)
          .field("session", e.session)
          .field("lost", e.info.lost)
          .field("writes", e.info.writes)
          .field("owner_uid", e.owner_uid);
      j.begin_array("shape");
      for (uint64_t d : e.info.spec.shape) j.field("", d);
      j.end_array().end_object();
    }
    j.end_array();
    std::puts(j.str().c_str());
    return kExitOk;
  }
  std::puts(vkn::format("{:<40} {:>12} {:<6} {:<9} {:>8} {:>8}", "name", "bytes", "type",
                        "lifetime", "writes", "owner")
                .c_str());
  for (const BufferListEntry& e : *list) {
    const char* life = e.info.spec.durable ? "durable" : e.session ? "session" : "daemon";
    std::puts(vkn::format("{:<40} {:>12} {:<6} {:<9} {:>8} {:>8}{}", e.info.name, e.info.spec.bytes,
                          protocol::element_type_name(e.info.spec.element), life, e.info.writes,
                          e.owner_uid, e.info.lost ? "  LOST" : "")
                  .c_str());
  }
  return kExitOk;
}

int kernels_command(Args args) {
  static constexpr const char* kHelp =
      "usage: vknode kernels [--json] [--socket PATH]\n\n"
      "Lists the kernels you may dispatch through the daemon: the built-ins and yours.";
  CommonOptions o;
  if (int r = parse_common("kernels", kHelp, args, &o, false, false); r != kExitOk) {
    if (r < 0) std::fputs(kExitCodes, stdout);
    return r < 0 ? kExitOk : r;
  }
  int code = kExitOk;
  auto client = connect_or_report("kernels", o, &code);
  if (!client) return code;
  auto list = client->list_kernels();
  if (!list) return report("kernels", list.error());
  if (o.json) {
    JsonWriter j;
    j.begin_array();
    for (const KernelEntry& k : *list) {
      j.begin_object().field("id", to_hex(std::span<const uint8_t>(k.id))).field("name", k.name);
      j.field("builtin", k.builtin).end_object();
    }
    j.end_array();
    std::puts(j.str().c_str());
    return kExitOk;
  }
  for (const KernelEntry& k : *list) {
    std::printf("%s  %-8s %s\n", to_hex(std::span<const uint8_t>(k.id)).c_str(),
                k.builtin ? "builtin" : "yours", k.name.c_str());
  }
  return kExitOk;
}

int stop_command(Args args) {
  static constexpr const char* kHelp =
      "usage: vknode stop [--socket PATH]\n\n"
      "Asks the daemon to stop as on SIGTERM (root or the daemon's user only), and waits\n"
      "until it has gone.";
  CommonOptions o;
  if (int r = parse_common("stop", kHelp, args, &o, false, false); r != kExitOk) {
    if (r < 0) std::fputs(kExitCodes, stdout);
    return r < 0 ? kExitOk : r;
  }
  int code = kExitOk;
  auto client = connect_or_report("stop", o, &code);
  if (!client) return code;
  if (auto r = client->shutdown(); !r) return report("stop", r.error());
  // Wait for the socket to go away (the daemon finishes work and snapshots first).
  for (int i = 0; i < 600; ++i) {
    ClientOptions co;
    co.socket_path = o.socket;
    co.connect_timeout = std::chrono::milliseconds(100);
    if (!Client::connect(co)) return kExitOk;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::fputs("vknode stop: the daemon is still running after 60 s\n", stderr);
  return kExitFailure;
}

}  // namespace vkn::cli
