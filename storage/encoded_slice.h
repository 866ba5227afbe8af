// A slice's samples in the form they travel to workers and sit in their
// slice caches: the stored encoding (uint8 pixels stay uint8, four times
// smaller than the float32 rows training uses), rows in ascending sample-id
// order, named by the SHA-256 of the bytes. Immutable and shared: the
// coordinator's shard table, a position in flight and a worker's cache hold
// the same object. Its bytes are zeroed when the last holder lets go
// (defence in depth: the float rows decoded for training are not).
#ifndef OUBLI_STORAGE_ENCODED_SLICE_H_
#define OUBLI_STORAGE_ENCODED_SLICE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/types.h"
#include "oubli/internal/records.pb.h"

namespace oubli::storage {

class EncodedSlice {
 public:
  // `samples` in strictly ascending id order, each with `features_per_row`
  // features. InvalidArgument otherwise (the message names the sample);
  // ResourceExhausted beyond kMaxBytes.
  static absl::StatusOr<std::shared_ptr<const EncodedSlice>> FromSamples(
      absl::Span<const Sample> samples, int64_t features_per_row);

  // Token samples (HoldsTokens) in strictly ascending id order, any
  // lengths; features_per_row() is then 0. InvalidArgument naming the
  // sample that is not a token sample or is out of order; ResourceExhausted
  // beyond kMaxBytes.
  static absl::StatusOr<std::shared_ptr<const EncodedSlice>> FromTokenSamples(
      absl::Span<const Sample> samples);

  // A slice of no samples (features_per_row 0: of token rows).
  static std::shared_ptr<const EncodedSlice> Empty(int64_t features_per_row);

  // Bytes received from elsewhere. DataLoss unless they hash to
  // `expected_digest`; InvalidArgument when they do but are not a
  // well-formed slice (ids not ascending, sizes that do not add up).
  static absl::StatusOr<std::shared_ptr<const EncodedSlice>> FromBytes(
      std::string bytes, absl::string_view expected_digest);

  // Largest encoded slice: a protobuf message must stay below 2 GiB.
  static constexpr int64_t kMaxBytes = int64_t{1} << 30;

  ~EncodedSlice();
  EncodedSlice(const EncodedSlice&) = delete;
  EncodedSlice& operator=(const EncodedSlice&) = delete;

  const std::string& digest() const { return digest_; }  // lowercase hex
  const std::string& bytes() const { return bytes_; }
  int64_t rows() const { return rows_; }
  int64_t features_per_row() const { return features_per_row_; }
  bool holds_tokens() const { return features_per_row_ == 0; }

  // The rows, parsed (checked when this object was made).
  internal::SliceRows Parse() const;

  // This slice without the samples in `gone`, and how many it held.
  // ResourceExhausted: out of memory.
  absl::StatusOr<std::shared_ptr<const EncodedSlice>> Without(
      const absl::flat_hash_set<std::string>& gone, int64_t* removed) const;

 private:
  EncodedSlice() = default;
  static absl::StatusOr<std::shared_ptr<const EncodedSlice>> FromRows(
      const internal::SliceRows& rows);

  std::string digest_;
  std::string bytes_;
  int64_t rows_ = 0;
  int64_t features_per_row_ = 0;
};

// Row `row` of feature `rows` decoded into `out` (features_per_row floats),
// with the same arithmetic as DecodeFeatures: training sees the same bits
// whichever way a sample reached it.
void DecodeRow(const internal::SliceRows& rows, int64_t row, float* out);

// Appends every row of `rows` to *out as a Sample (id, label, encoding,
// bytes and, for token rows, prompt_tokens; no owner): what a slice is
// rebuilt from when samples join it. The caller scrubs *out when done.
void AppendSamples(const internal::SliceRows& rows, std::vector<Sample>* out);

// The token ids of every row of token `rows`, in row order.
std::vector<std::vector<int32_t>> DecodeTokenRows(
    const internal::SliceRows& rows);

}  // namespace oubli::storage

#endif  // OUBLI_STORAGE_ENCODED_SLICE_H_
