// Unit tests of the daemon's pieces: FairQueue, UserTable, snapshot format.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <random>
#include <thread>

#include "server/fair_queue.h"
#include "server/mapping_cache.h"
#include "server/snapshot.h"
#include "server/user_table.h"

namespace vkn::server {
namespace {

TEST(FairQueueTest, ServesClientsRoundRobin) {
  FairQueue<std::string> q;
  for (int i = 0; i < 4; ++i) q.push(1, "a" + std::to_string(i));
  q.push(2, "b0");
  q.push(2, "b1");
  q.push(3, "c0");
  std::vector<std::string> order;
  while (q.size() > 0) order.push_back(*q.pop());
  EXPECT_EQ(order, (std::vector<std::string>{"a0", "b0", "c0", "a1", "b1", "a2", "a3"}));
}

TEST(FairQueueTest, SystemItemsGoFirstAndSurviveClose) {
  FairQueue<std::string> q;
  q.push(1, "client");
  q.push_system("system");
  EXPECT_EQ(*q.pop(), "system");
  auto dropped = q.close();
  ASSERT_EQ(dropped.size(), 1u);
  EXPECT_FALSE(q.push(1, "late"));
  q.push_system("cleanup");
  EXPECT_EQ(*q.pop(), "cleanup");
  EXPECT_FALSE(q.pop().has_value());
}

TEST(FairQueueTest, DropClientRemovesOnlyItsItems) {
  FairQueue<int> q;
  q.push(1, 10);
  q.push(2, 20);
  q.push(1, 11);
  auto dropped = q.drop_client(1);
  EXPECT_EQ(dropped, (std::vector<int>{10, 11}));
  EXPECT_EQ(*q.pop(), 20);
  EXPECT_EQ(q.size(), 0u);
}

TEST(FairQueueTest, SlotsHoldClientItemsUntilFinished) {
  FairQueue<std::string> q(1);  // one request in flight at a time
  q.push(1, "a0");
  q.push(1, "a1");
  q.push(2, "b0");
  EXPECT_EQ(*q.try_pop(), "a0");
  EXPECT_EQ(q.running(), 1u);
  EXPECT_FALSE(q.try_pop().has_value());  // the slot is a0's until it finishes
  q.push_system("system");
  EXPECT_EQ(*q.try_pop(), "system");  // system items need no slot
  std::thread finisher([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    q.finish();
  });
  EXPECT_EQ(*q.pop(), "b0");  // blocks until the slot frees; then the round robin goes on
  finisher.join();
  q.finish();
  EXPECT_EQ(*q.pop(), "a1");
  // Closed: pop() waits for the last slot, so that what its finisher queues still runs.
  EXPECT_TRUE(q.close().empty());
  std::thread last([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    q.push_system("cleanup");
    q.finish();
  });
  EXPECT_EQ(*q.pop(), "cleanup");
  EXPECT_FALSE(q.pop().has_value());
  last.join();
  EXPECT_EQ(q.running(), 0u);
}

TEST(UserTableTest, NamesAreNamespacedAndChecked) {
  EXPECT_EQ(*UserTable::registry_name(1000, "a/b.c:d-e_f"), "u1000/a/b.c:d-e_f");
  for (std::string_view bad : {"", "a b", "a\\b", "\xff", "x*"})
    EXPECT_FALSE(UserTable::registry_name(1, bad));
  EXPECT_FALSE(UserTable::registry_name(1, std::string(101, 'a')));
  EXPECT_TRUE(UserTable::registry_name(1, std::string(100, 'a')));
  auto parsed = UserTable::parse_registry_name("u42/x/y");
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->device, 0u);
  EXPECT_EQ(parsed->uid, 42u);
  EXPECT_EQ(parsed->name, "x/y");
  for (std::string_view bad : {"x42/y", "u/y", "u42", "u42/", "u4x/y", "u99999999999/y", "d1/x",
                               "d0/u1/x", "d/u1/x", "d1/u1/", "dx/u1/y"}) {
    EXPECT_FALSE(UserTable::parse_registry_name(bad)) << bad;
  }
}

TEST(UserTableTest, NamesOnOtherDeviceNodesCarryTheDevice) {
  EXPECT_EQ(*UserTable::registry_name(1000, "x", 0), "u1000/x");
  EXPECT_EQ(*UserTable::registry_name(1000, "x", 3), "d3/u1000/x");
  auto parsed = UserTable::parse_registry_name("d3/u1000/x/y");
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->device, 3u);
  EXPECT_EQ(parsed->uid, 1000u);
  EXPECT_EQ(parsed->name, "x/y");
  // One name on two nodes is two table entries, each counted against the user.
  UserTable t(Quota{});
  ASSERT_TRUE(t.reserve_buffer(1000, *UserTable::registry_name(1000, "x", 0), 8, false, 0));
  ASSERT_TRUE(t.reserve_buffer(1000, *UserTable::registry_name(1000, "x", 1), 16, false, 0));
  t.commit_buffer("u1000/x");
  t.commit_buffer("d1/u1000/x");
  EXPECT_EQ(t.usage(1000).buffers, 2u);
  EXPECT_EQ(t.totals(), (std::pair<uint64_t, uint64_t>{2, 24}));
}

