#include "storage/sample_record.h"

#include "absl/strings/str_cat.h"
#include "oubli/internal/records.pb.h"

namespace oubli::storage {

namespace {

internal::SampleRecord::State ToProtoState(SampleState state) {
  switch (state) {
    case SampleState::kActive:
      return internal::SampleRecord::ACTIVE;
    case SampleState::kDeleted:
      return internal::SampleRecord::DELETED;
    case SampleState::kPurged:
      return internal::SampleRecord::PURGED;
  }
  return internal::SampleRecord::ACTIVE;
}

}  // namespace

std::string EncodeSampleRecord(const SampleRecord& record) {
  internal::SampleRecord proto;
  proto.set_owner(record.sample.owner);
  proto.set_label(record.sample.label);
  proto.set_feature_type(static_cast<int32_t>(record.sample.feature_type));
  proto.set_features(record.sample.features);
  proto.set_prompt_tokens(record.sample.prompt_tokens);
  proto.set_shard(record.where.shard);
  proto.set_slice(record.where.slice);
  proto.set_state(ToProtoState(record.state));
  proto.set_deletion_id(record.deletion_id);
  return proto.SerializeAsString();
}

absl::StatusOr<SampleRecord> DecodeSampleRecord(absl::string_view id,
                                          absl::string_view bytes) {
  internal::SampleRecord proto;
  if (!proto.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return absl::DataLossError(
        absl::StrCat("sample record for id '", id, "' does not parse"));
  }
  SampleRecord record;
  record.sample.id = std::string(id);
  record.sample.owner = proto.owner();
  record.sample.label = proto.label();
  switch (proto.feature_type()) {
    case static_cast<int32_t>(FeatureType::kU8):
      record.sample.feature_type = FeatureType::kU8;
      break;
    case static_cast<int32_t>(FeatureType::kF32):
      record.sample.feature_type = FeatureType::kF32;
      break;
    case static_cast<int32_t>(FeatureType::kTokensU16):
      record.sample.feature_type = FeatureType::kTokensU16;
      break;
    case static_cast<int32_t>(FeatureType::kTokensU32):
      record.sample.feature_type = FeatureType::kTokensU32;
      break;
    default:
      return absl::DataLossError(absl::StrCat("sample record for id '", id,
                                              "' has unknown feature type ",
                                              proto.feature_type()));
  }
  record.sample.features = proto.features();
  record.sample.prompt_tokens = proto.prompt_tokens();
  if (proto.shard() < 0 || proto.slice() < 0) {
    return absl::DataLossError(absl::StrCat(
        "sample record for id '", id, "' names shard ", proto.shard(),
        " slice ", proto.slice(), " (negative)"));
  }
  record.where = SliceRef{proto.shard(), proto.slice()};
  switch (proto.state()) {
    case internal::SampleRecord::ACTIVE:
      record.state = SampleState::kActive;
      break;
    case internal::SampleRecord::DELETED:
      record.state = SampleState::kDeleted;
      break;
    case internal::SampleRecord::PURGED:
      record.state = SampleState::kPurged;
      break;
    default:
      return absl::DataLossError(absl::StrCat("sample record for id '", id,
                                              "' has unknown state ",
                                              static_cast<int>(proto.state())));
  }
  record.deletion_id = proto.deletion_id();
  return record;
}

}  // namespace oubli::storage
