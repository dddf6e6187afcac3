#include "cli_output.h"

#include "util/strformat.h"

namespace vkn::cli {

std::string json_escape(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += vkn::format("\\u{:04x}", static_cast<unsigned>(c));
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

void JsonWriter::key(std::string_view k) {
  if (need_comma_) out_ += ",";
  if (!k.empty()) out_ += json_escape(k) + ":";
  need_comma_ = true;
}

JsonWriter& JsonWriter::begin_object(std::string_view k) {
  key(k);
  out_ += "{";
  need_comma_ = false;
  return *this;
}

JsonWriter& JsonWriter::end_object() {
  out_ += "}";
  need_comma_ = true;
  return *this;
}

JsonWriter& JsonWriter::begin_array(std::string_view k) {
  key(k);
  out_ += "[";
  need_comma_ = false;
  return *this;
}

JsonWriter& JsonWriter::end_array() {
  out_ += "]";
  need_comma_ = true;
  return *this;
}

JsonWriter& JsonWriter::field(std::string_view k, std::string_view value) {
  key(k);
  out_ += json_escape(value);
  return *this;
}

JsonWriter& JsonWriter::field(std::string_view k, uint64_t value) {
  key(k);
  out_ += vkn::format("{}", value);
  return *this;
}

JsonWriter& JsonWriter::field(std::string_view k, int64_t value) {
  key(k);
  out_ += vkn::format("{}", value);
  return *this;
}

JsonWriter& JsonWriter::field(std::string_view k, double value) {
  key(k);
  out_ += vkn::format("{:.3f}", value);
  return *this;
}

JsonWriter& JsonWriter::field(std::string_view k, bool value) {
  key(k);
  out_ += value ? "true" : "false";
  return *this;
}

std::string human_bytes(uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  return u == 0 ? vkn::format("{} B", bytes) : vkn::format("{:.1f} {}", v, units[u]);
}

std::string human_duration_ms(uint64_t ms) {
  if (ms < 1000) return vkn::format("{} ms", ms);
  const double s = ms / 1000.0;
  if (s < 120) return vkn::format("{:.1f} s", s);
  if (s < 7200) return vkn::format("{:.1f} min", s / 60);
  if (s < 172800) return vkn::format("{:.1f} h", s / 3600);
  return vkn::format("{:.1f} d", s / 86400);
}

}  // namespace vkn::cli
