#include "mpi_sample.h"

#include <mpi.h>
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "mpi_chain_group.h"
#include "rank_plan.h"
#include "sample_backend.h"
#include "sample_options.h"
#include "sample_report.h"
#include "util/strformat.h"
#include "vknode/node/node.h"
#include "vknode/sampler/result_codec.h"

namespace vkn::cli {
namespace {

using namespace vkn::sampler;

constexpr size_t kHostBytes = 64;

struct Rank {
  int rank = 0, size = 1, local_rank = 0, local_size = 1;
  std::string host;
};

Rank describe_rank() {
  Rank r;
  MPI_Comm_rank(MPI_COMM_WORLD, &r.rank);
  MPI_Comm_size(MPI_COMM_WORLD, &r.size);
  MPI_Comm local;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, r.rank, MPI_INFO_NULL, &local);
  MPI_Comm_rank(local, &r.local_rank);
  MPI_Comm_size(local, &r.local_size);
  MPI_Comm_free(&local);
  char name[MPI_MAX_PROCESSOR_NAME] = {};
  int len = 0;
  MPI_Get_processor_name(name, &len);
  r.host.assign(name, static_cast<size_t>(len));
  return r;
}

// Says why on stderr and ends the whole job: the other ranks may be waiting in a collective.
[[noreturn]] void abort_job(const Rank& me, const std::string& why) {
  std::fprintf(stderr, "vknode-mpi: rank %d on %s failed: %s\n", me.rank, me.host.c_str(), why.c_str());
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, 1);
  std::_Exit(1);
}

// Test-only: the rank named by the variable is this one.
bool test_hook(const char* variable, const Rank& me) {
  const char* v = std::getenv(variable);
  return v && *v && std::atoi(v) == me.rank;
}

// The GPU for this rank: the machine's daemon if one answers (--device auto or daemon), else an
// in-process node on the rank's device (ranks of one machine take its devices in turn); null:
// the CPU.
std::unique_ptr<SampleBackend> start_gpu(const Model& model, const SampleOptions& o, const Rank& me) {
  if (o.device == "cpu") return nullptr;
  const std::string selector = device_for_rank(gpu_selectors(o.gpus.empty() ? "all" : o.gpus),
                                               static_cast<uint32_t>(me.local_rank));
  auto g = SampleBackend::start(model, o, {selector}, vkn::format("vknode-mpi-{}-{}", ::getpid(), me.rank),
                                static_cast<uint32_t>(me.local_rank));
  if (!g) abort_job(me, g.error().to_string());
  if (!(*g)->note().empty()) {
    std::fprintf(stderr, "vknode-mpi: rank %d: %s; sampling on the CPU\n", me.rank, (*g)->note().c_str());
  }
  if (test_hook("VKNODE_TEST_FAULT_RANK", me) && !(*g)->nodes().empty()) {
    // Every later submission on this rank's node reports a lost device.
    (void)TEST_inject((*g)->nodes()[0], 1 << 30, 0, 0);
  }
  return std::move(*g);
}

// Rank 0 receives every rank's encoded result and host name.
bool gather(const Rank& me, const std::vector<std::byte>& mine, std::vector<std::vector<std::byte>>& parts,
            std::vector<std::string>& hosts) {
  if (mine.size() > static_cast<size_t>(INT_MAX)) abort_job(me, "this rank's draws exceed 2 GiB: use fewer draws");
  int bytes = static_cast<int>(mine.size());
  std::vector<int> sizes(static_cast<size_t>(me.size)), offsets(sizes.size());
  MPI_Gather(&bytes, 1, MPI_INT, sizes.data(), 1, MPI_INT, 0, MPI_COMM_WORLD);
  char host[kHostBytes] = {};
  me.host.copy(host, kHostBytes - 1);
  std::vector<char> all_hosts(kHostBytes * sizes.size());
  MPI_Gather(host, kHostBytes, MPI_CHAR, all_hosts.data(), kHostBytes, MPI_CHAR, 0, MPI_COMM_WORLD);
  std::vector<std::byte> all;
  if (me.rank == 0) {
    size_t total = 0;
    for (size_t r = 0; r < sizes.size(); ++r) {
      offsets[r] = static_cast<int>(total);
      total += static_cast<size_t>(sizes[r]);
      if (total > static_cast<size_t>(INT_MAX)) abort_job(me, "the joined draws exceed 2 GiB: use fewer draws");
    }
    all.resize(total);
  }
  MPI_Gatherv(mine.data(), bytes, MPI_BYTE, all.data(), sizes.data(), offsets.data(), MPI_BYTE, 0, MPI_COMM_WORLD);
  if (me.rank != 0) return true;
  for (size_t r = 0; r < sizes.size(); ++r) {
    parts.emplace_back(all.begin() + offsets[r], all.begin() + offsets[r] + sizes[r]);
    hosts.emplace_back(&all_hosts[r * kHostBytes]);
  }
  return true;
}

