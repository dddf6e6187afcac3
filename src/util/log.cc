#include "util/log.h"

#include <unistd.h>

#include <cstdlib>
#include <string>
#include <strings.h>

namespace vkn {
namespace {

LogLevel level_from_env() {
  const char* v = std::getenv("VKNODE_LOG");
  if (v == nullptr) return LogLevel::warn;
  if (strcasecmp(v, "error") == 0) return LogLevel::error;
  if (strcasecmp(v, "info") == 0) return LogLevel::info;
  if (strcasecmp(v, "debug") == 0) return LogLevel::debug;
  return LogLevel::warn;
}

}  // namespace

bool log_enabled(LogLevel level) {
  static const LogLevel threshold = level_from_env();
  return level <= threshold;
}

void log_line(LogLevel level, std::string_view text) {
  static constexpr const char* kNames[] = {"error", "warn", "info", "debug"};
  std::string line = "vknode ";
  line += kNames[static_cast<int>(level)];
  line += ": ";
  line += text;
  line += '\n';
  // One write() per line so concurrent lines do not interleave.
  [[maybe_unused]] ssize_t n = ::write(STDERR_FILENO, line.data(), line.size());
}

}  // namespace vkn
