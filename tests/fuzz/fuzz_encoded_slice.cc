// Slice bytes as a worker receives them (PutSlice) and checks them
// (EncodedSlice::FromBytes) before caching and training on them. The input
// is the slice's bytes; its name is their SHA-256, as the coordinator
// names slices, so the parser behind the digest check is what runs.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "common/hash.h"
#include "common/types.h"
#include "google/protobuf/stubs/logging.h"
#include "storage/encoded_slice.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  google::protobuf::SetLogHandler(nullptr);  // invalid UTF-8 is logged
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string bytes(reinterpret_cast<const char*>(data), size);
  const std::string digest = oubli::Sha256Hex(bytes);
  auto slice = oubli::storage::EncodedSlice::FromBytes(bytes, digest);
  if (!slice.ok()) return 0;
  const oubli::internal::SliceRows rows = (*slice)->Parse();
  // An accepted slice's rows add up: ids, labels and each row's bytes.
  if ((*slice)->rows() != rows.ids_size() ||
      rows.labels_size() != rows.ids_size() ||
      (*slice)->holds_tokens() != (rows.features_per_row() == 0)) {
    __builtin_trap();
  }
  std::vector<oubli::Sample> samples;
  oubli::storage::AppendSamples(rows, &samples);
  if (static_cast<int>(samples.size()) != rows.ids_size()) __builtin_trap();
  if ((*slice)->holds_tokens()) {
    const auto tokens = oubli::storage::DecodeTokenRows(rows);
    for (int i = 0; i < rows.ids_size(); ++i) {
      if (static_cast<int>(tokens[i].size()) != rows.row_tokens(i)) {
        __builtin_trap();
      }
    }
  } else if (rows.ids_size() > 0) {
    std::vector<float> row(rows.features_per_row());
    for (int i = 0; i < rows.ids_size(); ++i) {
      oubli::storage::DecodeRow(rows, i, row.data());
    }
  }
  // Its rows rebuild a slice the same way the coordinator encodes them, and
  // dropping none of them keeps every row.
  auto rebuilt =
      (*slice)->holds_tokens()
          ? oubli::storage::EncodedSlice::FromTokenSamples(samples)
          : oubli::storage::EncodedSlice::FromSamples(
                samples, rows.features_per_row());
  if (rows.ids_size() > 0 && !rebuilt.ok()) __builtin_trap();
  int64_t removed = -1;
  auto kept = (*slice)->Without({}, &removed);
  if (!kept.ok() || removed != 0 || (*kept)->rows() != (*slice)->rows()) {
    __builtin_trap();
  }
  return 0;
}