// Rank 0: joins the parts, says where each ran, writes the CSVs and the summary.
int report_joined(const Model& model, const SampleOptions& o, const Rank& me,
                  const std::vector<std::vector<std::byte>>& encoded, const std::vector<std::string>& hosts) {
  std::vector<SampleResult> parts;
  for (size_t r = 0; r < encoded.size(); ++r) {
    auto part = decode_result(encoded[r]);
    if (!part) abort_job(me, vkn::format("rank {}'s result: {}", r, part.error().to_string()));
    std::fprintf(stderr, "vknode-mpi: rank %zu on %s: chains %u-%u on %s%s%s\n", r, hosts[r].c_str(),
                 part->first_chain + 1, part->first_chain + part->chains, part->backend.c_str(),
                 part->fallback_reason.empty() ? "" : "; ", part->fallback_reason.c_str());
    parts.push_back(std::move(*part));
  }
  auto all = concatenate_chains(parts);
  if (!all) abort_job(me, all.error().to_string());
  const double seconds = all->warmup_seconds + all->sampling_seconds;
  std::fprintf(stderr, "vknode-mpi: %zu ranks, %llu leapfrog steps in %.3f s (slowest rank): %.4g leapfrog steps/s\n",
               parts.size(), static_cast<unsigned long long>(all->gradient_evaluations), seconds,
               seconds > 0 ? static_cast<double>(all->gradient_evaluations) / seconds : 0.0);
  const std::string device = vkn::format("{} ranks: {}", parts.size(), all->backend);
  return report_run(model, *all, o, device);
}

}  // namespace

std::string mpi_sample_usage() {
  return std::string("usage: mpirun -np N vknode-mpi sample [MODEL] [options]\n\n") +
         "Runs one HMC run over the MPI ranks: chains split across ranks, warm-up shared,\n"
         "draws joined on rank 0 (docs/mpi.md). --gpus picks the devices ranks take in turn\n"
         "(default all).\n\n" +
         kSampleOptionsHelp + "\nExit codes: 0 success, 1 failure, 2 bad usage.\n";
}

int mpi_sample_command(std::span<char* const> args) {
  const Rank me = describe_rank();
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  const std::string usage = mpi_sample_usage();
  SampleOptions o;
  if (auto err = parse_sample_args(args, o); !err.empty()) {
    if (me.rank == 0) std::fprintf(stderr, "vknode-mpi sample: %s\n\n%s", err.c_str(), usage.c_str());
    return 2;
  }
  const uint32_t total = o.config.chains;
  if (total < static_cast<uint32_t>(me.size)) {
    if (me.rank == 0) std::fprintf(stderr, "vknode-mpi sample: %u chains for %d ranks: give every rank one\n", total, me.size);
    return 2;
  }
  auto model = build_model(o);
  if (!model) {
    if (me.rank == 0) std::fprintf(stderr, "vknode-mpi sample: %s\n", model.error().to_string().c_str());
    return 2;
  }
  MpiChainGroup group(MPI_COMM_WORLD, total);
  const ChainShare share = chain_share(total, static_cast<uint32_t>(me.size), static_cast<uint32_t>(me.rank));
  o.config.chains = share.count;
  o.config.first_chain = share.first;
  o.config.group = &group;
  if (o.config.threads == 0) {
    o.config.threads = threads_for_rank(std::thread::hardware_concurrency(), static_cast<uint32_t>(me.local_size));
  }
  if (auto v = validate(o.config, **model); !v) {
    if (me.rank == 0) std::fprintf(stderr, "vknode-mpi sample: %s\n", v.error().to_string().c_str());
    return 2;
  }
  if (me.rank == 0 && o.progress && ::isatty(STDERR_FILENO)) o.config.progress = draw_progress;
  auto gpu = start_gpu(**model, o, me);
  auto result = sample(**model, o.config, gpu ? gpu->backend() : nullptr);
  if (!result) abort_job(me, result.error().to_string());
  if (gpu && !gpu->note().empty() && result->fallback_reason.empty()) result->fallback_reason = gpu->note();
  gpu.reset();
  if (test_hook("VKNODE_TEST_EXIT_RANK", me)) std::_Exit(3);  // dies before joining the results
  std::vector<std::vector<std::byte>> parts;
  std::vector<std::string> hosts;
  gather(me, encode_result(*result), parts, hosts);
  if (me.rank != 0) return 0;
  return report_joined(**model, o, me, parts, hosts);
}

}  // namespace vkn::cli
