// parse_expr: the grammar, errors with positions, and robustness against garbage.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "vknode/sampler/expr.h"

namespace vkn::sampler {
namespace {

double value_of(std::string_view text, std::vector<double> q, ParseOptions options = {}) {
  auto m = ExprModel::parse(text, options);
  EXPECT_TRUE(m.has_value()) << text << ": " << m.error().to_string();
  if (!m) return std::nan("");
  q.resize((*m)->dimension(), 0.0);
  std::vector<double> g(q.size());
  return (*m)->log_density(q, g);
}

std::string error_of(std::string_view text, ParseOptions options = {}) {
  ExprBuilder b;
  auto r = parse_expr(b, text, options);
  EXPECT_FALSE(r.has_value()) << text;
  return r ? std::string() : r.error().message;
}

TEST(ExprParserTest, ParsesTheIssueExample) {
  const double q0 = 0.7, q1 = -0.3;
  EXPECT_NEAR(value_of("-0.5*q0^2 - log(1+exp(q1))", {q0, q1}), -0.5 * q0 * q0 - std::log(1 + std::exp(q1)), 1e-15);
}

TEST(ExprParserTest, PrecedenceAndAssociativity) {
  EXPECT_DOUBLE_EQ(value_of("q0 + 2*3^2", {1}), 19);
  EXPECT_DOUBLE_EQ(value_of("q0 - 2^3^2", {0}), -512);  // right-associative
  EXPECT_DOUBLE_EQ(value_of("q0 - -2^2", {0}), 4);      // -(2^2)
  EXPECT_DOUBLE_EQ(value_of("q0 + 2^-1", {0}), 0.5);
  EXPECT_DOUBLE_EQ(value_of("q0 - 8/4/2", {0}), -1);    // left-associative
  EXPECT_DOUBLE_EQ(value_of("(q0 + 1) * (q[1] - 1)", {2, 3}), 6);
  EXPECT_DOUBLE_EQ(value_of("q0 * +1.5e1", {2}), 30);
  EXPECT_DOUBLE_EQ(value_of("q0 + .5 + 2.", {0}), 2.5);
  EXPECT_NEAR(value_of("q0 + pi", {0}), 3.14159265358979323846, 1e-15);
}

TEST(ExprParserTest, Functions) {
  EXPECT_NEAR(value_of("pow(q0, 0.5) + sqrt(q0) + square(q0)", {4}), 2 + 2 + 16, 1e-14);
  EXPECT_NEAR(value_of("inv_logit(q0) - logistic(q0) + log1p_exp(q0)", {0.3}), std::log1p(std::exp(0.3)), 1e-15);
  EXPECT_NEAR(value_of("lgamma(q0) + tanh(q0) + sin(q0) + cos(q0) + log1p(q0)", {1.5}),
              std::lgamma(1.5) + std::tanh(1.5) + std::sin(1.5) + std::cos(1.5) + std::log1p(1.5), 1e-13);
  EXPECT_DOUBLE_EQ(value_of("sum(q0, 2, q1)", {1, 3}), 6);
  ParseOptions o;
  o.dimension = 3;
  EXPECT_DOUBLE_EQ(value_of("-0.5 * sum(q)", {1, 2, 3}, o), -3);
}

TEST(ExprParserTest, DataReferences) {
  ParseOptions o;
  o.data["y"] = {1.0, 4.0};
  EXPECT_DOUBLE_EQ(value_of("-(y[0] - q0)^2 - (y[1] - q0)^2", {2}, o), -5);
  EXPECT_NE(error_of("q0 + y[2]", o).find("position 6"), std::string::npos);
  EXPECT_NE(error_of("q0 + y", o).find("expected '['"), std::string::npos);
}

TEST(ExprParserTest, ErrorsNameThePosition) {
  EXPECT_EQ(error_of("q0 + (q1 * 2"), "expression: expected ')' but the text ended at position 13");
  EXPECT_EQ(error_of("q0 + * 2"), "expression: unexpected '*' at position 6");
  EXPECT_EQ(error_of("q0 + foo(1)"), "expression: unknown function 'foo' at position 6");
  EXPECT_EQ(error_of("q0 + bar"), "expression: unknown name 'bar' at position 6");
  EXPECT_EQ(error_of("q0 2"), "expression: unexpected '2' at position 4");
  EXPECT_EQ(error_of("q0 + 1e999"), "expression: number out of range at position 6");
  EXPECT_EQ(error_of("pow(q0)"), "expression: pow takes 2 arguments at position 1");
  EXPECT_EQ(error_of("exp(q0, q1)"), "expression: exp takes 1 argument at position 1");
  EXPECT_EQ(error_of(""), "expression: expected a value but the text ended at position 1");
  EXPECT_EQ(error_of("q[x]"), "expression: expected the index of q at position 3");
  EXPECT_EQ(error_of("q99999999999"), "expression: parameter index too large at position 1");
  EXPECT_EQ(error_of("sum(q)"), "expression: sum(q) needs a dimension (ParseOptions::dimension) at position 1");
  EXPECT_EQ(error_of("q0 \xff"), "expression: unexpected byte 0xff at position 4");
  EXPECT_EQ(error_of("1.2.3"), "expression: unexpected '.' at position 4");
  // No parameters at all is an ExprModel error, not a parse error.
  EXPECT_FALSE(ExprModel::parse("1 + 2").has_value());
}

TEST(ExprParserTest, DepthAndLengthAreBounded) {
  const std::string deep = std::string(5000, '(') + "q0" + std::string(5000, ')');
  EXPECT_NE(error_of(deep).find("nested too deeply"), std::string::npos);
  const std::string signs = std::string(100000, '-') + "q0";
  EXPECT_NE(error_of(signs).find("longer than"), std::string::npos);
  ParseOptions o;
  o.max_length = 1 << 20;
  EXPECT_NE(error_of(signs, o).find("nested too deeply"), std::string::npos);
  const std::string powers = "q0" + std::string() + [] {
    std::string s;
    for (int i = 0; i < 1000; ++i) s += "^2";
    return s;
  }();
  EXPECT_NE(error_of(powers).find("nested too deeply"), std::string::npos);
  // Within the limits, long flat expressions are fine (loops, not recursion).
  std::string flat = "q0";
  for (int i = 0; i < 5000; ++i) flat += "+q1";
  EXPECT_DOUBLE_EQ(value_of(flat, {1, 2}), 10001);
  EXPECT_DOUBLE_EQ(value_of(std::string(60, '(') + "q0" + std::string(60, ')'), {3}), 3);
}

// Random byte strings and random token soups never crash and either parse or fail cleanly.
TEST(ExprParserTest, GarbageNeverCrashes) {
  std::mt19937_64 rng(77);
  const std::vector<std::string> tokens = {"q0", "q[1]", "q", "(", ")", "+", "-", "*", "/", "^", ",", "exp",
                                           "log", "pow", "sum", "1", "2.5e3", "1e", ".", "[", "]", "pi", " ",
                                           "lgamma", "sqrt", "e", "1e-400", "0x10", "q-1"};
  for (int i = 0; i < 3000; ++i) {
    std::string text;
    const int n = static_cast<int>(rng() % 30);
    for (int k = 0; k < n; ++k) {
      if (i % 2) {
        text += tokens[rng() % tokens.size()];
      } else {
        text += static_cast<char>(rng() % 256);
      }
    }
    ExprBuilder b;
    auto r = parse_expr(b, text);
    if (!r) {
      EXPECT_EQ(r.error().code, Errc::invalid_argument);
      EXPECT_NE(r.error().message.find("position"), std::string::npos) << r.error().message;
    } else {
      auto m = ExprModel::create(b, *r);
      if (m) {
        std::vector<double> q((*m)->dimension(), 0.5), g(q.size());
        (void)(*m)->log_density(q, g);
        EXPECT_FALSE((*m)->glsl().empty());
      }
    }
  }
}

}  // namespace
}  // namespace vkn::sampler
