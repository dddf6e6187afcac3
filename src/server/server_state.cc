// The daemon's status, durable-buffer snapshots, and graceful stop.
#include <sys/epoll.h>
#include <unistd.h>

#include "protocol/wire.h"
#include "server/server_impl.h"
#include "server/snapshot.h"
#include "util/log.h"
#include "util/strformat.h"

namespace vkn::server {

DaemonStatus Server::Impl::make_status(uint32_t uid) {
  DaemonStatus s;
  s.live = true;
  for (const auto& b : backends_) {
    for (NodeStatus& d : b->status()) s.devices.push_back(std::move(d));
  }
  s.ready = !stopping_ && !s.devices.empty();
  for (const NodeStatus& d : s.devices) s.ready = s.ready && d.health == NodeHealth::ready;
  s.daemon_version = VKNODE_VERSION_STRING;
  s.protocol_version = protocol::kMaxVersion;
  s.pid = static_cast<uint32_t>(::getpid());
  s.daemon_uid = static_cast<uint32_t>(::getuid());
  s.socket_path = socket_path_.native();
  s.state_dir = options_.state_dir.native();
  s.uptime = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started_);
  s.connections = connection_count_.load();
  s.queued_requests = queue_.size();
  s.running_requests = running_.load();
  s.requests = requests_.load();
  s.request_errors = request_errors_.load();
  s.rejected_quota = rejected_quota_.load();
  s.snapshots = snapshots_.load();
  {
    std::lock_guard lock(snapshot_mu_);
    s.last_snapshot_error = last_snapshot_error_;
  }
  s.usage = users_.usage(uid);
  return s;
}

void Server::Impl::restore_snapshot() {
  auto images = read_snapshot(posix_file_ops(), snapshot_path_);
  if (!images) {
    if (images.error().code == Errc::not_found) return;
    // Reported and set aside, never fatal: the daemon starts without those buffers.
    const std::string why = images.error().to_string();
    log(LogLevel::error, "vknoded: buffer snapshot {} is unusable and was skipped: {}",
        snapshot_path_.native(), why);
    std::error_code ec;
    std::filesystem::rename(snapshot_path_, snapshot_path_.native() + ".corrupt", ec);
    std::lock_guard lock(snapshot_mu_);
    last_snapshot_error_ = "restore: " + why;
    return;
  }
  size_t restored = 0;
  size_t orphaned = 0;
  for (const DurableImage& img : *images) {
    auto owner = UserTable::parse_registry_name(img.name);
    if (!owner) {
      log(LogLevel::warn, "vknoded: snapshot entry '{}' is not a daemon buffer; skipped", img.name);
      continue;
    }
    if (owner->device >= backends_.size()) {
      // Written by a daemon with more device nodes: nowhere to put it.
      log(LogLevel::error,
          "vknoded: durable buffer {} was on device node {}, which this daemon "
          "does not run (it runs {}); not restored",
          img.name, owner->device, backends_.size());
      ++orphaned;
      continue;
    }
    Backend& backend = *backends_[owner->device];
    BufferSpec spec = img.spec;
    spec.durable = true;
    auto r = backend.create_buffer(img.name, spec, std::nullopt);
    if (r) r = backend.write_buffer(img.name, 0, img.data, nullptr, std::nullopt);
    if (!r) {
      log(LogLevel::error, "vknoded: restoring durable buffer {}: {}", img.name,
          r.error().to_string());
      (void)backend.delete_buffer(img.name, std::nullopt);
      continue;
    }
    users_.adopt_buffer(img.name, BufferRecord{owner->uid, spec.bytes, true, 0, false});
    ++restored;
  }
  log(LogLevel::info, "vknoded: restored {} durable buffers from {}", restored,
      snapshot_path_.native());
  std::lock_guard lock(snapshot_mu_);
  last_signature_ = durable_signature();
  if (orphaned > 0) {
    last_snapshot_error_ = vkn::format(
        "restore: {} durable buffers were on device nodes this daemon does not run", orphaned);
  }
}

