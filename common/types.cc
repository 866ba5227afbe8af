#include "common/types.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace oubli {
namespace {

// Returns the byte offset of the first invalid UTF-8 sequence, or -1.
int64_t FirstInvalidUtf8(absl::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const size_t length = Utf8SequenceLength(s, i);
    if (length == 0) return static_cast<int64_t>(i);
    i += length;
  }
  return -1;
}

absl::Status ValidateName(absl::string_view what, absl::string_view value) {
  if (value.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(what, " is empty"));
  }
  if (value.size() > 256) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " is ", value.size(), " bytes; the limit is 256"));
  }
  if (int64_t bad = FirstInvalidUtf8(value); bad >= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " is not valid UTF-8 (byte ", bad, ")"));
  }
  for (char c : value) {
    if (static_cast<uint8_t>(c) < 0x20 || c == 0x7F) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " contains a control character"));
    }
  }
  return absl::OkStatus();
}


template <typename Id>
absl::Status CheckIds(absl::Span<const Id> tokens, int64_t vocab_size) {
  for (size_t i = 0; i < tokens.size(); ++i) {
    const Id id = tokens[i];
    if (id >= 0 && id < vocab_size) continue;
    // int32 ids are uint32 on the wire: show the id the client sent.
    const int64_t shown =
        sizeof(Id) == 4 ? static_cast<int64_t>(static_cast<uint32_t>(id))
                        : static_cast<int64_t>(id);
    return absl::InvalidArgumentError(
        absl::StrCat("token ", i, " (id ", shown,
                     ") is outside the vocabulary [0, ", vocab_size, ")"));
  }
  return absl::OkStatus();
}

}  // namespace

size_t Utf8SequenceLength(absl::string_view s, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char lead = byte(i);
  if (lead < 0x80) return 1;
  size_t length;
  uint32_t min_code_point;
  if ((lead & 0xE0) == 0xC0) {
    length = 2;
    min_code_point = 0x80;
  } else if ((lead & 0xF0) == 0xE0) {
    length = 3;
    min_code_point = 0x800;
  } else if ((lead & 0xF8) == 0xF0) {
    length = 4;
    min_code_point = 0x10000;
  } else {
    return 0;
  }
  if (i + length > s.size()) return 0;
  uint32_t code_point = lead & (0x7F >> length);
  for (size_t k = 1; k < length; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
    code_point = (code_point << 6) | (byte(i + k) & 0x3F);
  }
  if (code_point < min_code_point || code_point > 0x10FFFF ||
      (code_point >= 0xD800 && code_point <= 0xDFFF)) {
    return 0;
  }
  return length;
}

std::string SanitizeUtf8(absl::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    const size_t length = Utf8SequenceLength(text, i);
    if (length == 0) {
      absl::StrAppendFormat(&out, "\\x%02X",
                            static_cast<unsigned char>(text[i]));
      ++i;
    } else {
      out.append(text.data() + i, length);
      i += length;
    }
  }
  return out;
}

absl::Status ValidateSampleId(absl::string_view id) {
  return ValidateName("sample id", id);
}

absl::Status ValidateOwner(absl::string_view owner) {
  return ValidateName("owner", owner);
}

absl::Status ValidateSample(const Sample& sample) {
  if (absl::Status s = ValidateSampleId(sample.id); !s.ok()) return s;
  if (absl::Status s = ValidateOwner(sample.owner); !s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("sample '", sample.id, "': ", s.message()));
  }
  if (sample.features.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("sample '", sample.id, "' has no features"));
  }
  if (sample.feature_type == FeatureType::kF32 &&
      sample.features.size() % 4 != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("sample '", sample.id, "' has float32 features of ",
                     sample.features.size(), " bytes, not a multiple of 4"));
  }
  if (HoldsTokens(sample.feature_type)) {
    const int64_t width = FeatureWidth(sample.feature_type);
    if (sample.features.size() % width != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "sample '", sample.id, "' has token bytes of ",
          sample.features.size(), " bytes, not a multiple of ", width));
    }
    // Ids are read as int32: the top bit of every uint32 id must be clear
    // (checked in place; a decoded copy would hold the sample again).
    if (sample.feature_type == FeatureType::kTokensU32) {
      for (size_t i = 3; i < sample.features.size(); i += 4) {
        if (static_cast<uint8_t>(sample.features[i]) >= 0x80) {
          return absl::InvalidArgumentError(absl::StrCat(
              "sample '", sample.id, "' has a token id of 2^31 or more"));
        }
      }
    }
    if (sample.prompt_tokens < 0 ||
        sample.prompt_tokens > sample.NumFeatures()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "sample '", sample.id, "' has prompt_tokens ", sample.prompt_tokens,
          " outside [0, ", sample.NumFeatures(), "]"));
    }
  } else if (sample.prompt_tokens != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "sample '", sample.id, "' has prompt_tokens but no tokens"));
  }
  if (sample.label < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "sample '", sample.id, "' has negative label ", sample.label));
  }
  // Written so that NaN fails too.
  if (!(sample.deletion_risk >= 0 && sample.deletion_risk <= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("sample '", sample.id, "' has deletion_risk ",
                     sample.deletion_risk, ", outside [0, 1]"));
  }
  return absl::OkStatus();
}

void DecodeFeatureBytes(FeatureType type, absl::string_view bytes,
                        float* out) {
  if (type == FeatureType::kU8) {
    const auto* u8 = reinterpret_cast<const uint8_t*>(bytes.data());
    for (size_t i = 0; i < bytes.size(); ++i) {
      out[i] = static_cast<float>(u8[i]) / 255.0f;
    }
  } else {
    std::memcpy(out, bytes.data(), bytes.size());
  }
}

std::string EncodeTokens(const std::vector<uint32_t>& tokens,
                         FeatureType* type) {
  const bool narrow = std::all_of(tokens.begin(), tokens.end(),
                                  [](uint32_t t) { return t <= 0xFFFF; });
  *type = narrow ? FeatureType::kTokensU16 : FeatureType::kTokensU32;
  std::string bytes;
  bytes.reserve(tokens.size() * FeatureWidth(*type));
  for (uint32_t token : tokens) {
    for (int64_t b = 0; b < FeatureWidth(*type); ++b) {
      bytes.push_back(static_cast<char>((token >> (8 * b)) & 0xFF));
    }
  }
  return bytes;
}

std::vector<int32_t> DecodeTokens(FeatureType type, absl::string_view bytes) {
  const int64_t width = FeatureWidth(type);
  std::vector<int32_t> tokens;
  tokens.reserve(bytes.size() / width);
  for (size_t i = 0; i + width <= bytes.size(); i += width) {
    uint32_t token = 0;
    for (int64_t b = width - 1; b >= 0; --b) {
      token = (token << 8) | static_cast<uint8_t>(bytes[i + b]);
    }
    tokens.push_back(static_cast<int32_t>(token));
  }
  return tokens;
}

void DecodeFeatures(const Sample& sample, float* out) {
  DecodeFeatureBytes(sample.feature_type, sample.features, out);
}

absl::Status CheckVocabulary(absl::Span<const int32_t> tokens,
                             int64_t vocab_size) {
  return CheckIds(tokens, vocab_size);
}

absl::Status CheckVocabulary(absl::Span<const int64_t> tokens,
                             int64_t vocab_size) {
  return CheckIds(tokens, vocab_size);
}

}  // namespace oubli
