#include "util/strformat.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

namespace vkn {
namespace {

TEST(StrFormatTest, FormatsIntegersFloatsAndText) {
  EXPECT_EQ(format("{} {} {}", 42, -7, 3000000000u), "42 -7 3000000000");
  EXPECT_EQ(format("{:x} {:08x} {:04X}", 255, 0xbeefu, 0xabu), "ff 0000beef 00AB");
  EXPECT_EQ(format("{:.2f} {:.1f}", 3.14159, 2.0), "3.14 2.0");
  EXPECT_EQ(format("{}", 0.5), "0.5");
  EXPECT_EQ(format("{} {} {}", std::string("a"), "b", std::string_view("c")), "a b c");
  EXPECT_EQ(format("{} {}", true, 'z'), "true z");
  EXPECT_EQ(format("{}", std::filesystem::path("/tmp/x")), "/tmp/x");
}

TEST(StrFormatTest, PadsAndAligns) {
  EXPECT_EQ(format("[{:>5}]", 42), "[   42]");
  EXPECT_EQ(format("[{:<5}]", 42), "[42   ]");
  EXPECT_EQ(format("[{:6}]", "ab"), "[ab    ]");
  EXPECT_EQ(format("[{:>6}]", "ab"), "[    ab]");
  EXPECT_EQ(format("[{:05}]", -42), "[-0042]");
}

TEST(StrFormatTest, EscapesBracesAndToleratesMissingArguments) {
  EXPECT_EQ(format("{{}} {}", 1), "{} 1");
  EXPECT_EQ(format("{} {}", 1), "1 {?}");
  EXPECT_EQ(format("no fields", 1), "no fields");
}

}  // namespace
}  // namespace vkn
