#include "util/sha256.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace vkn {
namespace {

std::span<const uint8_t> bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

std::string hex_digest(std::string_view s) { return to_hex(sha256(bytes(s))); }

constexpr std::string_view k448BitMessage =
    "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";

// FIPS 180-2, appendix B.
TEST(Sha256Test, EmptyMessage) {
  EXPECT_EQ(hex_digest(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(Sha256Test, Abc) {
  EXPECT_EQ(hex_digest("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Sha256Test, TwoBlockMessage) {
  EXPECT_EQ(hex_digest(k448BitMessage),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(Sha256Test, OneMillionA) {
  const std::string a(1'000'000, 'a');
  EXPECT_EQ(hex_digest(a), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256Test, OneMillionAInOddChunks) {
  Sha256 hasher;
  const std::string chunk(997, 'a');  // prime, so chunks straddle block boundaries
  size_t left = 1'000'000;
  while (left > 0) {
    size_t n = std::min(left, chunk.size());
    hasher.update(bytes(std::string_view(chunk).substr(0, n)));
    left -= n;
  }
  const Sha256Digest digest = hasher.finish();
  EXPECT_EQ(to_hex(digest), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256Test, IncrementalMatchesOneShotAtEverySplit) {
  // 130 bytes covers splits before, at and after both block boundaries and the 56-byte
  // padding boundary.
  std::vector<uint8_t> message(130);
  for (size_t i = 0; i < message.size(); ++i) message[i] = static_cast<uint8_t>(i * 7 + 3);
  for (size_t len = 0; len <= message.size(); ++len) {
    std::span<const uint8_t> m(message.data(), len);
    const Sha256Digest expected = sha256(m);
    for (size_t split = 0; split <= len; ++split) {
      Sha256 hasher;
      hasher.update(m.subspan(0, split));
      hasher.update(m.subspan(split));
      ASSERT_EQ(hasher.finish(), expected) << "len " << len << " split " << split;
    }
  }
}

TEST(Sha256Test, FinishResetsForNextMessage) {
  Sha256 hasher;
  hasher.update(bytes("abc"));
  EXPECT_EQ(hasher.finish(), sha256(bytes("abc")));
  EXPECT_EQ(hasher.finish(), sha256({}));
  hasher.update(bytes(k448BitMessage));
  EXPECT_EQ(hasher.finish(), sha256(bytes(k448BitMessage)));
}

std::string digest_with(Sha256Impl impl, std::span<const uint8_t> data) {
  Sha256 h(impl);
  h.update(data);
  return to_hex(h.finish());
}

// The portable and the accelerated compression (the x86 SHA extensions, where this CPU
// has them) on the standard vectors and on random messages of every length class.
TEST(Sha256Test, PortableAndAcceleratedAgree) {
  for (Sha256Impl impl : {Sha256Impl::portable, Sha256Impl::best}) {
    EXPECT_EQ(digest_with(impl, bytes("abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    EXPECT_EQ(digest_with(impl, bytes(k448BitMessage)),
              "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  }
  std::mt19937 rng(std::random_device{}());
  std::vector<uint8_t> data(5000);
  for (uint8_t& b : data) b = static_cast<uint8_t>(rng());
  for (size_t len : {0u, 1u, 55u, 56u, 63u, 64u, 65u, 127u, 128u, 129u, 1000u, 3700u, 5000u}) {
    const std::span<const uint8_t> msg(data.data(), len);
    EXPECT_EQ(digest_with(Sha256Impl::best, msg), digest_with(Sha256Impl::portable, msg)) << "length " << len;
  }
  RecordProperty("accelerated", sha256_accelerated() ? "yes" : "no");
}

TEST(Sha256Test, ToHexIsLowercaseTwoDigitsPerByte) {
  const std::vector<uint8_t> b = {0x00, 0x0f, 0xa0, 0xff, 0x5c};
  EXPECT_EQ(to_hex(b), "000fa0ff5c");
  EXPECT_EQ(to_hex({}), "");
}

}  // namespace
}  // namespace vkn
