// RequestHandler: runs the requests that go through the fair queue (everything that
// touches a device node) on a worker thread: picks the node the request names, maps
// the caller's names into its namespace on that node, checks ownership, kernels and
// quotas, calls the node's Backend, and builds the reply.
// Every failure becomes an error reply; nothing here throws. Thread-safe (its
// collaborators are).
#pragma once

#include <functional>
#include <memory>

#include "protocol/frame_io.h"
#include "server/backend.h"
#include "server/request.h"
#include "server/user_table.h"

namespace vkn::server {

// Root and the daemon's own uid may call admin operations.
bool is_admin(const Peer& peer);

class RequestHandler {
 public:
  // Requires: `backends` is not empty and outlives the handler.
  RequestHandler(const Backends& backends, UserTable& users, uint64_t shm_threshold)
      : backends_(backends), users_(users), shm_threshold_(shm_threshold) {}

  // Whether `type` goes through the fair queue (else the I/O thread answers it).
  static bool is_queued(protocol::MessageType type);

  // Runs one queued request; returns its success reply, or the error to answer with.
  [[nodiscard]] Result<protocol::OutgoingFrame> run(const std::shared_ptr<Request>& request);

  // Called once with a request's reply (its success reply, or the error to answer with).
  using ReplyDone = std::function<void(Result<protocol::OutgoingFrame>)>;
  // Starts one queued request and calls `done` exactly once: before returning for
  // everything but an exec, and for an exec that fails its checks; else later, on the
  // node's thread when the Program ends, or at the deadline (node_timeout), so that
  // the calling worker does not wait for the node.
  // Requires: `done` is quick and never waits for a node; the handler outlives it.
  void start(const std::shared_ptr<Request>& request, ReplyDone done);

  // Frees a closed connection's session buffers.
  void free_session_buffers(uint64_t conn);

 private:
  Result<protocol::OutgoingFrame> dispatch(const std::shared_ptr<Request>& request);
  Result<protocol::OutgoingFrame> register_kernel(const std::shared_ptr<Request>& request);
  Result<protocol::OutgoingFrame> create_buffer(const std::shared_ptr<Request>& request);
  Result<protocol::OutgoingFrame> write_buffer(const std::shared_ptr<Request>& request);
  Result<protocol::OutgoingFrame> read_buffer(const std::shared_ptr<Request>& request);
  Result<protocol::OutgoingFrame> delete_buffer(const std::shared_ptr<Request>& request);
  Result<protocol::OutgoingFrame> list_buffers(const std::shared_ptr<Request>& request);
  // Decodes, maps and checks an exec's Program. Errors: as exec's before the node.
  Result<Program> exec_program(const std::shared_ptr<Request>& request, Backend** target);
  Result<protocol::OutgoingFrame> exec(const std::shared_ptr<Request>& request);
  void exec_async(const std::shared_ptr<Request>& request, ReplyDone done);
  Result<protocol::OutgoingFrame> exec_reply(const Request& request,
                                             Result<ProgramResult> result) const;
  Result<protocol::OutgoingFrame> persist_cache(const std::shared_ptr<Request>& request);
  // The device node the request names. Errors: not_found for an index beyond the
  // daemon's nodes.
  Result<Backend*> backend_for(const Request& request);
  // The caller's buffer on the request's node: its registry name once it is known to exist.
  Result<std::pair<std::string, BufferRecord>> own_buffer(const Request& request,
                                                          std::string_view name);

  const Backends& backends_;
  UserTable& users_;
  const uint64_t shm_threshold_;
};

}  // namespace vkn::server
