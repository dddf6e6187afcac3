// Test helpers for the metrics endpoint: a raw HTTP exchange over a TCP socket to
// 127.0.0.1, and a checker for the Prometheus text exposition format.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>

namespace vkn::server::testing {

// Sends `request` as is to 127.0.0.1:`port` and returns everything read until the
// server closes the connection; nullopt if the connection fails.
inline std::optional<std::string> http_exchange(uint16_t port, const std::string& request) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::nullopt;
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return std::nullopt;
  }
  size_t sent = 0;
  while (sent < request.size()) {
    const ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;  // the server may answer (431) and close before taking it all
    sent += static_cast<size_t>(n);
  }
  std::string out;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

inline std::optional<std::string> http_get(uint16_t port, const std::string& path) {
  return http_exchange(port, "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
}

// The body after the head; empty when there is none.
inline std::string http_body(const std::string& response) {
  const size_t end = response.find("\r\n\r\n");
  return end == std::string::npos ? std::string() : response.substr(end + 4);
}

// Checks the exposition format: every line is a HELP or TYPE comment or a sample;
// every sample's metric has a TYPE line before it (histogram samples under their
// family's name); names match [a-zA-Z_:][a-zA-Z0-9_:]*; values parse. Returns the
// first problem, or an empty string. Fills `samples` ("name{labels}" -> value).
inline std::string check_exposition(const std::string& text,
                                    std::map<std::string, double>* samples) {
  static const std::regex kSample(
      R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*")*\})? (\S+)$)");
  static const std::regex kType(
      R"(^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$)");
  static const std::regex kHelp(R"(^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) .*$)");
  std::map<std::string, std::string> types;
  std::istringstream in(text);
  std::string line;
  if (text.empty() || text.back() != '\n') return "the text does not end with a newline";
  while (std::getline(in, line)) {
    std::smatch m;
    if (std::regex_match(line, m, kType)) {
      if (types.count(m[1])) return "a second TYPE line for " + std::string(m[1]);
      types[m[1]] = m[2];
      continue;
    }
    if (std::regex_match(line, kHelp)) continue;
    if (!std::regex_match(line, m, kSample)) return "not a sample: " + line;
    std::string family = m[1];
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      const std::string s = suffix;
      if (!types.count(family) && family.size() > s.size() &&
          family.compare(family.size() - s.size(), s.size(), s) == 0) {
        const std::string base = family.substr(0, family.size() - s.size());
        if (types.count(base) && types[base] == "histogram") family = base;
      }
    }
    if (!types.count(family)) return "sample without a TYPE line before it: " + line;
    const std::string value = m[3];
    double v = 0;
    if (value == "+Inf") {
      v = INFINITY;
    } else {
      char* end = nullptr;
      v = std::strtod(value.c_str(), &end);
      if (end == value.c_str() || *end != '\0') return "bad value: " + line;
    }
    if (samples) (*samples)[std::string(m[1]) + std::string(m[2])] = v;
  }
  return {};
}

}  // namespace vkn::server::testing