TEST(UserTableTest, QuotasAndReservations) {
  Quota q;
  q.bytes = 100;
  q.buffers = 2;
  UserTable t(q);
  EXPECT_TRUE(t.reserve_buffer(1, "u1/a", 60, false, 0));
  EXPECT_EQ(t.reserve_buffer(1, "u1/a", 1, false, 0).error().code, Errc::already_exists);
  EXPECT_FALSE(t.find_buffer("u1/a"));  // pending until committed
  t.commit_buffer("u1/a");
  EXPECT_TRUE(t.find_buffer("u1/a"));
  EXPECT_EQ(t.reserve_buffer(1, "u1/b", 41, false, 0).error().code, Errc::quota_exceeded);
  EXPECT_TRUE(t.reserve_buffer(1, "u1/b", 40, false, 0));
  EXPECT_EQ(t.reserve_buffer(1, "u1/c", 0, false, 0).error().code, Errc::quota_exceeded);
  EXPECT_TRUE(t.reserve_buffer(2, "u2/c", 100, false, 0));  // another user's own quota
  t.cancel_buffer("u1/b");
  EXPECT_EQ(t.usage(1).bytes, 60u);
  EXPECT_EQ(t.usage(1).buffers, 1u);
  EXPECT_EQ(t.reserve_buffer(1, "u1/huge", UINT64_MAX, false, 0).error().code,
            Errc::quota_exceeded);
}

TEST(UserTableTest, ConnectionIdleAfterCloseTriggersCleanup) {
  Quota q;
  q.per_client_queued = 2;
  UserTable t(q);
  t.open_connection(7, 1);
  EXPECT_TRUE(t.admit_request(7));
  EXPECT_TRUE(t.admit_request(7));
  EXPECT_EQ(t.admit_request(7).error().code, Errc::quota_exceeded);
  EXPECT_TRUE(t.reserve_buffer(1, "u1/s", 8, false, 7));
  t.commit_buffer("u1/s");
  EXPECT_FALSE(t.close_connection(7));  // still busy
  EXPECT_FALSE(t.finish_request(7));
  EXPECT_TRUE(t.finish_request(7));  // now idle and closed
  EXPECT_EQ(t.session_buffers(7), (std::vector<std::string>{"u1/s"}));
}

TEST(UserTableTest, KernelsArePerUser) {
  UserTable t(Quota{});
  KernelEntry builtin;
  builtin.id.fill(1);
  builtin.builtin = true;
  t.set_builtins({builtin});
  KernelId mine;
  mine.fill(2);
  EXPECT_TRUE(t.add_kernel(10, mine, "mine"));
  EXPECT_TRUE(t.may_use_kernel(10, mine));
  EXPECT_FALSE(t.may_use_kernel(11, mine));
  EXPECT_TRUE(t.may_use_kernel(11, builtin.id));
  EXPECT_EQ(t.kernels_of(10).size(), 2u);
  EXPECT_EQ(t.kernels_of(11).size(), 1u);
}

