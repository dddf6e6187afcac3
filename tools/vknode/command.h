// The vknode CLI's subcommands. Each takes the arguments after its name and returns
// the process exit code: 0 success, 1 the operation failed, 2 bad usage, 3 no daemon
// running (commands that talk to the daemon).
#pragma once

#include <span>
#include <string_view>

namespace vkn::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitNoDaemon = 3;

using Args = std::span<char* const>;

int devices_command(Args args);
int selfcheck_command(Args args);
int bench_command(Args args, const char* argv0);

// The daemon and its clients (serve_command.cc, client_commands.cc, cache_command.cc).
int serve_command(Args args);
int status_command(Args args);
int ping_command(Args args);
int buffers_command(Args args);
int kernels_command(Args args);
int cache_command(Args args);
int stop_command(Args args);
int bench_daemon_command(Args args);
int sample_command(Args args);  // sample_command.cc: HMC sampling on the GPU or CPU

// True when args holds --help or -h.
bool wants_help(Args args);

}  // namespace vkn::cli
