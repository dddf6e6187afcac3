// SampleResult through bytes and back; damaged bytes are errors.
#include "vknode/sampler/result_codec.h"

#include <gtest/gtest.h>

#include "sampler/test_models.h"

namespace vkn::sampler {
namespace {

SampleResult small_run() {
  auto model = testing::must(make_normal(3));
  SamplerConfig c;
  c.chains = 2;
  c.warmup = 30;
  c.draws = 20;
  c.threads = 1;
  auto r = sample(*model, c);
  EXPECT_TRUE(r.has_value());
  r->fallback_reason = "a reason";
  r->first_chain = 5;
  return *r;
}

TEST(ResultCodecTest, RoundTripKeepsEveryField) {
  const SampleResult r = small_run();
  const auto bytes = encode_result(r);
  auto back = decode_result(bytes);
  ASSERT_TRUE(back.has_value()) << back.error().to_string();
  EXPECT_EQ(back->chains, r.chains);
  EXPECT_EQ(back->draws, r.draws);
  EXPECT_EQ(back->first_chain, 5u);
  EXPECT_EQ(back->param_names, r.param_names);
  EXPECT_EQ(back->values, r.values);
  EXPECT_EQ(back->lp, r.lp);
  EXPECT_EQ(back->accept_stat, r.accept_stat);
  EXPECT_EQ(back->step_size, r.step_size);
  EXPECT_EQ(back->energy, r.energy);
  EXPECT_EQ(back->n_leapfrog, r.n_leapfrog);
  EXPECT_EQ(back->divergent, r.divergent);
  EXPECT_EQ(back->adapted_step_size, r.adapted_step_size);
  EXPECT_EQ(back->inv_metric, r.inv_metric);
  EXPECT_EQ(back->trajectory_length, r.trajectory_length);
  EXPECT_EQ(back->backend, r.backend);
  EXPECT_EQ(back->fallback_reason, "a reason");
  EXPECT_EQ(back->gradient_evaluations, r.gradient_evaluations);
}

TEST(ResultCodecTest, EmptyStringsAndVectorsRoundTrip) {
  SampleResult r = small_run();
  r.backend.clear();
  r.fallback_reason.clear();
  auto back = decode_result(encode_result(r));
  ASSERT_TRUE(back.has_value()) << back.error().to_string();
  EXPECT_TRUE(back->backend.empty());
  EXPECT_TRUE(back->fallback_reason.empty());
  EXPECT_EQ(back->values, r.values);
}

TEST(ResultCodecTest, DamagedBytesAreErrors) {
  const auto bytes = encode_result(small_run());
  for (size_t cut : {size_t{0}, size_t{3}, size_t{20}, bytes.size() / 2, bytes.size() - 1}) {
    auto r = decode_result(std::span(bytes).first(cut));
    ASSERT_FALSE(r.has_value()) << cut;
    EXPECT_EQ(r.error().code, Errc::protocol_error);
  }
  auto longer = bytes;
  longer.push_back(std::byte{0});
  EXPECT_FALSE(decode_result(longer).has_value());
  auto foreign = bytes;
  foreign[0] = std::byte{0x42};
  EXPECT_FALSE(decode_result(foreign).has_value());
  // A chain count that disagrees with the arrays.
  auto lying = bytes;
  lying[8] = std::byte{3};
  auto r = decode_result(lying);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().to_string().find("lengths"), std::string::npos) << r.error().to_string();
}

}  // namespace
}  // namespace vkn::sampler
