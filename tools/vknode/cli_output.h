// Output helpers for the daemon commands: a minimal JSON writer (for --json) and
// human-readable sizes and durations. Thread-compatible.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace vkn::cli {

// Builds one JSON value. Keys and values are written in call order; commas and
// string escaping are handled here.
class JsonWriter {
 public:
  JsonWriter& begin_object(std::string_view key = {});
  JsonWriter& end_object();
  JsonWriter& begin_array(std::string_view key = {});
  JsonWriter& end_array();
  JsonWriter& field(std::string_view key, std::string_view value);
  JsonWriter& field(std::string_view key, const char* value) {
    return field(key, std::string_view(value));
  }
  JsonWriter& field(std::string_view key, uint64_t value);
  JsonWriter& field(std::string_view key, int64_t value);
  JsonWriter& field(std::string_view key, int value) {
    return field(key, static_cast<int64_t>(value));
  }
  JsonWriter& field(std::string_view key, uint32_t value) {
    return field(key, static_cast<uint64_t>(value));
  }
  JsonWriter& field(std::string_view key, double value);
  JsonWriter& field(std::string_view key, bool value);
  const std::string& str() const { return out_; }

 private:
  void key(std::string_view k);
  std::string out_;
  bool need_comma_ = false;
};

std::string json_escape(std::string_view s);
// "1.5 MiB", "512 B".
std::string human_bytes(uint64_t bytes);
// "3.2 s", "4 min", "2.1 h".
std::string human_duration_ms(uint64_t ms);

}  // namespace vkn::cli
