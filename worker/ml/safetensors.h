// The safetensors format: 8-byte LE header length, a JSON header
// {"name": {"dtype", "shape", "data_offsets": [begin, end]}, ...}, then the
// raw little-endian tensor bytes. Users bring base weights exported from
// PyTorch this way, and we use it for checkpoints because our writer is
// deterministic: same tensors -> same bytes (sorted names, no metadata,
// header padded with spaces to a multiple of 8).
#ifndef OUBLI_WORKER_ML_SAFETENSORS_H_
#define OUBLI_WORKER_ML_SAFETENSORS_H_

#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"
#include "worker/ml/model.h"

namespace oubli::ml {

// Tensors must be CPU, contiguous-able, dtype float32/float64/float16/
// bfloat16/int64/int32/uint8/bool. Names are sorted in the output.
absl::StatusOr<std::string> SerializeSafetensors(const NamedTensors& tensors);
// Strict parser: bounds-checks the header and every offset, rejects
// overlapping or out-of-range data, unknown dtypes and duplicate names.
// Returned tensors own their memory, in name order.
absl::StatusOr<NamedTensors> ParseSafetensors(absl::string_view bytes);

absl::StatusOr<NamedTensors> ReadSafetensorsFile(const std::string& path);
absl::Status WriteSafetensorsFile(const std::string& path,
                                  const NamedTensors& tensors);

}  // namespace oubli::ml

#endif  // OUBLI_WORKER_ML_SAFETENSORS_H_
