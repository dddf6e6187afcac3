// Server::Impl: the daemon's moving parts (private to src/server). One I/O thread
// runs the epoll loop (server_io.cc): it owns every Connection, answers the cheap
// requests itself and queues the rest in a FairQueue; worker threads take requests
// round-robin across connections and start them through the RequestHandler. Most are
// answered by the worker; an exec is answered from its node's thread (reply_to), so
// no worker waits on the node. Replies go straight to the socket, or, when the socket
// is full, to the I/O thread through an eventfd. Snapshots and the graceful stop are in
// server_state.cc; the metrics page in server_metrics.cc.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "server/connection.h"
#include "server/fair_queue.h"
#include "server/listener.h"
#include "server/metrics.h"
#include "server/metrics_endpoint.h"
#include "server/request.h"
#include "server/request_handler.h"
#include "server/server.h"
#include "server/user_table.h"

namespace vkn::server {

class Server::Impl {
 public:
  // Requires: `backends` is not empty.
  Impl(ServerOptions options, Listener listener, Backends backends, std::filesystem::path snapshot);
  ~Impl();

  // Creates the epoll set and eventfd, restores snapshots, starts the workers and
  // the metrics endpoint.
  [[nodiscard]] Result<void> init();
  [[nodiscard]] Result<void> run();
  void request_stop();

  const std::filesystem::path& socket_path() const { return socket_path_; }
  const std::filesystem::path& snapshot_path() const { return snapshot_path_; }
  std::string node_name(uint32_t device) const {
    return device < backends_.size() ? backends_[device]->node_name() : std::string();
  }
  uint32_t device_count() const { return static_cast<uint32_t>(backends_.size()); }
  uint16_t metrics_port() const { return metrics_endpoint_ ? metrics_endpoint_->port() : 0; }

 private:
  // A queued request, or system work (session cleanup, snapshot).
  struct WorkItem {
    std::shared_ptr<Request> request;
    std::function<void()> system;
  };
  // A worker's note that a connection needs the I/O thread: output is left to
  // flush, the peer broke, or reading was paused and may resume.
  struct Completion {
    uint64_t conn = 0;
  };

  // --- I/O thread (server_io.cc). ---
  // Returns the number of events handled.
  int loop_once(int timeout_ms, bool draining);
  void accept_clients();
  void on_readable(Connection& conn);
  void on_frame(Connection& conn, ServerFrame frame);
  void on_hello(Connection& conn, const Request& request);
  void answer_now(Connection& conn, const std::shared_ptr<Request>& request);
  void on_writable(Connection& conn);
  void send(Connection& conn, protocol::OutgoingFrame frame);
  void close_connection(uint64_t id);
  void drain_completions();
  void update_interest(Connection& conn);
  Connection* find(uint64_t id);

  // --- Workers (server_io.cc). ---
  void worker_main();
  std::optional<WorkItem> next_work();
  void post(Completion completion);
  void after_request(uint64_t conn);
  // Answers a request taken from the queue and frees its slot; on the worker, or on
  // the node's thread for an exec (see RequestHandler::start).
  void reply_to(const std::shared_ptr<Request>& request, Result<protocol::OutgoingFrame> reply);

  // Counts a request answered `code` (ok: success) for status and metrics.
  void count_answer(protocol::MessageType type, Errc code, Clock::time_point received);

  // --- Metrics (server_metrics.cc); any thread. ---
  std::string render_metrics();

  // --- State (server_state.cc). ---
  DaemonStatus make_status(uint32_t uid);
  void restore_snapshot();
  void maybe_schedule_snapshot();
  // Writes a snapshot when durable buffers changed since the last one.
  void snapshot_if_changed();
  std::string durable_signature();
  void finish_stop();

  // Fixed after construction.
  const ServerOptions options_;
  const std::filesystem::path socket_path_;
  const std::filesystem::path snapshot_path_;
  const Clock::time_point started_ = Clock::now();
  Backends backends_;  // one per device node, in device index order
  UserTable users_;
  RequestHandler handler_;
  FairQueue<WorkItem> queue_;  // at most `workers` requests run at once (slots)
  const std::chrono::microseconds spin_;
  int epoll_fd_ = -1;
  int wake_fd_ = -1;

  // I/O thread only.
  Listener listener_;
  std::map<uint64_t, std::shared_ptr<Connection>> conns_;
  std::vector<uint64_t> to_close_;  // peers found gone while sending
  uint64_t next_conn_id_ = 2;       // 0: the listener, 1: the eventfd
  bool stopping_ = false;
  Clock::time_point next_snapshot_{};

  // Guarded by completions_mu_.
  std::mutex completions_mu_;
  std::vector<Completion> completions_;

  // Shared.
  Metrics metrics_;
  std::unique_ptr<MetricsEndpoint> metrics_endpoint_;  // set in init(), then fixed
  std::atomic<uint64_t> connection_count_{0};          // conns_.size(), for other threads
  std::atomic<bool> stop_requested_{false};
  std::atomic<bool> snapshot_queued_{false};
  std::atomic<uint32_t> live_workers_{0};
  std::atomic<uint64_t> running_{0}, requests_{0}, request_errors_{0}, rejected_quota_{0},
      snapshots_{0};
  std::mutex snapshot_mu_;  // one snapshot at a time; guards the two below
  std::string last_signature_;
  std::string last_snapshot_error_;
  std::vector<std::thread> workers_;
};

}  // namespace vkn::server
