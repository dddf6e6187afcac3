#include "server/daemon_bench.h"

#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include "server/server.h"
#include "util/strformat.h"
#include "vknode/client/client.h"
#include "vknode/gpu/builtin_kernels.h"

namespace vkn::server {
namespace {

using Clock = std::chrono::steady_clock;

struct Stats {
  double p50_us = 0, p99_us = 0, mean_us = 0;
};

Stats stats_of(std::vector<double> us) {
  Stats s;
  if (us.empty()) return s;
  std::sort(us.begin(), us.end());
  s.p50_us = us[us.size() / 2];
  s.p99_us = us[std::min(us.size() - 1, us.size() * 99 / 100)];
  double sum = 0;
  for (double v : us) sum += v;
  s.mean_us = sum / us.size();
  return s;
}

template <typename Fn>
Stats time_calls(int n, Fn&& fn) {
  std::vector<double> us;
  us.reserve(n);
  for (int i = 0; i < n; ++i) {
    const auto start = Clock::now();
    if (!fn()) return {};
    us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - start).count());
  }
  return stats_of(std::move(us));
}

// Best of `reps` GB/s of fn() moving `bytes`.
template <typename Fn>
double best_gbps(int reps, uint64_t bytes, Fn&& fn) {
  double best = 0;
  for (int i = 0; i < reps; ++i) {
    const auto start = Clock::now();
    if (!fn()) return 0;
    const double s = std::chrono::duration<double>(Clock::now() - start).count();
    best = std::max(best, bytes / s / 1e9);
  }
  return best;
}

std::vector<std::byte> push_of(const FillPush& p) {
  std::vector<std::byte> out(sizeof(p));
  std::memcpy(out.data(), &p, sizeof(p));
  return out;
}

struct Report {
  std::vector<std::pair<std::string, std::string>> rows;  // label, value
  std::string json = "{";
  void add(const std::string& key, const std::string& label, double value, const char* unit,
           int precision = 1) {
    const std::string v = precision == 0   ? vkn::format("{:.0f}", value)
                          : precision == 2 ? vkn::format("{:.2f}", value)
                                           : vkn::format("{:.1f}", value);
    rows.emplace_back(label, v + " " + unit);
    if (json.size() > 1) json += ",";
    json += "\"" + key + "\":" + vkn::format("{:.3f}", value);
  }
};

}  // namespace

