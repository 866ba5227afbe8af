// Plain domain types shared by storage, worker and coordinator.
#ifndef OUBLI_COMMON_TYPES_H_
#define OUBLI_COMMON_TYPES_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace oubli {

// How a sample's feature bytes are encoded. kU8 values are scaled by 1/255
// when turned into model inputs (image pixels); kF32 are little-endian floats.
enum class FeatureType : uint8_t { kU8 = 0, kF32 = 1 };

// One training example as users give it to us.
struct Sample {
  std::string id;     // stable, unique, user-chosen; 1..256 bytes UTF-8
  std::string owner;  // data subject; erasure by owner deletes all of theirs
  int32_t label = 0;
  FeatureType feature_type = FeatureType::kU8;
  std::string features;  // raw bytes, see FeatureType
  // Optional hint in [0, 1]: how likely this sample's owner is to ask for
  // erasure (0: no hint). Only placement reads it (RiskProfile), and only
  // when the sample is first stored; it is not kept.
  float deletion_risk = 0;

  int64_t NumFeatures() const {
    return feature_type == FeatureType::kU8
               ? static_cast<int64_t>(features.size())
               : static_cast<int64_t>(features.size() / 4);
  }
};

// Where a sample lives inside a model's sharding plan.
struct SliceRef {
  int32_t shard = 0;
  int32_t slice = 0;
  friend bool operator==(const SliceRef&, const SliceRef&) = default;
  friend auto operator<=>(const SliceRef&, const SliceRef&) = default;
};

// Length in bytes (1 to 4) of the valid UTF-8 sequence that starts at s[i],
// or 0 if there is none there (bad lead or continuation byte, truncated,
// overlong, a surrogate or above U+10FFFF). Requires i < s.size().
size_t Utf8SequenceLength(absl::string_view s, size_t i);

// `text` with every byte that is not part of valid UTF-8 written as \xNN:
// proto3 `string` fields must hold valid UTF-8 or the peer cannot parse
// the message, so text that may echo client bytes goes through this.
std::string SanitizeUtf8(absl::string_view text);

// Checks ids and owners: non-empty, at most 256 bytes, valid UTF-8, no NUL
// or control characters. The message names the offending field.
absl::Status ValidateSampleId(absl::string_view id);
absl::Status ValidateOwner(absl::string_view owner);
// ValidateSampleId + ValidateOwner + features non-empty and well-sized.
absl::Status ValidateSample(const Sample& sample);

// Decodes features into floats (kU8 scaled by 1/255). `out` must hold
// sample.NumFeatures() floats.
void DecodeFeatures(const Sample& sample, float* out);
// The same for raw feature bytes of one row encoded as `type`.
void DecodeFeatureBytes(FeatureType type, absl::string_view bytes,
                        float* out);

}  // namespace oubli

#endif  // OUBLI_COMMON_TYPES_H_
