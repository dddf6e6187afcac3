#include "server/device_selection.h"

#include <algorithm>
#include <string_view>

#include "util/strformat.h"

namespace vkn::server {
namespace {

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    const size_t comma = s.find(',', start);
    out.push_back(s.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (comma == std::string::npos) return out;
    start = comma + 1;
  }
}

bool names_all(const std::vector<std::string>& parts) {
  return std::find(parts.begin(), parts.end(), "all") != parts.end();
}

}  // namespace

Result<std::vector<std::string>> expand_device_selectors(std::span<const std::string> selectors,
                                                         const std::vector<DeviceInfo>& devices) {
  std::vector<std::string> out;
  for (const std::string& given : selectors) {
    for (const std::string& part : split_commas(given)) {
      if (part.empty()) {
        return fail(Errc::invalid_argument, "empty device selector", vkn::format("in '{}'", given));
      }
      if (part != "all") {
        out.push_back(part);
        continue;
      }
      // A CPU "device" (lavapipe) only when there is no GPU: next to a GPU it would
      // take jobs it runs far slower.
      std::vector<std::string> gpus, cpus;
      for (const DeviceInfo& d : devices) {
        auto& into = d.type == VK_PHYSICAL_DEVICE_TYPE_CPU ? cpus : gpus;
        into.push_back(vkn::format("{}", d.index));
      }
      const auto& chosen = gpus.empty() ? cpus : gpus;
      if (chosen.empty()) return fail(Errc::not_found, "no Vulkan device for --device all");
      out.insert(out.end(), chosen.begin(), chosen.end());
    }
  }
  return out;
}

Result<std::vector<std::string>> expand_device_selectors(std::span<const std::string> selectors) {
  bool needs_devices = false;
  for (const std::string& s : selectors)
    needs_devices = needs_devices || names_all(split_commas(s));
  std::vector<DeviceInfo> devices;
  if (needs_devices) {
    auto listed = list_devices();
    if (!listed) return fail(listed.error());
    devices = std::move(*listed);
  }
  return expand_device_selectors(selectors, devices);
}

}  // namespace vkn::server