int run_daemon_bench(const DaemonBenchOptions& options) {
  char tmpl[] = "/tmp/vknode-bench-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) return 1;
  const std::filesystem::path dir = tmpl;
  ServerOptions so;
  so.socket_path = (dir / "vknode.sock").native();
  so.state_dir = dir / "state";
  so.snapshot_interval = std::chrono::milliseconds(0);
  so.node.device_selector = options.device_selector;
  so.quota.per_client_queued = 64;
  if (options.spin_us >= 0) so.spin = std::chrono::microseconds(options.spin_us);
  auto server = Server::create(so);
  if (!server) {
    std::fprintf(stderr, "bench-daemon: %s\n", server.error().to_string().c_str());
    return 1;
  }
  std::thread serving([&] { (void)(*server)->run(); });
  int rc = 0;
  Report report;
  auto fail_step = [&](const char* what, const Error& e) {
    std::fprintf(stderr, "bench-daemon: %s: %s\n", what, e.to_string().c_str());
    rc = 1;
  };

  do {
    ClientOptions co;
    co.socket_path = so.socket_path;
    co.name = "bench";
    if (options.spin_us >= 0) co.spin = std::chrono::microseconds(options.spin_us);
    auto c = Client::connect(co);
    if (!c) {
      fail_step("connect", c.error());
      break;
    }
    Client& client = **c;
    CallOptions local;
    local.node = (*server)->node_name();
    auto status = client.status();
    const std::string device =
        status && !status->devices.empty() ? status->devices[0].device_name : "?";
    const int n = options.quick ? 300 : 3000;

    // 1. Ping.
    const Stats ping = time_calls(n, [&] { return client.ping().has_value(); });
    report.add("ping_p50_us", "ping round trip p50", ping.p50_us, "us");
    report.add("ping_p99_us", "ping round trip p99", ping.p99_us, "us");

    // 2. Tiny dispatch: fill 256 u32, through the daemon and in-process on the same node.
    if (auto r = client.create_buffer("tiny", BufferSpec{1024}); !r) {
      fail_step("create", r.error());
      break;
    }
    auto fill = client.builtin_kernel_id(BuiltinKernel::fill_u32);
    if (!fill) {
      fail_step("builtin", fill.error());
      break;
    }
    auto tiny = [&](const std::string& name) {
      Program p;
      p.steps.push_back(
          DispatchStep{*fill, {NamedBinding{0, name, 0, 0}}, push_of(FillPush{256, 1}), {1, 1, 1}});
      return p;
    };
    const Program via_daemon = tiny("tiny");
    const Program in_process = tiny(vkn::format("u{}/tiny", ::getuid()));  // the same buffer
    const int dn = options.quick ? 200 : 2000;
    (void)time_calls(20, [&] { return client.exec(via_daemon).has_value(); });  // warm up
    const Stats local_exec =
        time_calls(dn, [&] { return vkn::exec(in_process, local).has_value(); });
    const Stats daemon_exec = time_calls(dn, [&] { return client.exec(via_daemon).has_value(); });
    report.add("exec_inproc_p50_us", "tiny dispatch in-process p50", local_exec.p50_us, "us");
    report.add("exec_inproc_p99_us", "tiny dispatch in-process p99", local_exec.p99_us, "us");
    report.add("exec_daemon_p50_us", "tiny dispatch via daemon p50", daemon_exec.p50_us, "us");
    report.add("exec_daemon_p99_us", "tiny dispatch via daemon p99", daemon_exec.p99_us, "us");
    report.add("exec_overhead_p50_us", "daemon overhead p50 (target <= 15)",
               daemon_exec.p50_us - local_exec.p50_us, "us");

    // 3. Large transfers through shared memory beside in-process.
    const uint64_t big = options.quick ? (32ull << 20) : (256ull << 20);
    const int reps = options.quick ? 2 : 3;
    if (auto r = client.create_buffer("big", BufferSpec{big}); !r) {
      fail_step("create big", r.error());
      break;
    }
    const std::string big_local = vkn::format("u{}/big", ::getuid());
    std::vector<std::byte> data(big, std::byte{0x3c});
    std::vector<std::byte> out(big);
    auto shared = SharedBuffer::create(big);
    if (!shared) {
      fail_step("shared buffer", shared.error());
      break;
    }
    std::memset(shared->bytes().data(), 0x3c, big);
    const double w_local = best_gbps(
        reps, big, [&] { return vkn::write_buffer(big_local, 0, data, local).has_value(); });
    const double w_shared =
        best_gbps(reps, big, [&] { return client.write_buffer("big", 0, *shared).has_value(); });
    const double w_copy =
        best_gbps(reps, big, [&] { return client.write_buffer("big", 0, data).has_value(); });
    const double r_local = best_gbps(reps, big, [&] {
      return vkn::read_buffer_into(big_local, 0, out, nullptr, local).has_value();
    });
    const double r_shared =
        best_gbps(reps, big, [&] { return client.read_buffer("big", 0, *shared).has_value(); });
    const double r_copy =
        best_gbps(reps, big, [&] { return client.read_buffer_into("big", 0, out).has_value(); });
    const std::string mib = vkn::format("{} MiB", big >> 20);
    report.add("write_inproc_gbps", "write " + mib + " in-process", w_local, "GB/s", 2);
    report.add("write_daemon_gbps", "write " + mib + " via daemon, SharedBuffer", w_shared, "GB/s",
               2);
    report.add("write_ratio_pct", "  daemon/in-process (target >= 80)",
               100 * w_shared / std::max(w_local, 1e-9), "%", 0);
    report.add("write_daemon_copy_gbps", "write " + mib + " via daemon, from a vector", w_copy,
               "GB/s", 2);
    report.add("read_inproc_gbps", "read " + mib + " in-process", r_local, "GB/s", 2);
    report.add("read_daemon_gbps", "read " + mib + " via daemon, SharedBuffer", r_shared, "GB/s",
               2);
    report.add("read_ratio_pct", "  daemon/in-process (target >= 80)",
               100 * r_shared / std::max(r_local, 1e-9), "%", 0);
    report.add("read_daemon_copy_gbps", "read " + mib + " via daemon, into a vector", r_copy,
               "GB/s", 2);
    (void)client.delete_buffer("big");
    data = {};
    out = {};
    shared = SharedBuffer::create(0);

    // 4. Concurrent clients: each its own connection, tiny execs for a fixed time.
    const uint32_t k = options.clients;
    const auto run_for =
        options.quick ? std::chrono::milliseconds(1000) : std::chrono::milliseconds(3000);
    std::vector<uint64_t> done(k, 0);
    std::atomic<int> ready{0};
    std::atomic<bool> go{false}, stop{false}, failed{false};
    std::vector<std::thread> threads;
    for (uint32_t i = 0; i < k; ++i) {
      threads.emplace_back([&, i] {
        auto cc = Client::connect(co);
        const std::string name = vkn::format("c{}", i);
        if (!cc || !(*cc)->create_buffer(name, BufferSpec{1024})) {
          failed = true;
          ready.fetch_add(1);
          return;
        }
        const Program p = tiny(name);
        ready.fetch_add(1);
        while (!go.load()) std::this_thread::yield();
        while (!stop.load()) {
          if (!(*cc)->exec(p)) {
            failed = true;
            return;
          }
          ++done[i];
        }
      });
    }
    while (ready.load() < static_cast<int>(k))
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    const auto start = Clock::now();
    go = true;
    std::this_thread::sleep_for(run_for);
    stop = true;
    for (auto& t : threads) t.join();
    const double secs = std::chrono::duration<double>(Clock::now() - start).count();
    uint64_t total = 0, slowest = UINT64_MAX;
    for (uint64_t d : done) {
      total += d;
      slowest = std::min(slowest, d);
    }
    if (failed) std::fputs("bench-daemon: some concurrent clients failed\n", stderr);
    report.add("concurrent_clients", "concurrent clients", k, "", 0);
    report.add("concurrent_execs_per_s", "  total tiny dispatches", total / secs, "/s", 0);
    report.add("single_client_execs_per_s", "  one client alone (from p50)",
               1e6 / std::max(daemon_exec.p50_us, 1e-9), "/s", 0);
    report.add("slowest_client_share_pct", "  slowest client's share of a fair 1/N",
               100.0 * slowest * k / std::max<uint64_t>(total, 1), "%", 0);

    std::printf("vknode daemon benchmark on %s%s, %u hardware threads, spin %s\n\n", device.c_str(),
                options.quick ? " (quick)" : "", std::thread::hardware_concurrency(),
                options.spin_us >= 0 ? vkn::format("{} us", options.spin_us).c_str() : "default");
    for (const auto& [label, value] : report.rows)
      std::printf("  %-44s %16s\n", label.c_str(), value.c_str());
    report.json += ",\"device\":\"" + device + "\"}";
    if (!options.json_path.empty()) std::ofstream(options.json_path) << report.json << "\n";
  } while (false);

  (*server)->request_stop();
  serving.join();
  server->reset();
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  return rc;
}

}  // namespace vkn::server
