// Which devices a daemon runs nodes on: `vknode serve --device` values (indices, UUIDs,
// name substrings, comma lists, "all") turned into one selector per device node.
// Stateless functions; thread-safe.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "vknode/error.h"
#include "vknode/gpu/device.h"

namespace vkn::server {

// Splits comma lists, expanding each "all" against `devices` (every device that is
// not a CPU, by index; the CPU devices when there is nothing else). Selectors other
// than "all" are kept as given; the node checks them when it starts.
// Errors: invalid_argument for an empty selector (e.g. "0,,1"), not_found when "all"
// finds no device.
[[nodiscard]] Result<std::vector<std::string>> expand_device_selectors(
    std::span<const std::string> selectors, const std::vector<DeviceInfo>& devices);

// As above against the devices the Vulkan loader sees now (enumerated only when a
// selector is "all"). Errors: as above, and list_devices' errors.
[[nodiscard]] Result<std::vector<std::string>> expand_device_selectors(
    std::span<const std::string> selectors);

}  // namespace vkn::server
