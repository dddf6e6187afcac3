// `vknode cache path|persist|clear`: the pipeline cache on disk.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "command.h"
#include "gpu/pipeline_cache_file.h"
#include "vknode/client/client.h"

namespace vkn::cli {
namespace {

constexpr const char* kCacheHelp =
    "usage: vknode cache path|persist|clear [--socket PATH]\n"
    "\n"
    "  path     prints the pipeline cache file the daemon uses (or, with no daemon\n"
    "           running, the directory a node would use)\n"
    "  persist  asks the daemon to write its pipeline caches now, one per device node (root or\n"
    "           the daemon's user)\n"
    "  clear    deletes the pipeline cache files (pipeline-*.vkpc and their layouts) in\n"
    "           that directory; a running daemon keeps its in-memory cache and writes it\n"
    "           again when it next persists\n"
    "\n"
    "exit codes: 0 ok, 1 failure, 2 bad usage, 3 no daemon running (persist).\n";

std::unique_ptr<Client> try_connect(const std::string& socket) {
  ClientOptions o;
  o.socket_path = socket;
  o.name = "vknode cache";
  o.connect_timeout = std::chrono::milliseconds(500);
  auto c = Client::connect(o);
  return c ? std::move(*c) : nullptr;
}

// The cache directory: the running daemon's, else the default.
Result<std::filesystem::path> cache_dir(Client* client, std::filesystem::path* file) {
  if (client != nullptr) {
    auto s = client->status();
    if (s && !s->devices.empty() && !s->devices[0].cache_path.empty()) {
      *file = s->devices[0].cache_path;
      return file->parent_path();
    }
  }
  return default_pipeline_cache_dir();
}

}  // namespace

int cache_command(Args args) {
  std::string action, socket;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string_view a = args[i];
    if (a == "--help" || a == "-h") {
      std::fputs(kCacheHelp, stdout);
      return kExitOk;
    } else if (a == "--socket" && i + 1 < args.size()) {
      socket = args[++i];
    } else if (action.empty() && (a == "path" || a == "persist" || a == "clear")) {
      action = a;
    } else {
      std::fprintf(stderr, "vknode cache: unknown or incomplete argument '%s'\n\n%s", args[i],
                   kCacheHelp);
      return kExitUsage;
    }
  }
  if (action.empty()) {
    std::fputs(kCacheHelp, stderr);
    return kExitUsage;
  }
  auto client = try_connect(socket);
  if (action == "persist") {
    if (!client) {
      std::fputs("vknode cache persist: no daemon running\n", stderr);
      return kExitNoDaemon;
    }
    // Every device node of the daemon; nodes on devices of one kind share a file.
    auto st = client->status();
    const size_t nodes = st && !st->devices.empty() ? st->devices.size() : 1;
    std::vector<std::string> written;
    for (uint32_t i = 0; i < nodes; ++i) {
      RequestOptions ro;
      ro.device = i;
      auto path = client->persist_pipeline_cache(ro);
      if (!path) {
        std::fprintf(stderr, "vknode cache persist: device node %u: %s\n", i, path.error().to_string().c_str());
        return kExitFailure;
      }
      if (std::find(written.begin(), written.end(), *path) == written.end()) {
        written.push_back(*path);
        std::printf("%s\n", path->c_str());
      }
    }
    return kExitOk;
  }
  std::filesystem::path file;
  auto dir = cache_dir(client.get(), &file);
  if (!dir) {
    std::fprintf(stderr, "vknode cache %s: %s\n", action.c_str(), dir.error().to_string().c_str());
    return kExitFailure;
  }
  if (action == "path") {
    std::printf("%s\n", file.empty() ? dir->c_str() : file.c_str());
    return kExitOk;
  }
  // clear
  std::error_code ec;
  size_t removed = 0;
  for (const auto& entry : std::filesystem::directory_iterator(*dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("pipeline-", 0) == 0 && name.find(".vkpc") != std::string::npos) {
      std::error_code rm;
      if (std::filesystem::remove(entry.path(), rm)) ++removed;
    }
  }
  if (ec && ec != std::errc::no_such_file_or_directory) {
    std::fprintf(stderr, "vknode cache clear: %s: %s\n", dir->c_str(), ec.message().c_str());
    return kExitFailure;
  }
  std::printf("removed %zu cache files from %s%s\n", removed, dir->c_str(),
              client ? " (the running daemon still holds its cache in memory)" : "");
  return kExitOk;
}

}  // namespace vkn::cli
