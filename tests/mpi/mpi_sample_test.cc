// vknode-mpi under mpirun (2 and 3 ranks on this machine, oversubscribed) against vknode
// sample in one process: the joined CSVs, the shared adaptation, a rank whose node fails, and
// a rank that dies.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "vknode/sampler/diagnostics.h"

namespace {

namespace fs = std::filesystem;

struct CommandRun {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

CommandRun run(const std::string& command) {
  CommandRun r;
  FILE* p = ::popen((command + " 2>&1").c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
  const int status = ::pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

// mpirun as this user (root in CI containers) with more ranks than cores, on shared memory,
// launching on this machine only (no ssh). In ASan builds the ranks run without LeakSanitizer:
// Open MPI's components (dlclosed at MPI_Finalize) leave allocations that LSan reports from
// unknown modules, and none of them are ours (checked by hand: libmpi, libopen-pal, plugins).
std::string mpirun(int ranks, const std::string& env = "") {
  std::string cmd = std::string("ASAN_OPTIONS=\"${ASAN_OPTIONS}:detect_leaks=0\" ") +
                    "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_plm=isolated " +
                    "OMPI_MCA_btl_vader_single_copy_mechanism=none OMPI_MCA_rmaps_base_oversubscribe=1 " + env + " " +
                    VKNODE_MPIEXEC + " -np " + std::to_string(ranks);
  return cmd + " " + VKNODE_MPI_CLI + " sample";
}

class MpiSampleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("vknode-mpi-test-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
  }
  std::string prefix(const std::string& name) const { return (dir_ / name).string(); }

  // The draw rows of one chain's CSV (comments and the header skipped).
  static std::vector<std::vector<double>> rows(const std::string& path) {
    std::ifstream in(path);
    std::vector<std::vector<double>> out;
    std::string line;
    bool header = true;
    while (std::getline(in, line)) {
      if (line.empty() || line[0] == '#') continue;
      if (header) {
        header = false;
        continue;
      }
      std::vector<double> row;
      std::stringstream ss(line);
      std::string cell;
      while (std::getline(ss, cell, ',')) row.push_back(std::stod(cell));
      out.push_back(std::move(row));
    }
    return out;
  }

  // Column `col` of every chain's CSV, as [chain][draw].
  static std::vector<double> column(const std::string& prefix, int chains, size_t col) {
    std::vector<double> out;
    for (int c = 1; c <= chains; ++c) {
      for (const auto& row : rows(prefix + "_" + std::to_string(c) + ".csv")) out.push_back(row.at(col));
    }
    return out;
  }

  fs::path dir_;
};

constexpr const char* kModel = " normal --params d=3,mu=1,sigma=2 --warmup 150 --draws 150 --no-progress";
constexpr size_t kFirstParamColumn = 7;  // after lp__ ... energy__

TEST_F(MpiSampleTest, RanksJoinIntoExactlyTheOneProcessRun) {
  const std::string args = std::string(kModel) + " --chains 7 --device cpu --seed 5";
  const CommandRun one = run(std::string(VKNODE_CLI) + " sample" + args + " --output " + prefix("one"));
  ASSERT_EQ(one.exit_code, 0) << one.output;
  for (int ranks : {2, 3}) {
    const std::string out = prefix("ranks" + std::to_string(ranks));
    const CommandRun r = run(mpirun(ranks) + args + " --output " + out);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("rank " + std::to_string(ranks - 1) + " on "), std::string::npos) << r.output;
    for (int c = 1; c <= 7; ++c) {
      const auto a = rows(prefix("one") + "_" + std::to_string(c) + ".csv");
      const auto b = rows(out + "_" + std::to_string(c) + ".csv");
      ASSERT_EQ(a.size(), 150u);
      EXPECT_EQ(a, b) << ranks << " ranks, chain " << c;
    }
  }
}

TEST_F(MpiSampleTest, SharedAdaptationMatchesOneProcessInDistribution) {
  const std::string args =
      std::string(kModel) + " --chains 6 --device cpu --seed 9 --pooled-metric --pooled-step-size --adapt-steps";
  const CommandRun one = run(std::string(VKNODE_CLI) + " sample" + args + " --output " + prefix("one"));
  ASSERT_EQ(one.exit_code, 0) << one.output;
  const CommandRun split = run(mpirun(3) + args + " --output " + prefix("split"));
  ASSERT_EQ(split.exit_code, 0) << split.output;
  for (size_t k = 0; k < 3; ++k) {
    const auto a = vkn::sampler::summarize_param("a", column(prefix("one"), 6, kFirstParamColumn + k), 6);
    const auto b = vkn::sampler::summarize_param("b", column(prefix("split"), 6, kFirstParamColumn + k), 6);
    const double mcse = std::hypot(a.mcse_mean, b.mcse_mean);
    EXPECT_LT(std::abs(a.mean - b.mean), 5 * mcse) << "param " << k;
    EXPECT_LT(std::abs(b.mean - 1.0), 5 * b.mcse_mean) << "param " << k;
    EXPECT_NEAR(b.sd, 2.0, 0.4) << "param " << k;
    EXPECT_LT(b.rhat, 1.05);
  }
  // One step size and one metric for every chain of every rank.
  std::string first_step;
  for (int c = 1; c <= 6; ++c) {
    std::ifstream in(prefix("split") + "_" + std::to_string(c) + ".csv");
    std::string line, step;
    while (std::getline(in, line)) {
      if (line.rfind("# Step size", 0) == 0) step = line;
    }
    ASSERT_FALSE(step.empty());
    if (c == 1) first_step = step;
    EXPECT_EQ(step, first_step) << "chain " << c;
  }
}

TEST_F(MpiSampleTest, AFaultInOneRanksNodeIsSurvived) {
  const CommandRun r =
      run(mpirun(3, "VKNODE_TEST_FAULT_RANK=1") + kModel + " --chains 6 --seed 3 --device gpu --output " + prefix("f"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("rank 1 on"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("device_lost"), std::string::npos) << r.output;
  for (size_t k = 0; k < 3; ++k) {
    const auto s = vkn::sampler::summarize_param("x", column(prefix("f"), 6, kFirstParamColumn + k), 6);
    EXPECT_LT(std::abs(s.mean - 1.0), 5 * s.mcse_mean) << "param " << k;
  }
}

// Ranks of one machine use its daemon, taking its device nodes in turn.
TEST_F(MpiSampleTest, RanksUseTheMachinesDaemonOnePerDeviceNode) {
  const std::string socket = prefix("d.sock"), env = "VKNODE_SOCKET=" + socket;
  const CommandRun serve = run(env + " " + VKNODE_CLI + " serve --socket " + socket + " --state-dir " + prefix("state") +
                               " --cache-dir " + prefix("cache") + " --device 0 --device 0 > " + prefix("serve.log") +
                               " 2>&1 & echo $!");
  ASSERT_EQ(serve.exit_code, 0);
  const pid_t daemon = static_cast<pid_t>(std::stol(serve.output));
  for (int i = 0; i < 200 && !fs::exists(socket); ++i) ::usleep(50000);
  ASSERT_TRUE(fs::exists(socket)) << "the daemon did not start";
  const CommandRun r = run(mpirun(2, env) + kModel + " --chains 4 --seed 2 --output " + prefix("d"));
  const CommandRun status = run(env + " " + VKNODE_CLI + " status --json");
  run(env + " " + VKNODE_CLI + " stop");
  for (int i = 0; i < 400 && ::kill(daemon, 0) == 0; ++i) ::usleep(25000);  // it persists, then exits
  EXPECT_NE(::kill(daemon, 0), 0) << "the daemon did not stop";
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("rank 0 on"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("on cpu"), std::string::npos) << r.output;
  size_t via = 0;
  for (size_t at = 0; (at = r.output.find("via daemon", at)) != std::string::npos; ++at) ++via;
  EXPECT_GE(via, 2u) << r.output;  // both ranks' lines
  // Both device nodes ran Programs: rank 0 on node 0, rank 1 on node 1.
  size_t busy = 0;
  for (size_t at = 0; (at = status.output.find("\"exec_count\":", at)) != std::string::npos; ++at) {
    if (status.output.compare(at + 13, 2, "0,") != 0) ++busy;
  }
  EXPECT_EQ(busy, 2u) << status.output;
  for (size_t k = 0; k < 3; ++k) {
    const auto s = vkn::sampler::summarize_param("x", column(prefix("d"), 4, kFirstParamColumn + k), 4);
    EXPECT_LT(std::abs(s.mean - 1.0), 5 * s.mcse_mean) << "param " << k;
  }
}

TEST_F(MpiSampleTest, ARankThatDiesIsReported) {
  const CommandRun r = run(mpirun(2, "VKNODE_TEST_EXIT_RANK=1") + kModel + " --chains 4 --device cpu");
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("Exit code:    3"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(",1]"), std::string::npos) << r.output;  // Open MPI's name of rank 1
}

TEST_F(MpiSampleTest, FewerChainsThanRanksIsAUsageError) {
  const CommandRun r = run(mpirun(3) + kModel + " --chains 2 --device cpu");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("2 chains for 3 ranks"), std::string::npos) << r.output;
}

TEST_F(MpiSampleTest, HelpAndBadArgumentsAnswerWithoutMpi) {
  const CommandRun help = run(std::string(VKNODE_MPI_CLI) + " sample --help");
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.output.find("--pooled-step-size"), std::string::npos) << help.output;
  const CommandRun bad = run(std::string(VKNODE_MPI_CLI) + " simulate");
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.output.find("usage: mpirun"), std::string::npos) << bad.output;
  const CommandRun typo = run(mpirun(2) + " normal --chainz 4");
  EXPECT_NE(typo.exit_code, 0);
  EXPECT_NE(typo.output.find("unexpected argument '--chainz'"), std::string::npos) << typo.output;
}

}  // namespace
