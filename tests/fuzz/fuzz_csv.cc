// CSV samples (oublictl ingest --csv).
#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"
#include "common/types.h"
#include "storage/datasets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  auto samples = oubli::storage::ParseCsv(text, "fuzz.csv", "row-");
  if (!samples.ok()) return 0;
  // Whatever is accepted is a valid sample.
  for (const oubli::Sample& sample : *samples) {
    if (!oubli::ValidateSample(sample).ok()) __builtin_trap();
  }
  return 0;
}
