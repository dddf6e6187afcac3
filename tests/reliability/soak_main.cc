// vknode_soak: a bounded soak of the daemon on a real node (lavapipe in CI). Many
// clients run a mixed workload for a fixed time while a fault thread loses the device
// now and then; invariants are checked as it runs and the figures printed at the end
// (see docs/reliability.md, "Soak").
//
//   vknode_soak [--seconds N] [--clients N] [--fault-every-ms N] [--json FILE]
//
// Invariants (any breach is a violation and fails the run):
//  - every durable buffer reads back exactly as last written (a write that failed
//    leaves either all old or all new bytes, never a mix), also after the daemon is
//    stopped and started again from its snapshot;
//  - every error is one the operation may give (device_lost around injected faults,
//    node_timeout for calls with a deadline, kernel_quarantined after timeouts);
//  - open descriptors return to their starting count after the clients are gone;
//  - resident memory stays bounded (growth after warm-up below --rss-growth-mib).
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "process_stats.h"
#include "server/server.h"
#include "vknode/client/client.h"
#include "vknode/gpu/builtin_kernels.h"
#include "vknode/node/node.h"

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using namespace vkn;

struct Config {
  int seconds = 60;
  int clients = 8;
  int fault_every_ms = 5000;
  uint64_t rss_growth_mib = 128;
  std::string json;
};

enum Op { kPing, kWriteDurable, kReadDurable, kExec, kExecDeadline, kChurn, kList, kRegister, kReconnect, kOps };
const char* kOpNames[kOps] = {"ping", "write_durable", "read_durable", "exec", "exec_deadline",
                              "churn", "list", "register", "reconnect"};

struct Totals {
  std::mutex mu;
  std::vector<double> latency_ms[kOps];
  uint64_t requests = 0;
  uint64_t ok = 0;
  uint64_t device_lost = 0;
  uint64_t timeouts = 0;
  uint64_t quarantined = 0;
  uint64_t violations = 0;
  uint64_t durable_checks = 0;
  uint64_t failed_writes_resolved = 0;
  std::vector<std::string> violation_text;
};

std::vector<std::byte> random_bytes(std::mt19937_64& rng, size_t n) {
  std::vector<std::byte> v(n);
  for (size_t i = 0; i < n; i += 8) {
    const uint64_t x = rng();
    std::memcpy(v.data() + i, &x, std::min<size_t>(8, n - i));
  }
  return v;
}

std::vector<std::byte> push_of(const auto& p) {
  std::vector<std::byte> out(sizeof p);
  std::memcpy(out.data(), &p, sizeof p);
  return out;
}

class Soak {
 public:
  Soak(Config cfg, std::filesystem::path dir) : cfg_(std::move(cfg)), dir_(std::move(dir)) {}

  server::ServerOptions options() const {
    server::ServerOptions o;
    o.socket_path = (dir_ / "vknode.sock").native();
    o.state_dir = dir_ / "state";
    o.socket_mode = 0600;
    o.snapshot_interval = 2s;
    o.node.cache_dir = dir_ / "cache";
    o.node.hang_limit = 10s;
    o.node.quarantine_after = 1000;  // deadlines here are the client's, not a bad kernel
    return o;
  }

  bool start_server() {
    auto s = server::Server::create(options());
    if (!s) {
      std::fprintf(stderr, "soak: server: %s\n", s.error().to_string().c_str());
      return false;
    }
    server_ = std::move(*s);
    thread_ = std::thread([this] { (void)server_->run(); });
    return true;
  }
  void stop_server() {
    server_->request_stop();
    thread_.join();
    server_.reset();
  }

  Result<std::unique_ptr<Client>> connect() {
    ClientOptions o;
    o.socket_path = (dir_ / "vknode.sock").native();
    o.name = "soak";
    o.default_timeout = 60s;
    return Client::connect(o);
  }

