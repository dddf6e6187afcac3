// vkn::format: a small subset of std::format ("{}", "{:x}", "{:08x}", "{:.2f}",
// "{:>8}", "{:<12}") because g++ 12's libstdc++ has no <format>. Unknown or
// missing arguments print as "{?}" instead of throwing.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>

namespace vkn {
namespace detail {

struct FormatSpec {
  char align = 0;  // '<', '>' or 0 (numbers right, text left)
  bool zero_pad = false;
  int width = 0;
  int precision = -1;
  char type = 0;  // 'x', 'X', 'f', 'e', 'g', 'd' or 0
};

void append_signed(std::string& out, const FormatSpec& spec, long long v);
void append_unsigned(std::string& out, const FormatSpec& spec, unsigned long long v);
void append_double(std::string& out, const FormatSpec& spec, double v);
void append_text(std::string& out, const FormatSpec& spec, std::string_view v);

template <typename T>
void append_value(std::string& out, const FormatSpec& spec, const T& v) {
  if constexpr (std::is_same_v<T, bool>) {
    append_text(out, spec, v ? "true" : "false");
  } else if constexpr (std::is_same_v<T, char>) {
    append_text(out, spec, std::string_view(&v, 1));
  } else if constexpr (std::is_enum_v<T>) {
    append_signed(out, spec, static_cast<long long>(v));
  } else if constexpr (std::is_integral_v<T> && std::is_signed_v<T>) {
    append_signed(out, spec, v);
  } else if constexpr (std::is_integral_v<T>) {
    append_unsigned(out, spec, v);
  } else if constexpr (std::is_floating_point_v<T>) {
    append_double(out, spec, static_cast<double>(v));
  } else if constexpr (std::is_convertible_v<const T&, std::string_view>) {
    append_text(out, spec, std::string_view(v));
  } else if constexpr (std::is_pointer_v<T>) {
    FormatSpec hex = spec;
    hex.type = 'x';
    out += "0x";
    append_unsigned(out, hex, reinterpret_cast<uintptr_t>(v));
  } else {
    append_text(out, spec, v.string());  // e.g. std::filesystem::path
  }
}

struct FormatArg {
  const void* value;
  void (*append)(std::string&, const FormatSpec&, const void*);
};

template <typename T>
FormatArg make_format_arg(const T& v) {
  return {&v, [](std::string& out, const FormatSpec& spec, const void* p) {
            append_value(out, spec, *static_cast<const T*>(p));
          }};
}

std::string format_args(std::string_view fmt, const FormatArg* args, size_t count);

}  // namespace detail

template <typename... Args>
std::string format(std::string_view fmt, const Args&... args) {
  const detail::FormatArg list[] = {detail::make_format_arg(args)..., {nullptr, nullptr}};
  return detail::format_args(fmt, list, sizeof...(Args));
}

}  // namespace vkn
