// FakeBackend: an in-memory Backend for server tests, so that protocol, fairness,
// quota and isolation tests run without a GPU and deterministically. Buffers are
// byte vectors; a dispatch of any registered kernel sleeps for the number of
// milliseconds in the first four bytes of its push constants (a "slow job"), and
// every exec appends the first binding's buffer name to exec_log(). Thread-safe.
// exec_async runs the exec on a thread of its own and answers from there, as the real
// node answers from its worker (Shared::async_exec = false: before returning).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>

#include "server/backend.h"
#include "util/sha256.h"

namespace vkn::server::testing {

class FakeBackend final : public Backend {
 public:
  struct Shared {
    std::mutex mu;
    std::vector<std::string> exec_log;
    struct Buffer {
      BufferSpec spec;
      std::vector<std::byte> data;
      uint64_t writes = 0;
    };
    std::map<std::string, Buffer> buffers;
    bool stopped = false;
    int persists = 0;
    bool async_exec = true;
    uint64_t async_execs = 0;  // exec_async calls answered from another thread
  };
  explicit FakeBackend(std::shared_ptr<Shared> shared = std::make_shared<Shared>())
      : s_(std::move(shared)) {}
  ~FakeBackend() override {
    std::unique_lock lock(async_->mu);
    async_->cv.wait(lock, [&] { return async_->running == 0; });
  }

  std::vector<NodeStatus> status() override {
    NodeStatus n;
    n.name = "fake";
    n.health = NodeHealth::ready;
    n.device_name = "fake device";
    std::lock_guard lock(s_->mu);
    n.buffer_count = s_->buffers.size();
    return {n};
  }
  bool is_ready() override { return true; }
  std::vector<KernelEntry> builtin_kernels() override {
    KernelEntry k;
    k.id.fill(0xb1);
    k.name = "fill_u32";
    k.builtin = true;
    return {k};
  }
  Result<KernelId> register_kernel(std::span<const uint32_t> spirv, std::span<const SpecConstant>,
                                   std::string_view, Timeout) override {
    if (spirv.empty() || spirv[0] != 0x07230203) return fail(Errc::invalid_spirv, "bad magic");
    auto d = sha256({reinterpret_cast<const uint8_t*>(spirv.data()), spirv.size() * 4});
    KernelId id;
    std::memcpy(id.data(), d.data(), 32);
    return id;
  }
  Result<void> create_buffer(std::string_view name, const BufferSpec& spec, Timeout) override {
    std::lock_guard lock(s_->mu);
    if (s_->buffers.count(std::string(name))) return fail(Errc::already_exists, "exists", name);
    if (spec.bytes > (1ull << 30))
      return fail(Errc::out_of_device_memory, "fake device holds 1 GiB");
    s_->buffers[std::string(name)] = {spec, std::vector<std::byte>(spec.bytes), 0};
    return {};
  }
  Result<void> delete_buffer(std::string_view name, Timeout) override {
    std::lock_guard lock(s_->mu);
    if (!s_->buffers.erase(std::string(name))) return fail(Errc::not_found, "no buffer", name);
    return {};
  }
  Result<void> write_buffer(std::string_view name, uint64_t offset, std::span<const std::byte> data,
                            std::shared_ptr<const void>, Timeout) override {
    std::lock_guard lock(s_->mu);
    auto it = s_->buffers.find(std::string(name));
    if (it == s_->buffers.end()) return fail(Errc::not_found, "no buffer", name);
    auto& bytes = it->second.data;
    if (offset > bytes.size() || data.size() > bytes.size() - offset)
      return fail(Errc::invalid_argument, "range");
    std::memcpy(bytes.data() + offset, data.data(), data.size());
    ++it->second.writes;
    return {};
  }
  Result<void> read_buffer(std::string_view name, uint64_t offset, std::span<std::byte> out,
                           std::shared_ptr<const void>, Timeout) override {
    std::lock_guard lock(s_->mu);
    auto it = s_->buffers.find(std::string(name));
    if (it == s_->buffers.end()) return fail(Errc::not_found, "no buffer", name);
    auto& bytes = it->second.data;
    if (offset > bytes.size() || out.size() > bytes.size() - offset)
      return fail(Errc::invalid_argument, "range");
    std::memcpy(out.data(), bytes.data() + offset, out.size());
    return {};
  }
  Result<std::vector<BufferEntryInfo>> list_buffers(Timeout) override {
    std::lock_guard lock(s_->mu);
    std::vector<BufferEntryInfo> out;
    for (auto& [name, b] : s_->buffers) out.push_back({name, b.spec, false, b.writes});
    return out;
  }
  Result<ProgramResult> exec(const Program& program, Timeout timeout) override {
    ProgramResult result;
    const auto start = std::chrono::steady_clock::now();
    for (const ProgramStep& step : program.steps) {
      if (auto* d = std::get_if<DispatchStep>(&step)) {
        {
          std::lock_guard lock(s_->mu);
          s_->exec_log.push_back(d->bindings.empty() ? "" : d->bindings[0].buffer);
        }
        uint32_t ms = 0;
        if (d->push.size() >= 4) std::memcpy(&ms, d->push.data(), 4);
        std::this_thread::sleep_for(std::chrono::milliseconds(ms));
      } else if (auto* u = std::get_if<UploadStep>(&step)) {
        if (auto r = write_buffer(u->buffer, u->offset, u->data, nullptr, {}); !r)
          return fail(r.error());
      } else if (auto* dl = std::get_if<DownloadStep>(&step)) {
        std::vector<std::byte> out(dl->bytes);
        if (auto r = read_buffer(dl->buffer, dl->offset, out, nullptr, {}); !r)
          return fail(r.error());
        result.downloads.push_back(std::move(out));
      }
    }
    // Like the node: the caller learns node_timeout at its deadline (the job finishes).
    if (timeout && std::chrono::steady_clock::now() - start > *timeout) {
      return fail(Errc::node_timeout, "fake exec ran past the deadline");
    }
    return result;
  }
  void exec_async(Program program, Timeout timeout, ExecDone done) override {
    bool async;
    {
      std::lock_guard lock(s_->mu);
      async = s_->async_exec;
      if (async) ++s_->async_execs;
    }
    if (!async) return done(exec(program, timeout));
    auto tracker = async_;
    {
      std::lock_guard lock(tracker->mu);
      ++tracker->running;
    }
    std::thread([this, tracker, program = std::move(program), timeout,
                 done = std::move(done)]() mutable {
      done(exec(program, timeout));
      {
        std::lock_guard lock(tracker->mu);
        --tracker->running;
      }
      tracker->cv.notify_all();
    }).detach();
  }
  Result<std::string> persist_pipeline_cache() override {
    std::lock_guard lock(s_->mu);
    ++s_->persists;
    return std::string("/fake/cache.vkpc");
  }
  Result<std::vector<DurableImage>> durable_images(Timeout) override {
    std::lock_guard lock(s_->mu);
    std::vector<DurableImage> out;
    for (auto& [name, b] : s_->buffers) {
      if (b.spec.durable) out.push_back({name, b.spec, b.data});
    }
    return out;
  }
  void stop() override {
    std::lock_guard lock(s_->mu);
    s_->stopped = true;
  }

  Shared& shared() { return *s_; }

 private:
  struct AsyncTracker {
    std::mutex mu;
    std::condition_variable cv;
    int running = 0;  // exec_async threads still in this backend
  };
  std::shared_ptr<Shared> s_;
  std::shared_ptr<AsyncTracker> async_ = std::make_shared<AsyncTracker>();
};

}  // namespace vkn::server::testing
