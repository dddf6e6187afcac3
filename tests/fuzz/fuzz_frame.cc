// Fuzz target: the daemon's frame reader. The input goes into one end of a Unix
// socket pair exactly as a peer would send it; recv_frame must return a frame whose
// payload matches its header, or an error, and never crash, hang or over-read.
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "protocol/frame_io.h"
#include "protocol/messages.h"
#include "protocol/wire.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace vkn::protocol;
  const auto bytes = std::as_bytes(std::span(data, size));
  // The header decoder on its own (every prefix a peer might stop at).
  if (size >= kHeaderSize) (void)decode_header(bytes.first(kHeaderSize));

  // A socket pair's buffer holds well over this; larger inputs only repeat the payload path.
  if (size > 64 * 1024) return 0;
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) std::abort();
  UniqueFd reader(sv[0]);
  {
    UniqueFd writer(sv[1]);
    size_t done = 0;
    while (done < size) {
      const ssize_t n = ::send(writer.get(), data + done, size - done, MSG_NOSIGNAL);
      if (n <= 0) std::abort();
      done += static_cast<size_t>(n);
    }
  }  // closed: the reader sees EOF after the input
  auto frame = recv_frame(reader.get(), kMaxAttachment);
  if (frame) {
    if (frame->payload.size() != frame->header.payload_size) std::abort();
    if (frame->attachment) std::abort();  // no descriptor was ever sent
    // The envelope every reply starts with, as a client reads it.
    Reader r(frame->payload);
    (void)decode_error(r);
  }
  return 0;
}
