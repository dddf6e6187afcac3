// Minimal leveled logging to stderr. The level comes from $VKNODE_LOG
// (error, warn, info, debug; default warn). Thread-safe: each line is one write.
#pragma once

#include <string_view>

#include "util/strformat.h"

namespace vkn {

enum class LogLevel { error = 0, warn = 1, info = 2, debug = 3 };

bool log_enabled(LogLevel level);
void log_line(LogLevel level, std::string_view text);

template <typename... Args>
void log(LogLevel level, std::string_view fmt, const Args&... args) {
  if (log_enabled(level)) log_line(level, vkn::format(fmt, args...));
}

}  // namespace vkn