std::string Server::Impl::durable_signature() {
  std::string sig = vkn::format("{};", users_.durable_generation());
  for (const auto& b : backends_) {
    auto list = b->list_buffers(std::nullopt);
    if (!list) return "?";  // unknown: forces the next snapshot
    for (const BufferEntryInfo& e : *list) {
      if (e.spec.durable) sig += vkn::format("{}|{}|{};", e.name, e.spec.bytes, e.writes);
    }
  }
  return sig;
}

void Server::Impl::maybe_schedule_snapshot() {
  if (options_.snapshot_interval.count() <= 0 || Clock::now() < next_snapshot_) return;
  next_snapshot_ = Clock::now() + options_.snapshot_interval;
  if (snapshot_queued_.exchange(true)) return;
  queue_.push_system(WorkItem{nullptr, [this] {
                                snapshot_if_changed();
                                snapshot_queued_.store(false);
                              }});
}

void Server::Impl::snapshot_if_changed() {
  std::lock_guard lock(snapshot_mu_);
  const std::string sig = durable_signature();
  if (sig == last_signature_) return;
  // One file for every node: registry names say which node each buffer is on.
  Result<std::vector<DurableImage>> images = std::vector<DurableImage>();
  for (const auto& b : backends_) {
    auto of_node = b->durable_images(std::nullopt);
    if (!of_node) {
      images = fail(of_node.error());
      break;
    }
    for (DurableImage& img : *of_node) images->push_back(std::move(img));
  }
  Result<void> r =
      images ? write_snapshot(posix_file_ops(), snapshot_path_, *images) : fail(images.error());
  if (!r) {
    last_snapshot_error_ = r.error().to_string();
    log(LogLevel::error, "vknoded: durable-buffer snapshot failed: {}", last_snapshot_error_);
    return;
  }
  last_signature_ = sig;
  last_snapshot_error_.clear();
  snapshots_.fetch_add(1);
  log(LogLevel::info, "vknoded: snapshot of {} durable buffers written to {}", images->size(),
      snapshot_path_.native());
}

void Server::Impl::finish_stop() {
  log(LogLevel::info, "vknoded: stopping: no new connections, finishing running work");
  stopping_ = true;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, listener_.fd(), nullptr);
  listener_.close();
  // Queued work is answered `cancelled`; running work finishes and is answered.
  for (auto& item : queue_.close()) {
    if (!item.request) continue;
    const auto& h = item.request->header;
    count_answer(h.type, Errc::cancelled, item.request->received);
    if (Connection* conn = find(item.request->conn)) {
      send(*conn, error_reply(h.request_id, h.type, item.request->version,
                              Error::make(Errc::cancelled, "the daemon is shutting down")));
    }
    after_request(item.request->conn);
  }
  for (auto& [id, conn] : conns_) {
    conn->reading = false;
    update_interest(*conn);
  }
  while (live_workers_.load() > 0) loop_once(50, true);
  for (auto& t : workers_) t.join();
  workers_.clear();
  // Send the replies owed, for a bounded time.
  const auto deadline = Clock::now() + options_.drain_timeout;
  auto owes_output = [&] {
    for (auto& [id, conn] : conns_) {
      if (conn->has_output()) return true;
    }
    return false;
  };
  drain_completions();
  while (owes_output() && Clock::now() < deadline) loop_once(50, true);

  for (const auto& b : backends_) {
    if (auto r = b->persist_pipeline_cache(); !r) {
      log(LogLevel::warn, "vknoded: pipeline cache of {} not persisted: {}", b->node_name(),
          r.error().to_string());
    }
  }
  snapshot_if_changed();
  for (const auto& b : backends_) b->stop();
  std::vector<uint64_t> ids;
  for (auto& [id, conn] : conns_) ids.push_back(id);
  for (uint64_t id : ids) close_connection(id);
  log(LogLevel::info, "vknoded: stopped");
}

}  // namespace vkn::server
