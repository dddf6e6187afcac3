// The vknode CLI's subcommands. Each takes the arguments after its name and returns
// the process exit code: 0 success, 1 the operation failed, 2 bad usage.
#pragma once

#include <span>
#include <string_view>

namespace vkn::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;

using Args = std::span<char* const>;

int devices_command(Args args);
int selfcheck_command(Args args);
int bench_command(Args args, const char* argv0);

// True when args holds --help or -h.
bool wants_help(Args args);

}  // namespace vkn::cli
