// FairQueue: work from many clients, handed to worker threads round-robin across
// clients, so that one client with a deep queue cannot starve another: each client
// with queued work gets one item in turn. System items (snapshots, session
// cleanup) go before any client's. Thread-safe.
//
// With a cap on running items (max_running > 0), a client item holds a slot from
// pop() until finish(), and pop() hands out client items only while a slot is free:
// items whose work goes on after pop() returns (an exec on a node, answered by the
// node's thread) still count, so the round-robin turn is taken when a slot frees, as
// it would be by a worker that waited for the node. Without a cap, finish() is not
// called and nothing is counted.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <vector>

namespace vkn::server {

template <typename Item>
class FairQueue {
 public:
  // max_running: 0, no cap.
  explicit FairQueue(size_t max_running = 0) : max_running_(max_running) {}

  // False when the queue is closed (the item is not queued).
  // The worker is woken after the lock is released, so that it does not wake only to
  // block on mu_ (a context switch more per request on a machine with few cores).
  bool push(uint64_t client, Item item) {
    {
      std::lock_guard lock(mu_);
      if (closed_) return false;
      auto& q = queues_[client];
      if (q.empty()) ring_.push_back(client);
      q.push_back(std::move(item));
      ++size_;
      pending_.fetch_add(1, std::memory_order_release);
    }
    cv_.notify_one();
    return true;
  }

  // Runs even after close().
  void push_system(Item item) {
    {
      std::lock_guard lock(mu_);
      system_.push_back(std::move(item));
      pending_.fetch_add(1, std::memory_order_release);
    }
    cv_.notify_one();
  }

  // The next item: system items first, then the next client in the ring (when a
  // slot is free). Blocks while there is none; nullopt once closed, drained, and (with
  // a cap) every slot finished, so that system items pushed by late finishers run.
  std::optional<Item> pop() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] {
      return !system_.empty() || (size_ > 0 && slot_free_locked()) || (closed_ && running_ == 0);
    });
    return take_locked();
  }

  // As pop(), but returns nullopt at once when nothing can be taken (cheap when empty:
  // no lock is taken).
  std::optional<Item> try_pop() {
    if (pending_.load(std::memory_order_acquire) == 0) return std::nullopt;
    std::unique_lock lock(mu_);
    if (system_.empty() && (size_ == 0 || !slot_free_locked())) return std::nullopt;
    return take_locked();
  }

  // Frees the slot of a client item taken by pop() (with a cap only).
  // Notifies with mu_ held: finish() runs on threads the server does not join (a node's
  // worker answering an exec), and the last slot freed lets shutdown go on and destroy this
  // queue; notifying after unlocking would touch cv_ after it may be gone (TSan found it).
  void finish() {
    std::lock_guard lock(mu_);
    --running_;
    if (closed_ && running_ == 0) {
      cv_.notify_all();
    } else if (size_ > 0) {
      cv_.notify_one();
    }
  }

  // Client items taken and not finished (with a cap).
  size_t running() const {
    std::lock_guard lock(mu_);
    return running_;
  }

  // Removes and returns a client's queued items (it disconnected).
  std::vector<Item> drop_client(uint64_t client) {
    std::lock_guard lock(mu_);
    std::vector<Item> out;
    auto it = queues_.find(client);
    if (it == queues_.end()) return out;
    for (auto& item : it->second) out.push_back(std::move(item));
    size_ -= it->second.size();
    pending_.fetch_sub(it->second.size(), std::memory_order_release);
    queues_.erase(it);
    std::erase(ring_, client);
    return out;
  }

  // Refuses further client items and returns those still queued; pop() then hands
  // out system items only and returns nullopt when they are done.
  std::vector<Item> close() {
    std::lock_guard lock(mu_);
    closed_ = true;
    std::vector<Item> out;
    for (uint64_t client : ring_) {
      for (auto& item : queues_[client]) out.push_back(std::move(item));
    }
    queues_.clear();
    ring_.clear();
    pending_.fetch_sub(size_, std::memory_order_release);
    size_ = 0;
    cv_.notify_all();
    return out;
  }

  size_t size() const {
    std::lock_guard lock(mu_);
    return size_;
  }

 private:
  // Requires: mu_ held.
  std::optional<Item> take_locked() {
    if (!system_.empty()) {
      Item item = std::move(system_.front());
      system_.pop_front();
      pending_.fetch_sub(1, std::memory_order_release);
      return item;
    }
    if (size_ == 0 || !slot_free_locked()) return std::nullopt;
    if (max_running_ > 0) ++running_;
    const uint64_t client = ring_.front();
    ring_.pop_front();
    auto it = queues_.find(client);
    Item item = std::move(it->second.front());
    it->second.pop_front();
    --size_;
    pending_.fetch_sub(1, std::memory_order_release);
    if (it->second.empty()) {
      queues_.erase(it);
    } else {
      ring_.push_back(client);  // its next item waits for every other client's turn
    }
    return item;
  }

  bool slot_free_locked() const { return max_running_ == 0 || running_ < max_running_; }

  const size_t max_running_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  // Guarded by mu_.
  std::map<uint64_t, std::deque<Item>> queues_;
  std::deque<uint64_t> ring_;  // clients with queued items, in turn order
  std::deque<Item> system_;
  size_t size_ = 0;     // client items
  size_t running_ = 0;  // client items taken, not yet finished (with a cap)
  bool closed_ = false;
  std::atomic<size_t> pending_{0};  // client and system items, readable without mu_
};

}  // namespace vkn::server
