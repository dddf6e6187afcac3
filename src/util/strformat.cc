#include "util/strformat.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

namespace vkn::detail {
namespace {

void pad(std::string& out, const FormatSpec& spec, std::string_view body, bool numeric) {
  const int fill = spec.width - static_cast<int>(body.size());
  if (fill <= 0) {
    out += body;
    return;
  }
  const char align = spec.align ? spec.align : (numeric ? '>' : '<');
  if (align == '<') {
    out += body;
    out.append(fill, ' ');
  } else if (numeric && spec.zero_pad) {
    size_t sign = (!body.empty() && body[0] == '-') ? 1 : 0;
    out += body.substr(0, sign);
    out.append(fill, '0');
    out += body.substr(sign);
  } else {
    out.append(fill, ' ');
    out += body;
  }
}

// Parses the part of a replacement field after ':'.
FormatSpec parse_spec(std::string_view s) {
  FormatSpec spec;
  size_t i = 0;
  if (i < s.size() && (s[i] == '<' || s[i] == '>')) spec.align = s[i++];
  if (i < s.size() && s[i] == '0') {
    spec.zero_pad = true;
    ++i;
  }
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') spec.width = spec.width * 10 + (s[i++] - '0');
  if (i < s.size() && s[i] == '.') {
    spec.precision = 0;
    ++i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') spec.precision = spec.precision * 10 + (s[i++] - '0');
  }
  if (i < s.size()) spec.type = s[i];
  return spec;
}

}  // namespace

void append_signed(std::string& out, const FormatSpec& spec, long long v) {
  if (spec.type == 'x' || spec.type == 'X') {
    append_unsigned(out, spec, static_cast<unsigned long long>(v));
    return;
  }
  char buf[32];
  const int n = std::snprintf(buf, sizeof buf, "%lld", v);
  pad(out, spec, std::string_view(buf, n), true);
}

void append_unsigned(std::string& out, const FormatSpec& spec, unsigned long long v) {
  char buf[32];
  const char* f = spec.type == 'x' ? "%llx" : spec.type == 'X' ? "%llX" : "%llu";
  const int n = std::snprintf(buf, sizeof buf, f, v);
  pad(out, spec, std::string_view(buf, n), true);
}

void append_double(std::string& out, const FormatSpec& spec, double v) {
  char buf[64];
  int n = 0;
  const char type = spec.type == 'e' || spec.type == 'f' || spec.type == 'g' ? spec.type : 0;
  if (type == 0 && spec.precision < 0) {
    n = std::snprintf(buf, sizeof buf, "%.17g", v);
    // Shortest form that reads back the same value, as std::format does.
    for (int p = 1; p <= 17; ++p) {
      char probe[64];
      const int m = std::snprintf(probe, sizeof probe, "%.*g", p, v);
      if (std::strtod(probe, nullptr) == v) {
        std::copy(probe, probe + m + 1, buf);
        n = m;
        break;
      }
    }
  } else {
    const char fmt[] = {'%', '.', '*', type ? type : 'g', 0};
    n = std::snprintf(buf, sizeof buf, fmt, spec.precision < 0 ? 6 : spec.precision, v);
  }
  pad(out, spec, std::string_view(buf, n), true);
}

void append_text(std::string& out, const FormatSpec& spec, std::string_view v) { pad(out, spec, v, false); }

std::string format_args(std::string_view fmt, const FormatArg* args, size_t count) {
  std::string out;
  out.reserve(fmt.size() + 16 * count);
  size_t next = 0;
  for (size_t i = 0; i < fmt.size(); ++i) {
    const char c = fmt[i];
    if (c == '}' && i + 1 < fmt.size() && fmt[i + 1] == '}') {
      out += '}';
      ++i;
      continue;
    }
    if (c != '{') {
      out += c;
      continue;
    }
    if (i + 1 < fmt.size() && fmt[i + 1] == '{') {
      out += '{';
      ++i;
      continue;
    }
    const size_t close = fmt.find('}', i);
    if (close == std::string_view::npos) {
      out += fmt.substr(i);
      break;
    }
    const std::string_view field = fmt.substr(i + 1, close - i - 1);
    const size_t colon = field.find(':');
    const FormatSpec spec = colon == std::string_view::npos ? FormatSpec{} : parse_spec(field.substr(colon + 1));
    if (next < count) {
      args[next].append(out, spec, args[next].value);
    } else {
      out += "{?}";
    }
    ++next;
    i = close;
  }
  return out;
}

}  // namespace vkn::detail
