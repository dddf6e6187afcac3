// BenchReport: the rows the benchmark sections produce, printed as a fixed-width table
// and written as JSON by hand. Also the small statistics helpers the sections share.
// Internal to the harness. Thread-compatible.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace vkn::detail {

// One measured figure beside its baseline. ratio = value / baseline unless a section sets
// it itself, so for times ratio > 1 means vknode is slower and for GB/s ratio < 1 does.
struct BenchRow {
  std::string section;
  std::string metric;  // what was measured, and against what
  std::string unit;    // "ms", "us", "GB/s", "x", "hit"
  double value = 0;
  std::optional<double> baseline;
  std::optional<double> ratio;
  std::string text;  // shown instead of the number in the table when set (e.g. "yes 5/5")
};

struct BenchMeta {
  std::string device;
  std::string device_type;
  std::string driver;
  std::string api_version;
  std::string date;  // YYYY-MM-DD (UTC)
  bool quick = false;
};

class BenchReport {
 public:
  // Adds a row (filling ratio from value / baseline when unset) and returns its table line.
  std::string add(BenchRow row);
  const std::vector<BenchRow>& rows() const { return rows_; }

  static std::string table_header();
  static std::string table_line(const BenchRow& row);
  std::string json(const BenchMeta& meta) const;

 private:
  std::vector<BenchRow> rows_;
};

// Statistics over samples (copies, so callers keep their order). Empty input gives 0.
double median(std::vector<double> samples);
// Nearest-rank percentile, p in [0, 100].
double percentile(std::vector<double> samples, double p);

using BenchClock = std::chrono::steady_clock;
inline double elapsed_us(BenchClock::time_point since) {
  return std::chrono::duration<double, std::micro>(BenchClock::now() - since).count();
}

// A number with about four significant digits, for the table ("1234", "12.35", "0.0123").
std::string format_number(double v);
// "4 KiB", "1 MiB", "256 MiB".
std::string format_bytes(uint64_t bytes);
// Today's date in UTC, YYYY-MM-DD.
std::string utc_date();

}  // namespace vkn::detail
