#include "protocol/shared_memory.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "util/strformat.h"

namespace vkn::protocol {
namespace {

constexpr int kSizeSeals = F_SEAL_SHRINK | F_SEAL_GROW;

Error errno_error(Errc code, std::string_view what, int err) {
  return Error::make(code, what, std::strerror(err));
}

Result<std::byte*> map(int fd, uint64_t bytes) {
  if (bytes == 0) return static_cast<std::byte*>(nullptr);
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    const int err = errno;
    return fail(errno_error(err == ENOMEM ? Errc::out_of_host_memory : Errc::io_error,
                            "mmap of a memfd", err));
  }
  return static_cast<std::byte*>(p);
}

}  // namespace

Result<SharedMemory> SharedMemory::create(uint64_t bytes, std::string_view name) {
  UniqueFd fd(::memfd_create(std::string(name).c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd.is_open()) return fail(errno_error(Errc::io_error, "memfd_create", errno));
  if (::ftruncate(fd.get(), static_cast<off_t>(bytes)) != 0) {
    const int err = errno;
    return fail(
        errno_error(err == ENOSPC || err == ENOMEM ? Errc::out_of_host_memory : Errc::io_error,
                    vkn::format("ftruncate of a {}-byte memfd", bytes), err));
  }
  auto data = map(fd.get(), bytes);
  if (!data) return fail(data.error());
  return SharedMemory(std::move(fd), *data, bytes);
}

Result<SharedMemory> SharedMemory::adopt(UniqueFd fd, uint64_t max_bytes) {
  const int seals = ::fcntl(fd.get(), F_GET_SEALS);
  if (seals < 0)
    return fail(Errc::protocol_error, "attachment is not a memfd", std::strerror(errno));
  if ((seals & kSizeSeals) != kSizeSeals) {
    return fail(Errc::protocol_error,
                "attachment memfd is not sealed against shrinking and growing");
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0)
    return fail(errno_error(Errc::io_error, "fstat of an attachment", errno));
  const uint64_t bytes = static_cast<uint64_t>(st.st_size);
  if (bytes > max_bytes) {
    return fail(Errc::protocol_error, "attachment too large",
                vkn::format("{} bytes (limit {})", bytes, max_bytes));
  }
  auto data = map(fd.get(), bytes);
  if (!data) return fail(data.error());
  return SharedMemory(std::move(fd), *data, bytes);
}

SharedMemory::SharedMemory(SharedMemory&& other) noexcept
    : fd_(std::move(other.fd_)),
      data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)) {}

SharedMemory& SharedMemory::operator=(SharedMemory&& other) noexcept {
  if (this != &other) {
    unmap();
    fd_ = std::move(other.fd_);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

SharedMemory::~SharedMemory() { unmap(); }

void SharedMemory::unmap() {
  if (data_ != nullptr) ::munmap(data_, size_);
  data_ = nullptr;
  size_ = 0;
}

void SharedMemory::prefault(std::span<const std::byte> range, bool for_write) const {
  if (range.empty() || data_ == nullptr) return;
  const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const uintptr_t lo = reinterpret_cast<uintptr_t>(range.data()) & ~(page - 1);
  const uintptr_t hi = reinterpret_cast<uintptr_t>(range.data()) + range.size();
  const uintptr_t base = reinterpret_cast<uintptr_t>(data_);
  if (lo < base || hi > base + size_) return;  // not ours
  ::madvise(reinterpret_cast<void*>(lo), hi - lo,
            for_write ? MADV_POPULATE_WRITE : MADV_POPULATE_READ);
}

Result<void> SharedMemory::seal() const {
  const int seals = ::fcntl(fd_.get(), F_GET_SEALS);
  if (seals >= 0 && (seals & kSizeSeals) == kSizeSeals) return {};
  if (::fcntl(fd_.get(), F_ADD_SEALS, kSizeSeals | F_SEAL_SEAL) != 0) {
    return fail(errno_error(Errc::io_error, "sealing a memfd", errno));
  }
  return {};
}

}  // namespace vkn::protocol
