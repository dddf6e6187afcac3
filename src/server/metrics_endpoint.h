// MetricsEndpoint: a minimal HTTP/1.1 responder for Prometheus on 127.0.0.1 only.
// GET /metrics is answered with the text `render` returns (text/plain;
// version=0.0.4); anything else with 404, a request line that is not HTTP with 400,
// and a request over 8 KiB with 431. Every connection is closed after one answer.
// It runs on its own thread, one connection at a time, each bounded by a 2 s
// deadline, so a slow scraper can delay only other scrapers, never the daemon's
// clients. Owns its socket and thread; destroying it stops both.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "protocol/unique_fd.h"
#include "vknode/error.h"

namespace vkn::server {

class MetricsEndpoint {
 public:
  // Listens on 127.0.0.1:`port` (0: a free port the kernel picks) and starts serving.
  // `render` is called on the endpoint's thread. Errors: io_error (e.g. the port is
  // taken).
  [[nodiscard]] static Result<std::unique_ptr<MetricsEndpoint>> start(
      uint16_t port, std::function<std::string()> render);
  ~MetricsEndpoint();
  MetricsEndpoint(const MetricsEndpoint&) = delete;
  MetricsEndpoint& operator=(const MetricsEndpoint&) = delete;

  // The bound port.
  uint16_t port() const { return port_; }

 private:
  MetricsEndpoint(protocol::UniqueFd listen, protocol::UniqueFd wake, uint16_t port,
                  std::function<std::string()> render);
  void serve();
  void answer(int fd);

  // Fixed after construction.
  const protocol::UniqueFd listen_;
  const protocol::UniqueFd wake_;  // an eventfd: written to stop the thread
  const uint16_t port_;
  const std::function<std::string()> render_;
  std::thread thread_;
};

}  // namespace vkn::server
