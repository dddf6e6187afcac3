// Fuzz target: every message decoder of the daemon protocol (requests the daemon
// reads from any local user, replies a client reads from the daemon), including
// Program and ProgramResult. Input: one selector byte, a two-byte attachment length,
// then the payload; the attachment is the input's tail, so blob references into a
// frame's memfd are exercised too. A decoded message must re-encode and decode to
// the same encoding.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include "protocol/codec.h"
#include "protocol/messages.h"

namespace {

using namespace vkn::protocol;

// Encode, decode, encode again: both encodings must agree (the decoder accepted
// exactly what the encoder writes, and lost nothing).
template <typename T, typename Decode>
void round_trip(const T& value, Decode decode) {
  Writer w1;
  encode(w1, value);
  auto first = w1.take();
  Reader r(first);
  auto again = decode(r);
  if (!again) std::abort();
  Writer w2;
  encode(w2, *again);
  if (w2.out() != first) std::abort();
}

template <typename Decode>
void run(std::span<const std::byte> payload, std::span<const std::byte> attachment, Decode decode) {
  Reader r(payload, attachment);
  auto m = decode(r);
  if (m) round_trip(*m, decode);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 3) return 0;
  const uint8_t selector = data[0];
  size_t attach = static_cast<size_t>(data[1]) | (static_cast<size_t>(data[2]) << 8);
  auto rest = std::as_bytes(std::span(data + 3, size - 3));
  if (attach > rest.size()) attach = rest.size();
  const auto payload = rest.first(rest.size() - attach);
  const auto attachment = rest.last(attach);

  switch (selector % 14) {
    case 0: { Reader r(payload, attachment); (void)decode_error(r); (void)r.finish("envelope"); break; }
    case 1: run(payload, attachment, decode_hello_request); break;
    case 2: run(payload, attachment, decode_hello_reply); break;
    case 3: run(payload, attachment, decode_status_reply); break;
    case 4: run(payload, attachment, decode_register_kernel_request); break;
    case 5: run(payload, attachment, decode_kernel_list); break;
    case 6: run(payload, attachment, decode_create_buffer_request); break;
    case 7: run(payload, attachment, decode_write_buffer_request); break;
    case 8: run(payload, attachment, decode_read_buffer_request); break;
    case 9: run(payload, attachment, decode_name_request); break;
    case 10: run(payload, attachment, decode_list_buffers_request); break;
    case 11: run(payload, attachment, decode_buffer_list); break;
    case 12: run(payload, attachment, decode_program); break;
    case 13: run(payload, attachment, decode_program_result); break;
  }
  return 0;
}
