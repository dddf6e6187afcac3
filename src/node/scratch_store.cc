#include "vknode/node/node.h"

namespace vkn {

void* ScratchStore::find_raw(const std::string& key, const std::type_info& type) {
  for (auto& [k, slot] : slots_) {
    if (k == key && *slot.type == type) return slot.value.get();
  }
  return nullptr;
}

void ScratchStore::put_raw(const std::string& key, const std::type_info& type, std::shared_ptr<void> value) {
  for (auto& [k, slot] : slots_) {
    if (k == key) {
      slot = {&type, std::move(value)};
      return;
    }
  }
  slots_.emplace_back(key, Slot{&type, std::move(value)});
}

bool ScratchStore::erase(const std::string& key) {
  return std::erase_if(slots_, [&](const auto& kv) { return kv.first == key; }) > 0;
}

size_t ScratchStore::size() const { return slots_.size(); }

}  // namespace vkn
