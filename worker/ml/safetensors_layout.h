// The safetensors container read without LibTorch: 8-byte little-endian
// header length, a JSON header {"name": {"dtype", "shape", "data_offsets":
// [begin, end]}, ...}, then the tensor bytes. This is the part of loading
// base weights and checkpoints that handles outside bytes, so it is kept
// apart from tensors (worker/ml/safetensors.h builds them) and fuzzed
// (tests/fuzz).
#ifndef OUBLI_WORKER_ML_SAFETENSORS_LAYOUT_H_
#define OUBLI_WORKER_ML_SAFETENSORS_LAYOUT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace oubli::ml {

enum class SafetensorsDtype { kF32, kF64, kF16, kBF16, kI64, kI32, kU8, kBool };

struct SafetensorsDtypeInfo {
  const char* name;  // as in the header, e.g. "F32"
  SafetensorsDtype dtype;
  uint64_t item_size;  // bytes
};
// Every supported dtype.
absl::Span<const SafetensorsDtypeInfo> SafetensorsDtypes();

struct SafetensorsEntry {
  std::string name;
  const SafetensorsDtypeInfo* dtype = nullptr;
  std::vector<int64_t> shape;
  absl::string_view data;  // a view of the parsed bytes
};

// Strict: bounds-checks the header (at most 100 MiB, JSON nesting 16) and
// every offset; rejects overlapping, out-of-range or unclaimed data,
// unknown dtypes and fields, duplicate names, shapes that do not match
// their byte ranges, BOOL bytes other than 0 and 1. Entries in name order.
// InvalidArgument ("safetensors: ...") naming what is wrong.
absl::StatusOr<std::vector<SafetensorsEntry>> ParseSafetensorsLayout(
    absl::string_view bytes);

// For writers: whether `name` may name a tensor (non-empty valid UTF-8,
// not "__metadata__"), and `text` as a JSON string literal.
bool IsValidSafetensorsName(absl::string_view name);
std::string SafetensorsJsonQuote(absl::string_view text);

}  // namespace oubli::ml

#endif  // OUBLI_WORKER_ML_SAFETENSORS_LAYOUT_H_
