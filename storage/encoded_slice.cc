#include "storage/encoded_slice.h"

#include <openssl/crypto.h>

#include <cstring>
#include <exception>
#include <new>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "common/hash.h"
#include "common/status_macros.h"

namespace oubli::storage {

void DecodeRow(const internal::SliceRows& rows, int64_t row, float* out) {
  const auto type = static_cast<FeatureType>(rows.feature_type());
  const int64_t width = rows.features_per_row() * FeatureWidth(type);
  DecodeFeatureBytes(
      type, absl::string_view(rows.features()).substr(row * width, width), out);
}

void AppendSamples(const internal::SliceRows& rows, std::vector<Sample>* out) {
  const auto type = static_cast<FeatureType>(rows.feature_type());
  const bool tokens = HoldsTokens(type);
  const int64_t width = FeatureWidth(type);
  int64_t offset = 0;
  for (int i = 0; i < rows.ids_size(); ++i) {
    const int64_t length = tokens ? rows.row_tokens(i) : rows.features_per_row();
    Sample& s = out->emplace_back();
    s.id = rows.ids(i);
    s.label = rows.labels(i);
    s.feature_type = type;
    s.features = rows.features().substr(offset * width, length * width);
    if (tokens) s.prompt_tokens = rows.prompt_tokens(i);
    offset += length;
  }
}

std::vector<std::vector<int32_t>> DecodeTokenRows(
    const internal::SliceRows& rows) {
  const auto type = static_cast<FeatureType>(rows.feature_type());
  const int64_t width = FeatureWidth(type);
  std::vector<std::vector<int32_t>> out;
  out.reserve(rows.row_tokens_size());
  int64_t offset = 0;
  for (int32_t length : rows.row_tokens()) {
    out.push_back(DecodeTokens(
        type, absl::string_view(rows.features())
                  .substr(offset * width, int64_t{length} * width)));
    offset += length;
  }
  return out;
}

namespace {

// Whether token or feature rows of `rows` add up; the message says how not.
absl::Status CheckRowSizes(const internal::SliceRows& rows) {
  const int32_t type = rows.feature_type();
  const bool tokens =
      type == static_cast<int32_t>(FeatureType::kTokensU16) ||
      type == static_cast<int32_t>(FeatureType::kTokensU32);
  if (!tokens && type != static_cast<int32_t>(FeatureType::kU8) &&
      type != static_cast<int32_t>(FeatureType::kF32)) {
    return absl::InvalidArgumentError(
        absl::StrCat("slice feature type ", type, " unknown"));
  }
  if (rows.labels_size() != rows.ids_size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("slice of ", rows.ids_size(), " ids has ",
                     rows.labels_size(), " labels"));
  }
  const int64_t width = FeatureWidth(static_cast<FeatureType>(type));
  if (tokens) {
    if (rows.features_per_row() != 0 ||
        rows.row_tokens_size() != rows.ids_size() ||
        rows.prompt_tokens_size() != rows.ids_size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "token slice of ", rows.ids_size(), " ids has ",
          rows.row_tokens_size(), " lengths, ", rows.prompt_tokens_size(),
          " prompt lengths and ", rows.features_per_row(),
          " features per row"));
    }
    uint64_t total = 0;
    for (int i = 0; i < rows.ids_size(); ++i) {
      if (rows.row_tokens(i) < 1 || rows.prompt_tokens(i) < 0 ||
          rows.prompt_tokens(i) > rows.row_tokens(i)) {
        return absl::InvalidArgumentError(
            absl::StrCat("token slice row ", i, " has ", rows.row_tokens(i),
                         " tokens and ", rows.prompt_tokens(i), " of prompt"));
      }
      total += static_cast<uint64_t>(rows.row_tokens(i));
    }
    if (total * static_cast<uint64_t>(width) != rows.features().size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "token slice rows hold ", total, " tokens, but ",
          rows.features().size(), " bytes of ", width, "-byte ids"));
    }
    return absl::OkStatus();
  }
  if (rows.features_per_row() < 1 ||
      rows.features_per_row() > EncodedSlice::kMaxBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "slice features per row ", rows.features_per_row(), " out of range"));
  }
  const uint64_t row_bytes =
      static_cast<uint64_t>(rows.features_per_row() * width);
  if (rows.row_tokens_size() != 0 || rows.prompt_tokens_size() != 0 ||
      rows.features().size() % row_bytes != 0 ||
      rows.features().size() / row_bytes !=
          static_cast<uint64_t>(rows.ids_size())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "slice of ", rows.ids_size(), " ids and ", rows.features().size(),
        " feature bytes does not add up for ", rows.features_per_row(),
        " features per row"));
  }
  return absl::OkStatus();
}

}  // namespace

EncodedSlice::~EncodedSlice() {
  // The bytes may hold samples deleted since: freed memory keeps none.
  if (!bytes_.empty()) OPENSSL_cleanse(bytes_.data(), bytes_.size());
}