protocol::SharedMemory sealed_memfd(uint64_t bytes) {
  auto m = protocol::SharedMemory::create(bytes);
  EXPECT_TRUE(m);
  EXPECT_TRUE(m->seal());
  return std::move(*m);
}

TEST(MappingCacheTest, SameMemfdIsMappedOnce) {
  MappingCache cache;
  auto a = sealed_memfd(8192);
  auto b = sealed_memfd(8192);
  auto first = cache.adopt(protocol::UniqueFd(::dup(a.fd())), 1 << 20);
  auto again = cache.adopt(protocol::UniqueFd(::dup(a.fd())), 1 << 20);
  auto other = cache.adopt(protocol::UniqueFd(::dup(b.fd())), 1 << 20);
  ASSERT_TRUE(first && again && other);
  EXPECT_EQ(first->get(), again->get());
  EXPECT_NE(first->get(), other->get());
  // Writes through one mapping are seen through the sender's.
  (*first)->bytes()[5] = std::byte{42};
  EXPECT_EQ(a.bytes()[5], std::byte{42});
}

TEST(MappingCacheTest, KeepsAFewAndRefusesUnsealed) {
  MappingCache cache;
  std::vector<protocol::SharedMemory> memfds;
  for (size_t i = 0; i < MappingCache::kMaxEntries + 2; ++i) {
    memfds.push_back(sealed_memfd(4096));
    ASSERT_TRUE(cache.adopt(protocol::UniqueFd(::dup(memfds.back().fd())), 1 << 20));
  }
  EXPECT_EQ(cache.size(), MappingCache::kMaxEntries);
  auto unsealed = protocol::SharedMemory::create(4096);
  ASSERT_TRUE(unsealed);
  auto r = cache.adopt(protocol::UniqueFd(::dup(unsealed->fd())), 1 << 20);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::protocol_error);
}

std::vector<DurableImage> sample_images() {
  DurableImage a{"u0/a", BufferSpec{8, ElementType::u32, {2}, true},
                 std::vector<std::byte>(8, std::byte{1})};
  DurableImage b{"u1000/b", BufferSpec{3, ElementType::bytes, {}, true},
                 std::vector<std::byte>(3, std::byte{2})};
  return {a, b};
}

TEST(SnapshotTest, RoundTrip) {
  auto bytes = encode_snapshot(sample_images());
  auto back = decode_snapshot(bytes);
  ASSERT_TRUE(back) << back.error().to_string();
  ASSERT_EQ(back->size(), 2u);
  EXPECT_EQ((*back)[0].name, "u0/a");
  EXPECT_EQ((*back)[0].spec.shape, (std::vector<uint64_t>{2}));
  EXPECT_EQ((*back)[1].data, std::vector<std::byte>(3, std::byte{2}));
  EXPECT_TRUE(decode_snapshot(encode_snapshot({})));
}

TEST(SnapshotTest, EveryTruncationAndByteFlipIsRejected) {
  const auto bytes = encode_snapshot(sample_images());
  for (size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_FALSE(decode_snapshot(std::span(bytes).first(n))) << n;
  }
  for (size_t i = 0; i < bytes.size(); ++i) {
    auto copy = bytes;
    copy[i] ^= std::byte{0x41};
    auto r = decode_snapshot(copy);
    if (r) ADD_FAILURE() << "flip at " << i << " accepted";
  }
}

TEST(SnapshotTest, RandomFilesNeverCrash) {
  std::mt19937 rng(5);
  for (int i = 0; i < 2000; ++i) {
    std::vector<std::byte> junk(rng() % 200);
    for (auto& b : junk) b = static_cast<std::byte>(rng());
    if (junk.size() >= 8 && i % 2 == 0) std::memcpy(junk.data(), "VKNSNAP1", 8);
    EXPECT_FALSE(decode_snapshot(junk));
  }
}

}  // namespace
}  // namespace vkn::server
