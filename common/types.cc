#include "common/types.h"

#include <cstring>

#include "absl/strings/str_cat.h"

namespace oubli {
namespace {

// Returns the byte offset of the first invalid UTF-8 sequence, or -1.
int64_t FirstInvalidUtf8(absl::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<uint8_t>(s[i]);
    int extra;
    uint32_t min;
    if (c < 0x80) {
      extra = 0;
      min = 0;
    } else if ((c & 0xE0) == 0xC0) {
      extra = 1;
      min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
      extra = 2;
      min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
      extra = 3;
      min = 0x10000;
    } else {
      return static_cast<int64_t>(i);
    }
    if (i + extra >= s.size() && extra > 0) return static_cast<int64_t>(i);
    uint32_t cp = extra == 0 ? c : (c & (0x3F >> extra));
    for (int k = 1; k <= extra; ++k) {
      const auto cc = static_cast<uint8_t>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return static_cast<int64_t>(i);
      cp = (cp << 6) | (cc & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      return static_cast<int64_t>(i);
    }
    i += extra + 1;
  }
  return -1;
}

absl::Status ValidateName(absl::string_view what, absl::string_view value) {
  if (value.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(what, " is empty"));
  }
  if (value.size() > 256) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " is ", value.size(), " bytes; the limit is 256"));
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

}  // namespace

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
    return absl::InvalidArgumentError(absl::StrCat(
        "sample '", sample.id, "' has float32 features of ",
        sample.features.size(), " bytes, not a multiple of 4"));
  }
  if (sample.label < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("sample '", sample.id, "' has negative label ",
                     sample.label));
  }
  return absl::OkStatus();
}

void DecodeFeatures(const Sample& sample, float* out) {
  if (sample.feature_type == FeatureType::kU8) {
    const auto* bytes =
        reinterpret_cast<const uint8_t*>(sample.features.data());
    for (size_t i = 0; i < sample.features.size(); ++i) {
      out[i] = static_cast<float>(bytes[i]) / 255.0f;
    }
  } else {
    std::memcpy(out, sample.features.data(), sample.features.size());
  }
}

}  // namespace oubli