absl::StatusOr<std::shared_ptr<const EncodedSlice>> EncodedSlice::FromRows(
    const internal::SliceRows& rows) {
  if (rows.ByteSizeLong() > static_cast<size_t>(kMaxBytes)) {
    return absl::ResourceExhaustedError(
        absl::StrCat("a slice of ", rows.ids_size(), " samples takes ",
                     rows.ByteSizeLong(), " bytes; at most ", kMaxBytes,
                     " fit one slice (use more shards or slices)"));
  }
  std::shared_ptr<EncodedSlice> out(new (std::nothrow) EncodedSlice());
  if (out == nullptr) return absl::ResourceExhaustedError("encoding a slice");
  try {
    if (!rows.SerializeToString(&out->bytes_)) {
      return absl::InternalError("serializing a slice");
    }
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError("encoding a slice: out of memory");
  }
  out->digest_ = Sha256Hex(out->bytes_);
  out->rows_ = rows.ids_size();
  out->features_per_row_ = rows.features_per_row();
  return out;
}

absl::StatusOr<std::shared_ptr<const EncodedSlice>> EncodedSlice::FromSamples(
    absl::Span<const Sample> samples, int64_t features_per_row) {
  if (features_per_row < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "features per row must be positive, not ", features_per_row));
  }
  bool all_u8 = true;
  for (size_t i = 0; i < samples.size(); ++i) {
    const Sample& s = samples[i];
    if (HoldsTokens(s.feature_type)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "sample '", s.id, "' holds tokens; the model expects features"));
    }
    if (s.NumFeatures() != features_per_row ||
        (s.feature_type == FeatureType::kF32 && s.features.size() % 4 != 0)) {
      return absl::InvalidArgumentError(
          absl::StrCat("sample '", s.id, "' has ", s.NumFeatures(),
                       " features; the model expects ", features_per_row));
    }
    if (i > 0 && !(samples[i - 1].id < s.id)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "slice rows out of id order at sample '", s.id, "'"));
    }
    all_u8 = all_u8 && s.feature_type == FeatureType::kU8;
  }
  internal::SliceRows rows;
  absl::Cleanup cleanse = [&rows] {
    if (!rows.features().empty()) {
      OPENSSL_cleanse(rows.mutable_features()->data(), rows.features().size());
    }
  };
  const FeatureType type = all_u8 ? FeatureType::kU8 : FeatureType::kF32;
  rows.set_feature_type(static_cast<int32_t>(type));
  rows.set_features_per_row(features_per_row);
  try {
    std::string* features = rows.mutable_features();
    features->reserve(samples.size() * features_per_row * FeatureWidth(type));
    std::vector<float> decoded(type == FeatureType::kF32 ? features_per_row
                                                         : 0);
    for (const Sample& s : samples) {
      rows.add_ids(s.id);
      rows.add_labels(s.label);
      if (s.feature_type == type) {
        features->append(s.features);
      } else {
        // A uint8 row in a mixed slice: the floats training would decode.
        DecodeFeatures(s, decoded.data());
        features->append(reinterpret_cast<const char*>(decoded.data()),
                         decoded.size() * sizeof(float));
      }
    }
  } catch (const std::exception& e) {
    return absl::ResourceExhaustedError(
        absl::StrCat("encoding a slice: ", e.what()));
  }
  return FromRows(rows);
}

absl::StatusOr<std::shared_ptr<const EncodedSlice>>
EncodedSlice::FromTokenSamples(absl::Span<const Sample> samples) {
  bool all_u16 = true;
  for (size_t i = 0; i < samples.size(); ++i) {
    const Sample& s = samples[i];
    if (!HoldsTokens(s.feature_type)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "sample '", s.id, "' holds features; the model expects tokens"));
    }
    if (s.NumFeatures() < 1 ||
        s.features.size() % FeatureWidth(s.feature_type) != 0 ||
        s.prompt_tokens < 0 || s.prompt_tokens > s.NumFeatures()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "sample '", s.id, "' has ", s.features.size(), " token bytes and ",
          s.prompt_tokens, " prompt tokens"));
    }
    if (i > 0 && !(samples[i - 1].id < s.id)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "slice rows out of id order at sample '", s.id, "'"));
    }
    all_u16 = all_u16 && s.feature_type == FeatureType::kTokensU16;
  }
  internal::SliceRows rows;
  absl::Cleanup cleanse = [&rows] {
    if (!rows.features().empty()) {
      OPENSSL_cleanse(rows.mutable_features()->data(), rows.features().size());
    }
  };
  const FeatureType type =
      all_u16 ? FeatureType::kTokensU16 : FeatureType::kTokensU32;
  rows.set_feature_type(static_cast<int32_t>(type));
  rows.set_features_per_row(0);
  try {
    std::string* bytes = rows.mutable_features();
    int64_t total = 0;
    for (const Sample& s : samples) total += s.NumFeatures();
    // One allocation: a reallocation would free a partial copy unzeroed.
    bytes->reserve(total * FeatureWidth(type));
    for (const Sample& s : samples) {
      rows.add_ids(s.id);
      rows.add_labels(s.label);
      rows.add_row_tokens(static_cast<int32_t>(s.NumFeatures()));
      rows.add_prompt_tokens(s.prompt_tokens);
      if (s.feature_type == type) {
        bytes->append(s.features);
      } else {
        // A uint16 row among uint32 ones: each little-endian id widened
        // in place with two zero bytes.
        for (size_t i = 0; i + 1 < s.features.size(); i += 2) {
          bytes->push_back(s.features[i]);
          bytes->push_back(s.features[i + 1]);
          bytes->append(2, '\0');
        }
      }
    }
  } catch (const std::exception& e) {
    return absl::ResourceExhaustedError(
        absl::StrCat("encoding a slice: ", e.what()));
  }
  return FromRows(rows);
}

