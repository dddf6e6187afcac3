#include "server/user_table.h"

#include <charconv>

#include "util/strformat.h"

namespace vkn::server {
namespace {

constexpr size_t kMaxUserNameChars = 100;

bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.' || c == ':' || c == '/' || c == '-';
}

}  // namespace

Result<std::string> UserTable::registry_name(uint32_t uid, std::string_view name, uint32_t device) {
  if (name.empty() || name.size() > kMaxUserNameChars) {
    return fail(Errc::invalid_argument,
                vkn::format("buffer names are 1..{} characters", kMaxUserNameChars),
                vkn::format("{} given", name.size()));
  }
  for (char c : name) {
    if (!is_name_char(c)) {
      return fail(Errc::invalid_argument, "buffer names use only [A-Za-z0-9_.:/-]",
                  std::string(name));
    }
  }
  if (device == 0) return vkn::format("u{}/{}", uid, name);
  return vkn::format("d{}/u{}/{}", device, uid, name);
}

namespace {

// Parses "<prefix><number>/" at the start of `s`: the number, and `s` advanced past
// the slash. nullopt unless the number is all digits and fits.
std::optional<uint32_t> take_numbered_part(std::string_view& s, char prefix) {
  if (s.size() < 3 || s[0] != prefix) return std::nullopt;
  const size_t slash = s.find('/');
  if (slash == std::string_view::npos || slash < 2) return std::nullopt;
  uint32_t n = 0;
  auto [end, ec] = std::from_chars(s.data() + 1, s.data() + slash, n);
  if (ec != std::errc() || end != s.data() + slash) return std::nullopt;
  s.remove_prefix(slash + 1);
  return n;
}

}  // namespace

std::optional<RegistryName> UserTable::parse_registry_name(std::string_view registry_name) {
  RegistryName out;
  std::string_view rest = registry_name;
  if (!rest.empty() && rest[0] == 'd') {
    auto device = take_numbered_part(rest, 'd');
    // "d0/..." is never made (node 0 has no prefix): only one name per buffer.
    if (!device || *device == 0) return std::nullopt;
    out.device = *device;
  }
  auto uid = take_numbered_part(rest, 'u');
  if (!uid || rest.empty()) return std::nullopt;
  out.uid = *uid;
  out.name = std::string(rest);
  return out;
}

Result<void> UserTable::reserve_buffer(uint32_t uid, const std::string& registry_name,
                                       uint64_t bytes, bool durable, uint64_t session) {
  std::lock_guard lock(mu_);
  if (buffers_.count(registry_name))
    return fail(Errc::already_exists, "buffer exists", registry_name);
  User& u = users_[uid];
  if (u.buffers + 1 > quota_.buffers) {
    return fail(Errc::quota_exceeded,
                vkn::format("uid {} has {} buffers (quota {})", uid, u.buffers, quota_.buffers));
  }
  if (quota_.bytes != 0 && (bytes > quota_.bytes || u.bytes > quota_.bytes - bytes)) {
    return fail(Errc::quota_exceeded,
                vkn::format("uid {} would hold {} + {} buffer bytes (quota {})", uid, u.bytes,
                            bytes, quota_.bytes));
  }
  u.buffers += 1;
  u.bytes += bytes;
  buffers_[registry_name] = BufferRecord{uid, bytes, durable, session, true};
  return {};
}

void UserTable::commit_buffer(const std::string& registry_name) {
  std::lock_guard lock(mu_);
  if (auto it = buffers_.find(registry_name); it != buffers_.end()) {
    it->second.pending = false;
    if (it->second.durable) ++durable_generation_;
  }
}

void UserTable::cancel_buffer(const std::string& registry_name) { remove_buffer(registry_name); }

Result<BufferRecord> UserTable::find_buffer(const std::string& registry_name) const {
  std::lock_guard lock(mu_);
  auto it = buffers_.find(registry_name);
  if (it == buffers_.end() || it->second.pending)
    return fail(Errc::not_found, "no such buffer", registry_name);
  return it->second;
}

void UserTable::remove_buffer(const std::string& registry_name) {
  std::lock_guard lock(mu_);
  auto it = buffers_.find(registry_name);
  if (it == buffers_.end()) return;
  User& u = users_[it->second.owner];
  u.buffers -= std::min<uint64_t>(u.buffers, 1);
  u.bytes -= std::min(u.bytes, it->second.bytes);
  if (it->second.durable && !it->second.pending) ++durable_generation_;
  buffers_.erase(it);
}

uint64_t UserTable::durable_generation() const {
  std::lock_guard lock(mu_);
  return durable_generation_;
}

void UserTable::adopt_buffer(const std::string& registry_name, const BufferRecord& record) {
  std::lock_guard lock(mu_);
  if (buffers_.count(registry_name)) return;
  User& u = users_[record.owner];
  u.buffers += 1;
  u.bytes += record.bytes;
  buffers_[registry_name] = record;
}

