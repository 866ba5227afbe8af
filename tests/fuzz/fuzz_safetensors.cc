// Safetensors containers (base weights users bring, checkpoints read back).
#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"
#include "worker/ml/safetensors_layout.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  auto entries = oubli::worker::ParseSafetensorsLayout(bytes);
  if (!entries.ok()) return 0;
  // An accepted layout stays inside the input and matches its shapes.
  for (const auto& entry : *entries) {
    if (entry.data.data() < bytes.data() ||
        entry.data.data() + entry.data.size() > bytes.data() + bytes.size()) {
      __builtin_trap();
    }
    uint64_t count = 1;
    for (int64_t d : entry.shape) count *= static_cast<uint64_t>(d);
    if (count * entry.dtype->item_size != entry.data.size()) __builtin_trap();
  }
  return 0;
}
