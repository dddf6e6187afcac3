// CmdStan CSV files and the summary table / JSON for a small real run.
#include "vknode/sampler/cmdstan_csv.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "sampler/glsl_harness.h"
#include "sampler/test_models.h"
#include "vknode/sampler/diagnostics.h"

namespace vkn::sampler {
namespace {

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

class CmdStanCsvTest : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = testing::must(make_gamma(2, 3.0, 2.0));
    config_.chains = 2;
    config_.warmup = 50;
    config_.draws = 30;
    config_.seed = 11;
    config_.threads = 1;
    auto r = sample(*model_, config_);
    ASSERT_TRUE(r.has_value());
    result_ = std::move(*r);
  }
  std::shared_ptr<Model> model_;
  SamplerConfig config_;
  SampleResult result_;
};

TEST_F(CmdStanCsvTest, HeaderColumnsAndAdaptationBlock) {
  const auto lines = lines_of(format_cmdstan_csv(result_, 1, {model_->name(), config_, "cpu", 6}));
  size_t header = 0;
  while (header < lines.size() && lines[header].starts_with("#")) ++header;
  ASSERT_LT(header, lines.size());
  EXPECT_EQ(lines[header], "lp__,accept_stat__,stepsize__,treedepth__,n_leapfrog__,divergent__,energy__,theta.1,theta.2");
  EXPECT_EQ(lines[header + 1], "# Adaptation terminated");
  EXPECT_TRUE(lines[header + 2].starts_with("# Step size = ")) << lines[header + 2];
  EXPECT_EQ(lines[header + 3], "# Diagonal elements of inverse mass matrix:");
  EXPECT_TRUE(lines[header + 4].starts_with("# ")) << lines[header + 4];
  EXPECT_NE(lines[header + 4].find(", "), std::string::npos);
  // Comment header: the keys tools look for.
  std::string comments;
  for (size_t i = 0; i < header; ++i) comments += lines[i] + "\n";
  for (const char* key : {"# method = sample", "#     num_samples = 30", "#     num_warmup = 50", "#         engine = static",
                          "#         metric = diag_e", "# id = 2", "#   seed = 11", "# model = gamma(shape=3, rate=2)[2]"}) {
    EXPECT_NE(comments.find(key), std::string::npos) << key;
  }
  // One row per draw with 9 fields, then the timing trailer.
  size_t rows = 0;
  for (size_t i = header + 5; i < lines.size() && !lines[i].starts_with("#"); ++i) {
    ++rows;
    EXPECT_EQ(std::count(lines[i].begin(), lines[i].end(), ','), 8) << lines[i];
    EXPECT_NE(lines[i].find(",0,"), std::string::npos);  // treedepth__ is 0
  }
  EXPECT_EQ(rows, 30u);
  EXPECT_TRUE(lines[lines.size() - 4].starts_with("#  Elapsed Time: ")) << lines[lines.size() - 4];
}

TEST_F(CmdStanCsvTest, RowsCarryTheDraws) {
  const auto lines = lines_of(format_cmdstan_csv(result_, 0, {model_->name(), config_, "cpu", 17}));
  size_t first = 0;
  while (!lines[first].starts_with("lp__")) ++first;
  first += 5;
  std::istringstream row(lines[first]);
  std::vector<double> fields;
  for (std::string f; std::getline(row, f, ',');) fields.push_back(std::stod(f));
  ASSERT_EQ(fields.size(), 9u);
  EXPECT_EQ(fields[0], result_.lp[0]);
  EXPECT_EQ(fields[1], result_.accept_stat[0]);
  EXPECT_EQ(fields[4], result_.n_leapfrog[0]);
  EXPECT_EQ(fields[7], result_.value(0, 0, 0));
  EXPECT_EQ(fields[8], result_.value(0, 0, 1));
}

TEST_F(CmdStanCsvTest, WritesOneFilePerChain) {
  const auto prefix = testing::temp_path("vkn_csv", "");
  auto paths = write_cmdstan_csvs(prefix, result_, {model_->name(), config_, "cpu"});
  ASSERT_TRUE(paths.has_value()) << paths.error().to_string();
  ASSERT_EQ(paths->size(), 2u);
  EXPECT_EQ((*paths)[1].string(), prefix.string() + "_2.csv");
  for (uint32_t c = 0; c < 2; ++c) {
    std::ifstream in((*paths)[c]);
    const std::string text((std::istreambuf_iterator<char>(in)), {});
    EXPECT_EQ(text, format_cmdstan_csv(result_, c, {model_->name(), config_, "cpu"}));
    std::filesystem::remove((*paths)[c]);
  }
  EXPECT_FALSE(write_cmdstan_csvs("/nonexistent-dir/x", result_, {}).has_value());
}

TEST_F(CmdStanCsvTest, NoAdaptationBlockWithoutWarmup) {
  config_.warmup = 0;
  auto r = sample(*model_, config_);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(format_cmdstan_csv(*r, 0, {}).find("# Adaptation terminated"), std::string::npos);
}

TEST(RunSummaryTest, TableAndJsonListEveryParameter) {
  auto model = testing::must(make_normal(3));
  SamplerConfig config;
  config.chains = 2;
  config.warmup = 100;
  config.draws = 100;
  config.threads = 1;
  auto r = sample(*model, config);
  ASSERT_TRUE(r.has_value());
  const RunSummary s = summarize(*r);
  ASSERT_EQ(s.params.size(), 4u);
  EXPECT_EQ(s.params[0].name, "lp__");
  const auto table = lines_of(format_summary_table(s));
  EXPECT_NE(table[0].find("ESS_bulk"), std::string::npos);
  EXPECT_TRUE(table[1].starts_with("lp__"));
  EXPECT_TRUE(table[4].starts_with("theta.3"));
  // Fixed columns: every row has the header's width.
  for (size_t i = 1; i <= 4; ++i) EXPECT_EQ(table[i].size(), table[0].size()) << table[i];
  const std::string json = format_summary_json(s);
  EXPECT_TRUE(json.starts_with("{\"chains\":2,\"draws\":100,\"warmup\":100,\"backend\":\"cpu\""));
  EXPECT_NE(json.find("{\"name\":\"theta.2\",\"mean\":"), std::string::npos);
  EXPECT_TRUE(json.ends_with("}]}"));
  RunSummary odd;
  odd.params.push_back({"we\"ird\n", std::nan(""), 0, 0, 0, 0, 0, 0, 0, 0});
  const std::string j = format_summary_json(odd);
  EXPECT_NE(j.find("\"we\\\"ird\\n\",\"mean\":null"), std::string::npos) << j;
}

}  // namespace
}  // namespace vkn::sampler