  void violation(const std::string& what) {
    std::lock_guard lock(t_.mu);
    ++t_.violations;
    if (t_.violation_text.size() < 20) t_.violation_text.push_back(what);
    std::fprintf(stderr, "soak: VIOLATION: %s\n", what.c_str());
  }

  // Counts a finished call; false for an error the operation may not give.
  bool note(Op op, double ms, const Error* e, bool deadline) {
    std::lock_guard lock(t_.mu);
    ++t_.requests;
    t_.latency_ms[op].push_back(ms);
    if (e == nullptr) {
      ++t_.ok;
      return true;
    }
    switch (e->code) {
      case Errc::device_lost: ++t_.device_lost; return true;
      case Errc::node_timeout: ++t_.timeouts; return deadline;
      case Errc::kernel_quarantined: ++t_.quarantined; return true;
      default: return false;
    }
  }

  void client_main(int index) {
    std::mt19937_64 rng(1234 + index);
    auto c = connect();
    if (!c) return violation("connect: " + c.error().to_string());
    std::unique_ptr<Client> client = std::move(*c);
    const std::string tag = "c" + std::to_string(index);
    // Durable buffers this client owns and what they must hold.
    std::map<std::string, std::vector<std::byte>> expected;
    for (int d = 0; d < 2; ++d) {
      const std::string name = tag + "-dur" + std::to_string(d);
      const size_t bytes = d == 0 ? 4096 : 65536;
      if (auto r = client->create_buffer(name, BufferSpec{bytes, ElementType::bytes, {}, true}); !r) {
        return violation("create " + name + ": " + r.error().to_string());
      }
      expected[name] = std::vector<std::byte>(bytes);
      auto init = random_bytes(rng, bytes);
      if (auto r = client->write_buffer(name, 0, init); r) expected[name] = init;
    }
    // A session buffer per connection (the old one is freed when its connection closes).
    int generation = 0;
    std::string scratch = tag + "-scratch0";
    bool scratch_ok = false;  // false after a create that failed (e.g. a lost device)
    auto make_scratch = [&] {
      auto r = client->create_buffer(scratch, BufferSpec{16384}, BufferScope::session);
      scratch_ok = r.has_value();
      return r;
    };
    if (auto r = make_scratch(); !r) return violation("create scratch: " + r.error().to_string());
    auto fill_id = client->builtin_kernel_id(BuiltinKernel::fill_u32);
    auto spin_id = client->builtin_kernel_id(BuiltinKernel::spin);
    if (!fill_id || !spin_id) return violation("builtin ids");
    uint64_t churn = 0;

    while (Clock::now() < end_) {
      const Op op = static_cast<Op>(std::discrete_distribution<int>({10, 15, 20, 20, 6, 10, 5, 4, 2})(rng));
      if (!scratch_ok && (op == kExec || op == kExecDeadline)) {
        (void)client->delete_buffer(scratch);
        if (!make_scratch()) continue;
      }
      const auto t0 = Clock::now();
      std::optional<Error> err;
      bool deadline = false;
      switch (op) {
        case kPing: {
          if (auto r = client->ping(RequestOptions{200ms}); !r) err = r.error();
          deadline = true;
          break;
        }
        case kWriteDurable: {
          auto it = std::next(expected.begin(), static_cast<long>(rng() % expected.size()));
          auto data = random_bytes(rng, it->second.size());
          auto r = client->write_buffer(it->first, 0, data);
          if (r) {
            it->second = std::move(data);
          } else {
            err = r.error();
            // Resolve: the buffer holds the old bytes or the new ones, entirely.
            auto back = client->read_buffer(it->first);
            if (!back && back.error().code == Errc::device_lost) back = client->read_buffer(it->first);
            if (!back) {
              violation("read after failed write of " + it->first + ": " + back.error().to_string());
            } else if (*back == data) {
              it->second = std::move(data);
            } else if (*back != it->second) {
              violation("torn write: " + it->first + " holds neither old nor new bytes after " + r.error().to_string());
              it->second = *back;
            }
            std::lock_guard lock(t_.mu);
            ++t_.failed_writes_resolved;
          }
          break;
        }
        case kReadDurable: {
          auto it = std::next(expected.begin(), static_cast<long>(rng() % expected.size()));
          auto r = client->read_buffer(it->first);
          if (!r) {
            err = r.error();
          } else {
            std::lock_guard lock(t_.mu);
            ++t_.durable_checks;
          }
          if (r && *r != it->second) violation("durable buffer " + it->first + " changed without a write");
          break;
        }
        case kExec: {
          const uint32_t value = static_cast<uint32_t>(rng());
          Program p;
          p.steps.push_back(DispatchStep{*fill_id, {NamedBinding{0, scratch, 0, 0}}, push_of(FillPush{4096, value}),
                                         {16, 1, 1}});
          p.steps.push_back(DownloadStep{scratch, 0, 16384});
          auto r = client->exec(p);
          if (!r) {
            err = r.error();
            if (err->code == Errc::device_lost) {  // a session buffer is not durable: make it again
              (void)client->delete_buffer(scratch);
              (void)make_scratch();
            }
          } else {
            const auto& d = r->downloads.at(0);
            for (size_t i = 0; i < d.size(); i += 4) {
              uint32_t v;
              std::memcpy(&v, d.data() + i, 4);
              if (v != value) {
                violation("exec: fill result wrong");
                break;
              }
            }
          }
          break;
        }
        case kExecDeadline: {
          Program p;
          p.steps.push_back(DispatchStep{*spin_id, {NamedBinding{0, scratch, 0, 0}},
                                         push_of(SpinPush{static_cast<uint32_t>(1000 + rng() % 200000), 1024}),
                                         {16, 1, 1}});
          auto r = client->exec(p, RequestOptions{std::chrono::milliseconds(1 + rng() % 20)});
          if (!r) err = r.error();
          deadline = true;
          break;
        }
        case kChurn: {
          const std::string name = tag + "-churn" + std::to_string(churn++ % 4);
          auto r = client->create_buffer(name, BufferSpec{1024 + rng() % 65536});
          if (!r && r.error().code == Errc::already_exists) r = client->delete_buffer(name);
          if (!r) err = r.error();
          break;
        }
        case kList: {
          auto r = client->list_buffers();
          if (!r) {
            err = r.error();
          } else {
            for (const auto& [name, bytes] : expected) {
              bool found = false;
              for (const auto& e : *r) found |= e.info.name == name;
              if (!found) violation("list_buffers lost durable buffer " + name);
            }
          }
          break;
        }
        case kRegister: {
          auto r = client->register_kernel(builtin_spirv(BuiltinKernel::copy_u32), {}, tag + "-copy");
          if (!r) err = r.error();
          break;
        }
        case kReconnect: {
          client.reset();
          auto again = connect();
          if (!again) {
            violation("reconnect: " + again.error().to_string());
            return;
          }
          client = std::move(*again);
          scratch = tag + "-scratch" + std::to_string(++generation);
          if (auto r = make_scratch(); !r) err = r.error();
          break;
        }
        default:
          break;
      }
      const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
      if (!note(op, ms, err ? &*err : nullptr, deadline)) {
        violation(std::string(kOpNames[op]) + ": unexpected " + err->to_string());
      }
    }
    std::lock_guard lock(expected_mu_);
    for (auto& [name, bytes] : expected) all_expected_[name] = std::move(bytes);
  }

