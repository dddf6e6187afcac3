#include "sample_report.h"

#include <cstdio>

#include "vknode/sampler/cmdstan_csv.h"
#include "vknode/sampler/diagnostics.h"

namespace vkn::cli {

using namespace vkn::sampler;

int report_run(const Model& model, const SampleResult& result, const SampleOptions& o, const std::string& device) {
  if (!o.output.empty()) {
    CsvMetadata meta{model.name(), o.config, device};
    meta.config.progress = nullptr;
    meta.config.group = nullptr;
    meta.config.chains = result.chains;
    auto paths = write_cmdstan_csvs(o.output, result, meta);
    if (!paths) {
      std::fprintf(stderr, "vknode sample: %s\n", paths.error().to_string().c_str());
      return 1;
    }
    std::fprintf(stderr, "vknode sample: wrote %zu CSV files (%s_1.csv ...)\n", paths->size(), o.output.c_str());
  }
  const RunSummary summary = summarize(result);
  if (o.json) {
    std::fputs(format_summary_json(summary).c_str(), stdout);
    std::fputs("\n", stdout);
  } else {
    std::printf("model: %s\n", model.name().c_str());
    std::fputs(format_summary_table(summary).c_str(), stdout);
  }
  return 0;
}

void draw_progress(uint32_t done, uint32_t total) {
  static int last = -1;
  const int pct = total ? static_cast<int>(100.0 * done / total) : 100;
  if (pct == last && done != total) return;
  last = pct;
  const int width = 30, fill = pct * width / 100;
  std::fprintf(stderr, "\r[%s%s] %3d%% %u/%u", std::string(fill, '#').c_str(), std::string(width - fill, ' ').c_str(),
               pct, done, total);
  if (done == total) std::fputs("\n", stderr);
  std::fflush(stderr);
}

}  // namespace vkn::cli
