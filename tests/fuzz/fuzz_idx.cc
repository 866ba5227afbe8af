// IDX image and label files (oublictl ingest --fashion_mnist): the first
// input byte splits the rest into the two files.
#include <cstddef>
#include <cstdint>
#include <string>

#include "storage/datasets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const size_t rest = size - 1;
  const size_t split = rest == 0 ? 0 : data[0] % (rest + 1);
  const char* bytes = reinterpret_cast<const char*>(data + 1);
  oubli::storage::IdxOptions options;
  options.images_path = "images";
  options.labels_path = "labels";
  options.id_prefix = "i-";
  options.limit = 64;
  auto samples = oubli::storage::ParseIdx(
      std::string(bytes, split), std::string(bytes + split, rest - split),
      options);
  if (samples.ok() && samples->size() > 64) __builtin_trap();
  return 0;
}