  int run() {
    if (!start_server()) return 1;
    const int fds_start = reliability::open_fd_count();
    const auto started = Clock::now();
    end_ = started + std::chrono::seconds(cfg_.seconds);
    std::atomic<bool> done{false};
    uint64_t faults = 0, rss_warm = 0, rss_max = 0;
    int fds_max = 0;
    std::thread faulter([&] {
      auto next = Clock::now() + std::chrono::milliseconds(cfg_.fault_every_ms);
      while (!done.load()) {
        std::this_thread::sleep_for(20ms);
        if (cfg_.fault_every_ms <= 0 || Clock::now() < next) continue;
        next += std::chrono::milliseconds(cfg_.fault_every_ms);
        if (TEST_inject(server_->node_name(), 1, 0, 0)) ++faults;
      }
    });
    std::thread monitor([&] {
      while (!done.load()) {
        std::this_thread::sleep_for(250ms);
        const uint64_t rss = reliability::rss_kib();
        rss_max = std::max(rss_max, rss);
        fds_max = std::max(fds_max, reliability::open_fd_count());
        if (rss_warm == 0 && Clock::now() > started + std::chrono::seconds(std::max(1, cfg_.seconds / 4))) {
          rss_warm = rss;
        }
      }
    });
    std::vector<std::thread> clients;
    for (int i = 0; i < cfg_.clients; ++i) clients.emplace_back([this, i] { client_main(i); });
    for (auto& t : clients) t.join();
    done.store(true);
    faulter.join();
    monitor.join();
    if (auto c = connect(); c) (void)TEST_inject(server_->node_name(), 0, 0, 0);  // disarm a pending fault
    const double ran_s = std::chrono::duration<double>(Clock::now() - started).count();
    std::optional<DaemonStatus> daemon_status;
    if (auto c = connect(); c) {
      if (auto s = (*c)->status(); s) daemon_status = *s;
    }
    // Descriptors: back to the start once the clients are gone and the daemon has
    // closed their connections.
    int fds_end = reliability::open_fd_count();
    for (int i = 0; i < 200 && fds_end > fds_start; ++i) {
      std::this_thread::sleep_for(10ms);
      fds_end = reliability::open_fd_count();
    }
    if (fds_end > fds_start) violation("descriptors leaked: " + std::to_string(fds_end - fds_start));
    const uint64_t rss_end = reliability::rss_kib();
    if (rss_warm > 0 && rss_end > rss_warm + cfg_.rss_growth_mib * 1024) {
      violation("RSS grew from " + std::to_string(rss_warm / 1024) + " to " + std::to_string(rss_end / 1024) + " MiB");
    }

    // Restart from the snapshot: every durable buffer must come back as last written.
    stop_server();
    if (!start_server()) return 1;
    uint64_t restored_ok = 0, lost = 0;
    {
      auto c = connect();
      if (!c) {
        violation("connect after restart: " + c.error().to_string());
      } else {
        for (const auto& [name, bytes] : all_expected_) {
          auto back = (*c)->read_buffer(name);
          if (back && *back == bytes) {
            ++restored_ok;
          } else {
            ++lost;
            violation("after restart, durable buffer " + name + (back ? " differs" : " is missing"));
          }
        }
      }
    }
    stop_server();

    auto pct = [](std::vector<double> v, double q) {
      if (v.empty()) return 0.0;
      std::sort(v.begin(), v.end());
      return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))];
    };
    std::vector<double> all;
    for (auto& v : t_.latency_ms) all.insert(all.end(), v.begin(), v.end());
    std::printf("soak: %.0f s, %d clients, %lu requests (%.0f/s): %lu ok, %lu device_lost, %lu node_timeout, "
                "%lu kernel_quarantined\n",
                ran_s, cfg_.clients, (unsigned long)t_.requests, t_.requests / ran_s, (unsigned long)t_.ok,
                (unsigned long)t_.device_lost, (unsigned long)t_.timeouts, (unsigned long)t_.quarantined);
    std::printf("soak: faults injected %lu (device resets seen by the daemon: %lu); failed durable writes resolved "
                "%lu; durable reads checked %lu\n",
                (unsigned long)faults,
                daemon_status && !daemon_status->devices.empty() ? (unsigned long)daemon_status->devices[0].device_resets : 0ul,
                (unsigned long)t_.failed_writes_resolved, (unsigned long)t_.durable_checks);
    std::printf("soak: latency all ops p50 %.2f ms, p99 %.2f ms, max %.2f ms\n", pct(all, 0.5), pct(all, 0.99),
                pct(all, 1.0));
    for (int op = 0; op < kOps; ++op) {
      if (t_.latency_ms[op].empty()) continue;
      std::printf("soak:   %-14s n=%-7zu p50 %8.2f ms  p99 %8.2f ms\n", kOpNames[op], t_.latency_ms[op].size(),
                  pct(t_.latency_ms[op], 0.5), pct(t_.latency_ms[op], 0.99));
    }
    std::printf("soak: fds start %d, max %d, end %d; RSS after warm-up %lu MiB, max %lu MiB, end %lu MiB\n",
                fds_start, fds_max, fds_end, (unsigned long)rss_warm / 1024, (unsigned long)rss_max / 1024,
                (unsigned long)rss_end / 1024);
    std::printf("soak: durable buffers after restart: %lu intact, %lu lost; violations %lu\n",
                (unsigned long)restored_ok, (unsigned long)lost, (unsigned long)t_.violations);
    if (!cfg_.json.empty()) {
      if (FILE* f = std::fopen(cfg_.json.c_str(), "w")) {
        std::fprintf(f,
                     "{\"seconds\": %.1f, \"clients\": %d, \"requests\": %lu, \"ok\": %lu, \"device_lost\": %lu, "
                     "\"node_timeout\": %lu, \"faults_injected\": %lu, \"p50_ms\": %.3f, \"p99_ms\": %.3f, "
                     "\"max_ms\": %.3f, \"fds_start\": %d, \"fds_end\": %d, \"rss_warm_mib\": %lu, "
                     "\"rss_max_mib\": %lu, \"durable_intact\": %lu, \"durable_lost\": %lu, \"violations\": %lu}\n",
                     ran_s, cfg_.clients, (unsigned long)t_.requests, (unsigned long)t_.ok,
                     (unsigned long)t_.device_lost, (unsigned long)t_.timeouts, (unsigned long)faults, pct(all, 0.5),
                     pct(all, 0.99), pct(all, 1.0), fds_start, fds_end, (unsigned long)rss_warm / 1024,
                     (unsigned long)rss_max / 1024, (unsigned long)restored_ok, (unsigned long)lost,
                     (unsigned long)t_.violations);
        std::fclose(f);
      }
    }
    for (const auto& v : t_.violation_text) std::printf("soak: violation: %s\n", v.c_str());
    return t_.violations == 0 && t_.requests > 0 ? 0 : 1;
  }

 private:
  Config cfg_;
  std::filesystem::path dir_;
  std::unique_ptr<server::Server> server_;
  std::thread thread_;
  Clock::time_point end_;
  Totals t_;
  std::mutex expected_mu_;
  std::map<std::string, std::vector<std::byte>> all_expected_;
};

}  // namespace

int main(int argc, char** argv) {
  Config cfg;
  if (const char* s = std::getenv("VKNODE_SOAK_SECONDS")) cfg.seconds = std::atoi(s);
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "soak: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--seconds") cfg.seconds = std::atoi(next());
    else if (a == "--clients") cfg.clients = std::atoi(next());
    else if (a == "--fault-every-ms") cfg.fault_every_ms = std::atoi(next());
    else if (a == "--rss-growth-mib") cfg.rss_growth_mib = std::strtoull(next(), nullptr, 10);
    else if (a == "--json") cfg.json = next();
    else {
      std::fprintf(stderr, "usage: vknode_soak [--seconds N] [--clients N] [--fault-every-ms N] "
                           "[--rss-growth-mib N] [--json FILE]\n");
      return 2;
    }
  }
  ::signal(SIGPIPE, SIG_IGN);
  char tmpl[] = "/tmp/vknode-soak-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) return 1;
  const std::filesystem::path dir = tmpl;
  int rc;
  {
    Soak soak(cfg, dir);
    rc = soak.run();
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  return rc;
}