std::shared_ptr<const EncodedSlice> EncodedSlice::Empty(
    int64_t features_per_row) {
  internal::SliceRows rows;
  rows.set_feature_type(static_cast<int32_t>(
      features_per_row == 0 ? FeatureType::kTokensU16 : FeatureType::kU8));
  rows.set_features_per_row(features_per_row);
  absl::StatusOr<std::shared_ptr<const EncodedSlice>> out = FromRows(rows);
  return out.ok() ? *std::move(out) : nullptr;
}

absl::StatusOr<std::shared_ptr<const EncodedSlice>> EncodedSlice::FromBytes(
    std::string bytes, absl::string_view expected_digest) {
  std::shared_ptr<EncodedSlice> out(new (std::nothrow) EncodedSlice());
  if (out == nullptr) return absl::ResourceExhaustedError("receiving a slice");
  out->bytes_ = std::move(bytes);  // zeroed with `out` on every path
  out->digest_ = Sha256Hex(out->bytes_);
  if (out->digest_ != expected_digest) {
    return absl::DataLossError(
        absl::StrCat("slice bytes hash to ", out->digest_, ", not ",
                     SanitizeUtf8(expected_digest.substr(0, 64))));
  }
  internal::SliceRows rows;
  try {
    if (!rows.ParseFromString(out->bytes_)) {
      return absl::InvalidArgumentError("slice bytes do not parse");
    }
  } catch (const std::exception& e) {
    return absl::ResourceExhaustedError(
        absl::StrCat("parsing a slice: ", e.what()));
  }
  // The parsed copy holds the samples too, whatever the outcome.
  absl::Cleanup cleanse = [&rows] {
    if (!rows.features().empty()) {
      OPENSSL_cleanse(rows.mutable_features()->data(), rows.features().size());
    }
  };
  OUBLI_RETURN_IF_ERROR(CheckRowSizes(rows));
  for (int i = 1; i < rows.ids_size(); ++i) {
    if (!(rows.ids(i - 1) < rows.ids(i))) {
      return absl::InvalidArgumentError("slice ids not strictly ascending");
    }
  }
  out->rows_ = rows.ids_size();
  out->features_per_row_ = rows.features_per_row();
  return out;
}

internal::SliceRows EncodedSlice::Parse() const {
  internal::SliceRows rows;
  rows.ParseFromString(bytes_);  // checked when made
  return rows;
}

absl::StatusOr<std::shared_ptr<const EncodedSlice>> EncodedSlice::Without(
    const absl::flat_hash_set<std::string>& gone, int64_t* removed) const {
  internal::SliceRows rows = Parse();
  internal::SliceRows kept;
  kept.set_feature_type(rows.feature_type());
  kept.set_features_per_row(rows.features_per_row());
  const bool tokens = holds_tokens();
  const int64_t width =
      FeatureWidth(static_cast<FeatureType>(rows.feature_type()));
  int64_t dropped = 0;
  int64_t offset = 0;  // of row i's first feature or token
  try {
    for (int i = 0; i < rows.ids_size(); ++i) {
      const int64_t length =
          tokens ? rows.row_tokens(i) : rows.features_per_row();
      const int64_t begin = offset;
      offset += length;
      if (gone.contains(rows.ids(i))) {
        ++dropped;
        continue;
      }
      kept.add_ids(rows.ids(i));
      kept.add_labels(rows.labels(i));
      if (tokens) {
        kept.add_row_tokens(rows.row_tokens(i));
        kept.add_prompt_tokens(rows.prompt_tokens(i));
      }
      kept.mutable_features()->append(rows.features(), begin * width,
                                      length * width);
    }
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(
        "removing samples from a slice: out of memory");
  }
  absl::StatusOr<std::shared_ptr<const EncodedSlice>> out = FromRows(kept);
  for (internal::SliceRows* copy : {&rows, &kept}) {
    if (!copy->features().empty()) {
      OPENSSL_cleanse(copy->mutable_features()->data(),
                      copy->features().size());
    }
  }
  if (out.ok() && removed != nullptr) *removed = dropped;
  return out;
}

}  // namespace oubli::storage
