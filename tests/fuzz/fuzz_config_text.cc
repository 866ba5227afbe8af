// Model config text (oublictl create --config, and each model's stored
// config read back at open).
#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"
#include "common/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  (void)oubli::ParseStoredConfig(text);
  auto config = oubli::ParseConfig(text);
  if (!config.ok()) return 0;
  // The canonical form of anything accepted parses back to the same text.
  const std::string canonical = oubli::ConfigToText(*config);
  auto again = oubli::ParseConfig(canonical);
  if (!again.ok() || oubli::ConfigToText(*again) != canonical) {
    __builtin_trap();
  }
  return 0;
}
