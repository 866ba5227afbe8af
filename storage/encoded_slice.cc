#include "storage/encoded_slice.h"

#include <openssl/crypto.h>

#include <cstring>
#include <exception>
#include <new>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/hash.h"

namespace oubli::storage {

int64_t FeatureWidth(FeatureType type) {
  return type == FeatureType::kU8 ? 1 : 4;
}

void DecodeRow(const internal::SliceRows& rows, int64_t row, float* out) {
  const auto type = static_cast<FeatureType>(rows.feature_type());
  const int64_t width = rows.features_per_row() * FeatureWidth(type);
  DecodeFeatureBytes(
      type, absl::string_view(rows.features()).substr(row * width, width), out);
}

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

std::shared_ptr<const EncodedSlice> EncodedSlice::Empty(
    int64_t features_per_row) {
  internal::SliceRows rows;
  rows.set_feature_type(static_cast<int32_t>(FeatureType::kU8));
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
  if (rows.features_per_row() < 1 || rows.features_per_row() > kMaxBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "slice features per row ", rows.features_per_row(), " out of range"));
  }
  const int32_t type = rows.feature_type();
  if (type != static_cast<int32_t>(FeatureType::kU8) &&
      type != static_cast<int32_t>(FeatureType::kF32)) {
    return absl::InvalidArgumentError(
        absl::StrCat("slice feature type ", type, " unknown"));
  }
  const int64_t width =
      rows.features_per_row() * FeatureWidth(static_cast<FeatureType>(type));
  if (rows.labels_size() != rows.ids_size() ||
      rows.features().size() / static_cast<uint64_t>(width) !=
          static_cast<uint64_t>(rows.ids_size()) ||
      rows.features().size() % static_cast<uint64_t>(width) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "slice of ", rows.ids_size(), " ids, ", rows.labels_size(),
        " labels and ", rows.features().size(), " feature bytes does not ",
        "add up for ", rows.features_per_row(), " features per row"));
  }
  for (int i = 1; i < rows.ids_size(); ++i) {
    if (!(rows.ids(i - 1) < rows.ids(i))) {
      return absl::InvalidArgumentError("slice ids not strictly ascending");
    }
  }
  out->rows_ = rows.ids_size();
  out->features_per_row_ = rows.features_per_row();
  // The parsed copy holds the samples too.
  if (!rows.features().empty()) {
    OPENSSL_cleanse(rows.mutable_features()->data(), rows.features().size());
  }
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
  const int64_t width =
      rows.features_per_row() *
      FeatureWidth(static_cast<FeatureType>(rows.feature_type()));
  int64_t dropped = 0;
  try {
    for (int i = 0; i < rows.ids_size(); ++i) {
      if (gone.contains(rows.ids(i))) {
        ++dropped;
        continue;
      }
      kept.add_ids(rows.ids(i));
      kept.add_labels(rows.labels(i));
      kept.mutable_features()->append(rows.features(), i * width, width);
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
