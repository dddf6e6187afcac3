// Where the daemon's socket lives, and connecting to it (see docs/protocol.md,
// "Where the socket lives"). Thread-safe.
#pragma once

#include <chrono>
#include <filesystem>
#include <string_view>

#include "protocol/unique_fd.h"
#include "vknode/error.h"

namespace vkn::protocol {

inline constexpr std::string_view kSystemSocketPath = "/run/vknode/vknode.sock";

// The daemon's socket path: `explicit_path` if not empty, else $VKNODE_SOCKET, else
// /run/vknode/vknode.sock for root, else $XDG_RUNTIME_DIR/vknode.sock.
// Errors: not_found when none applies; invalid_argument when the path is too long.
[[nodiscard]] Result<std::filesystem::path> server_socket_path(std::string_view explicit_path = {});
// The same for clients, which use the system socket whenever it exists.
[[nodiscard]] Result<std::filesystem::path> client_socket_path(std::string_view explicit_path = {});

// A blocking, close-on-exec connection to the socket at `path`.
// Errors: node_dead when nothing listens there (absent, refused, or no answer
// within `timeout`); permission_denied; invalid_argument for a too-long path.
[[nodiscard]] Result<UniqueFd> connect_unix(const std::filesystem::path& path,
                                            std::chrono::milliseconds timeout);

}  // namespace vkn::protocol
