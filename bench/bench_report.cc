#include "bench_report.h"

#include <algorithm>
#include <cmath>
#include <ctime>

#include "util/strformat.h"

namespace vkn::detail {
namespace {

constexpr int kSectionWidth = 9;
constexpr int kMetricWidth = 52;
constexpr int kUnitWidth = 5;
constexpr int kNumberWidth = 10;
constexpr int kRatioWidth = 7;

std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (const char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += vkn::format("\\u{:04x}", static_cast<unsigned>(c));
        } else {
          out += c;
        }
    }
  }
  out += '"';
  return out;
}

// JSON has no inf or nan.
std::string json_number(std::optional<double> v) {
  if (!v || !std::isfinite(*v)) return "null";
  return vkn::format("{}", *v);
}

}  // namespace

std::string BenchReport::add(BenchRow row) {
  if (!row.ratio && row.baseline && *row.baseline != 0) row.ratio = row.value / *row.baseline;
  rows_.push_back(std::move(row));
  return table_line(rows_.back());
}

std::string BenchReport::table_header() {
  std::string h = vkn::format("{:<9} | {:<52} | {:<5} | {:>10} | {:>10} | {:>7}\n", "section", "metric", "unit",
                              "vknode", "baseline", "ratio");
  h += std::string(kSectionWidth + kMetricWidth + kUnitWidth + 2 * kNumberWidth + kRatioWidth + 15, '-');
  h += '\n';
  return h;
}

std::string BenchReport::table_line(const BenchRow& row) {
  const std::string value = row.text.empty() ? format_number(row.value) : row.text;
  const std::string baseline = row.baseline ? format_number(*row.baseline) : "-";
  const std::string ratio = row.ratio ? format_number(*row.ratio) : "-";
  return vkn::format("{:<9} | {:<52} | {:<5} | {:>10} | {:>10} | {:>7}\n", row.section, row.metric, row.unit, value,
                     baseline, ratio);
}

std::string BenchReport::json(const BenchMeta& meta) const {
  std::string out = "{\n";
  out += vkn::format("  \"device\": {},\n", json_string(meta.device));
  out += vkn::format("  \"device_type\": {},\n", json_string(meta.device_type));
  out += vkn::format("  \"driver\": {},\n", json_string(meta.driver));
  out += vkn::format("  \"api_version\": {},\n", json_string(meta.api_version));
  out += vkn::format("  \"date\": {},\n", json_string(meta.date));
  out += vkn::format("  \"quick\": {},\n", meta.quick);
  out += "  \"results\": [";
  for (size_t i = 0; i < rows_.size(); ++i) {
    const BenchRow& r = rows_[i];
    out += i == 0 ? "\n" : ",\n";
    out += vkn::format("    {{\"section\": {}, \"metric\": {}, \"value\": {}, \"unit\": {}, \"baseline\": {}, "
                       "\"ratio\": {}}}",
                       json_string(r.section), json_string(r.metric), json_number(r.value), json_string(r.unit),
                       json_number(r.baseline), json_number(r.ratio));
  }
  out += "\n  ]\n}\n";
  return out;
}

double median(std::vector<double> samples) {
  if (samples.empty()) return 0;
  std::sort(samples.begin(), samples.end());
  const size_t n = samples.size();
  return n % 2 == 1 ? samples[n / 2] : (samples[n / 2 - 1] + samples[n / 2]) / 2;
}

double percentile(std::vector<double> samples, double p) {
  if (samples.empty()) return 0;
  std::sort(samples.begin(), samples.end());
  const double rank = std::ceil(std::clamp(p, 0.0, 100.0) / 100.0 * static_cast<double>(samples.size()));
  const size_t index = rank < 1 ? 0 : static_cast<size_t>(rank) - 1;
  return samples[std::min(index, samples.size() - 1)];
}

std::string format_number(double v) {
  if (!std::isfinite(v)) return vkn::format("{}", v);
  const double a = std::fabs(v);
  if (a >= 1000) return vkn::format("{:.0f}", v);
  if (a >= 100) return vkn::format("{:.1f}", v);
  if (a >= 1 || a == 0) return vkn::format("{:.2f}", v);
  if (a >= 0.01) return vkn::format("{:.3f}", v);
  return vkn::format("{:.2e}", v);
}

std::string format_bytes(uint64_t bytes) {
  if (bytes >= (1ull << 30) && bytes % (1ull << 30) == 0) return vkn::format("{} GiB", bytes >> 30);
  if (bytes >= (1ull << 20) && bytes % (1ull << 20) == 0) return vkn::format("{} MiB", bytes >> 20);
  if (bytes >= (1ull << 10) && bytes % (1ull << 10) == 0) return vkn::format("{} KiB", bytes >> 10);
  return vkn::format("{} B", bytes);
}

std::string utc_date() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  return vkn::format("{}-{:02}-{:02}", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
}

}  // namespace vkn::detail
