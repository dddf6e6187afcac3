#include <cstdio>
#include <string>

#include "command.h"
#include "util/strformat.h"
#include "vknode/gpu/device.h"

namespace vkn::cli {

bool wants_help(Args args) {
  for (const char* a : args) {
    if (std::string_view(a) == "--help" || std::string_view(a) == "-h") return true;
  }
  return false;
}

int devices_command(Args args) {
  if (wants_help(args)) {
    std::puts("usage: vknode devices\n\nLists every Vulkan device with its driver, UUIDs, limits and memory heaps,\n"
              "and marks the one vknode selects ($VKNODE_DEVICE: index, UUID or name substring).");
    return kExitOk;
  }
  if (!args.empty()) {
    std::fprintf(stderr, "vknode devices: unexpected argument '%s'\n", args[0]);
    return kExitUsage;
  }
  auto devices = list_devices();
  if (!devices) {
    std::fprintf(stderr, "vknode devices: %s\n", devices.error().to_string().c_str());
    return kExitFailure;
  }
  DeviceOptions options;
  options.validation_from_env = false;
  auto chosen = Device::create(options);
  for (const DeviceInfo& d : *devices) {
    const bool selected = chosen && (*chosen)->info().device_uuid == d.device_uuid;
    std::fputs(describe(d).c_str(), stdout);
    if (selected) std::puts("    (selected)");
  }
  if (!chosen) {
    std::fprintf(stderr, "vknode devices: cannot open the selected device: %s\n", chosen.error().to_string().c_str());
    return kExitFailure;
  }
  return kExitOk;
}

}  // namespace vkn::cli