std::vector<std::pair<std::string, BufferRecord>> UserTable::buffers_of(
    std::optional<uint32_t> uid) const {
  std::lock_guard lock(mu_);
  std::vector<std::pair<std::string, BufferRecord>> out;
  for (const auto& [name, record] : buffers_) {
    if (!record.pending && (!uid || record.owner == *uid)) out.emplace_back(name, record);
  }
  return out;
}

std::pair<uint64_t, uint64_t> UserTable::totals() const {
  std::lock_guard lock(mu_);
  uint64_t count = 0, bytes = 0;
  for (const auto& [name, record] : buffers_) {
    if (record.pending) continue;
    ++count;
    bytes += record.bytes;
  }
  return {count, bytes};
}

void UserTable::set_builtins(std::vector<KernelEntry> builtins) {
  std::lock_guard lock(mu_);
  builtins_ = std::move(builtins);
}

Result<void> UserTable::add_kernel(uint32_t uid, const KernelId& id, const std::string& name) {
  std::lock_guard lock(mu_);
  User& u = users_[uid];
  if (!u.kernels.count(id) && u.kernels.size() >= quota_.kernels) {
    return fail(Errc::quota_exceeded, vkn::format("uid {} has {} kernels (quota {})", uid,
                                                  u.kernels.size(), quota_.kernels));
  }
  u.kernels[id] = name;
  return {};
}

bool UserTable::may_use_kernel(uint32_t uid, const KernelId& id) const {
  std::lock_guard lock(mu_);
  for (const auto& b : builtins_) {
    if (b.id == id) return true;
  }
  auto it = users_.find(uid);
  return it != users_.end() && it->second.kernels.count(id) > 0;
}

std::vector<KernelEntry> UserTable::kernels_of(uint32_t uid) const {
  std::lock_guard lock(mu_);
  std::vector<KernelEntry> out = builtins_;
  if (auto it = users_.find(uid); it != users_.end()) {
    for (const auto& [id, name] : it->second.kernels)
      out.push_back(KernelEntry{id, name, false, 0});
  }
  return out;
}

void UserTable::open_connection(uint64_t conn, uint32_t uid) {
  std::lock_guard lock(mu_);
  conns_[conn] = Conn{uid, 0, false};
}

Result<void> UserTable::admit_request(uint64_t conn) {
  std::lock_guard lock(mu_);
  auto it = conns_.find(conn);
  if (it == conns_.end()) return fail(Errc::node_dead, "connection closed");
  User& u = users_[it->second.uid];
  if (it->second.inflight >= quota_.per_client_queued) {
    return fail(Errc::quota_exceeded,
                vkn::format("this connection has {} requests queued or running (limit {})",
                            it->second.inflight, quota_.per_client_queued));
  }
  if (u.queued >= quota_.queued) {
    return fail(Errc::quota_exceeded,
                vkn::format("uid {} has {} requests queued or running (quota {})", it->second.uid,
                            u.queued, quota_.queued));
  }
  ++it->second.inflight;
  ++u.queued;
  return {};
}

bool UserTable::finish_request(uint64_t conn) {
  std::lock_guard lock(mu_);
  auto it = conns_.find(conn);
  if (it == conns_.end()) return false;
  User& u = users_[it->second.uid];
  u.queued -= std::min<uint64_t>(u.queued, 1);
  it->second.inflight -= std::min<uint64_t>(it->second.inflight, 1);
  return it->second.closed && it->second.inflight == 0;
}

bool UserTable::close_connection(uint64_t conn) {
  std::lock_guard lock(mu_);
  auto it = conns_.find(conn);
  if (it == conns_.end()) return false;
  it->second.closed = true;
  return it->second.inflight == 0;
}

std::vector<std::string> UserTable::session_buffers(uint64_t conn) {
  std::lock_guard lock(mu_);
  std::vector<std::string> out;
  for (const auto& [name, record] : buffers_) {
    if (record.session == conn) out.push_back(name);
  }
  return out;
}

void UserTable::forget_connection(uint64_t conn) {
  std::lock_guard lock(mu_);
  conns_.erase(conn);
}

UserUsage UserTable::usage(uint32_t uid) const {
  std::lock_guard lock(mu_);
  UserUsage out;
  out.uid = uid;
  out.quota_bytes = quota_.bytes;
  out.quota_buffers = quota_.buffers;
  out.quota_queued = quota_.queued;
  if (auto it = users_.find(uid); it != users_.end()) {
    out.bytes = it->second.bytes;
    out.buffers = it->second.buffers;
    out.queued = it->second.queued;
    out.kernels = it->second.kernels.size();
  }
  return out;
}

}  // namespace vkn::server
