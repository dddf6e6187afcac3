// A connected Unix stream socket pair for protocol tests; `nonblocking_b` makes the second
// end non-blocking (as the daemon's and the client's reading ends are).
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>

#include "protocol/unique_fd.h"

namespace vkn::protocol::testing {

struct SocketPair {
  UniqueFd a, b;
  explicit SocketPair(bool nonblocking_b = false) {
    int fds[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    a.reset(fds[0]);
    b.reset(fds[1]);
    if (nonblocking_b) {
      EXPECT_EQ(::fcntl(fds[1], F_SETFL, ::fcntl(fds[1], F_GETFL) | O_NONBLOCK), 0);
    }
  }
};

}  // namespace vkn::protocol::testing
