// Plain domain types shared by storage, worker and coordinator.
#ifndef OUBLI_COMMON_TYPES_H_
#define OUBLI_COMMON_TYPES_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace oubli {

// How a sample's feature bytes are encoded. kU8 values are scaled by 1/255
// when turned into model inputs (image pixels); kF32 are little-endian floats.
// The token types hold a decoder's token ids instead, little-endian uint16
// or uint32 (EncodeTokens picks the narrower that fits), any count.
enum class FeatureType : uint8_t {
  kU8 = 0,
  kF32 = 1,
  kTokensU16 = 2,
  kTokensU32 = 3
};

// Whether `type` is one of the token encodings.
inline bool HoldsTokens(FeatureType type) {
  return type == FeatureType::kTokensU16 || type == FeatureType::kTokensU32;
}
// Bytes one feature (or token) of `type` takes.
inline int64_t FeatureWidth(FeatureType type) {
  switch (type) {
    case FeatureType::kU8: return 1;
    case FeatureType::kTokensU16: return 2;
    case FeatureType::kF32:
    case FeatureType::kTokensU32: return 4;
  }
  return 4;
}

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
  // Token samples: how many leading tokens are the prompt (context only; a
  // causal LM learns the tokens after it). 0 for feature samples.
  int32_t prompt_tokens = 0;

  // Features, or tokens for the token types.
  int64_t NumFeatures() const {
    return static_cast<int64_t>(features.size()) / FeatureWidth(feature_type);
  }
};

// Token ids as feature bytes: uint16 when every id fits, uint32 otherwise;
// *type says which.
std::string EncodeTokens(const std::vector<uint32_t>& tokens,
                         FeatureType* type);
// The ids of token bytes of `type` (a token type; a trailing partial id is
// ignored, ValidateSample refuses it).
std::vector<int32_t> DecodeTokens(FeatureType type, absl::string_view bytes);

// The one check of token ids against a model's vocabulary, so ingest,
// scoring, generation and training word a bad id alike. OK when every id
// is in [0, vocab_size); otherwise InvalidArgument naming the first that is
// not: "token I (id X) is outside the vocabulary [0, V)", I its index in
// `tokens` and X as a client sent it (a negative int32 came from a uint32
// id >= 2^31 and is shown as that). Callers may prefix the message with
// what the tokens are (a row, a prompt).
absl::Status CheckVocabulary(absl::Span<const int32_t> tokens,
                             int64_t vocab_size);
// The same for int64 ids (a trainer's token tensor), shown as they are.
absl::Status CheckVocabulary(absl::Span<const int64_t> tokens,
                             int64_t vocab_size);

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
// ValidateSampleId + ValidateOwner + features non-empty and well-sized
// (whole floats or token ids, token ids below 2^31), prompt_tokens within
// the tokens (0 for features).
absl::Status ValidateSample(const Sample& sample);

// Decodes features into floats (kU8 scaled by 1/255). `out` must hold
// sample.NumFeatures() floats. Not for token types.
void DecodeFeatures(const Sample& sample, float* out);
// The same for raw feature bytes of one row encoded as `type`.
void DecodeFeatureBytes(FeatureType type, absl::string_view bytes,
                        float* out);

}  // namespace oubli

#endif  // OUBLI_COMMON_TYPES_H_
