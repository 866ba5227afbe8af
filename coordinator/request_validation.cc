#include "coordinator/request_validation.h"

#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "google/protobuf/timestamp.pb.h"

namespace oubli::coordinator {

namespace v1 = ::oubli::v1;

absl::Status CheckModelId(absl::string_view model_id) {
  if (model_id.empty()) {
    return absl::InvalidArgumentError("model_id is required");
  }
  return absl::OkStatus();
}

absl::StatusOr<IngestBatch> TakeIngestSamples(
    int64_t message, v1::IngestSamplesRequest* request) {
  if (request->samples_size() == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("samples: message ", message, " has no samples"));
  }
  if (request->samples_size() > kMaxIngestSamplesPerMessage) {
    return absl::InvalidArgumentError(
        absl::StrCat("samples: message ", message, " has ",
                     request->samples_size(), " samples; the limit is ",
                     kMaxIngestSamplesPerMessage, " per message"));
  }
  IngestBatch batch;
  batch.samples.reserve(request->samples_size());
  for (v1::Sample& in : *request->mutable_samples()) {
    Sample sample;
    sample.id = std::move(*in.mutable_id());
    sample.owner = std::move(*in.mutable_owner());
    sample.label = in.label();
    sample.features = std::move(*in.mutable_features());
    sample.deletion_risk = in.deletion_risk();
    switch (in.feature_type()) {
      case v1::FEATURE_TYPE_UNSPECIFIED:
      case v1::FEATURE_TYPE_U8:
        sample.feature_type = FeatureType::kU8;
        break;
      case v1::FEATURE_TYPE_F32:
        sample.feature_type = FeatureType::kF32;
        break;
      default:
        batch.rejected.emplace_back(
            std::move(sample.id),
            absl::StrCat("feature_type: unknown value ", in.feature_type()));
        continue;
    }
    batch.samples.push_back(std::move(sample));
  }
  return batch;
}

absl::StatusOr<std::vector<std::string>> DeleteSamplesIds(
    const v1::DeleteSamplesRequest& request) {
  if (absl::Status s = CheckModelId(request.model_id()); !s.ok()) return s;
  if (request.sample_ids_size() == 0) {
    return absl::InvalidArgumentError(
        "sample_ids is empty: give at least one id");
  }
  if (request.sample_ids_size() > kMaxDeleteIds) {
    return absl::InvalidArgumentError(
        absl::StrCat("sample_ids has ", request.sample_ids_size(),
                     " ids; the limit is ", kMaxDeleteIds, " per request"));
  }
  // Validated here too (the registry does) so the message names the
  // position.
  for (int i = 0; i < request.sample_ids_size(); ++i) {
    if (absl::Status valid = ValidateSampleId(request.sample_ids(i));
        !valid.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("sample_ids[", i, "]: ", valid.message()));
    }
  }
  return std::vector<std::string>(request.sample_ids().begin(),
                                  request.sample_ids().end());
}

absl::Status CheckForgetOwner(const v1::ForgetOwnerRequest& request) {
  if (absl::Status s = CheckModelId(request.model_id()); !s.ok()) return s;
  if (absl::Status valid = ValidateOwner(request.owner()); !valid.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("owner: ", valid.message()));
  }
  return absl::OkStatus();
}

absl::StatusOr<DeletionQuery> ListDeletionsQuery(
    const v1::ListDeletionsRequest& request) {
  if (absl::Status s = CheckModelId(request.model_id()); !s.ok()) return s;
  DeletionQuery query;
  if (request.page_size() < 0 || request.page_size() > kMaxListPageSize) {
    return absl::InvalidArgumentError(absl::StrCat("page_size: must be 0..",
                                                   kMaxListPageSize, ", got ",
                                                   request.page_size()));
  }
  query.page_size =
      request.page_size() == 0 ? kDefaultListPageSize : request.page_size();
  if (!request.page_token().empty()) {
    absl::string_view token = request.page_token();
    if (!absl::ConsumePrefix(&token, kPageTokenPrefix) ||
        !absl::StartsWith(token, "del-") ||
        token.size() > kMaxPageTokenIdBytes) {
      return absl::InvalidArgumentError(
          "page_token: not a token this server issued");
    }
    query.below_id = std::string(token);
  }
  for (int stage : request.stages()) {
    if (stage < v1::ACCEPTED || stage > v1::RESTORED) {
      return absl::InvalidArgumentError(
          absl::StrCat("stages: unknown stage ", stage));
    }
    // Both enums list the stages in the same order.
    query.stages.push_back(static_cast<DeletionStage>(stage - v1::ACCEPTED));
  }
  if (request.owner().size() > kMaxListOwnerBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("owner: over ", kMaxListOwnerBytes, " bytes"));
  }
  query.owner = request.owner();
  auto time_of = [](const google::protobuf::Timestamp& t) {
    return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
  };
  if (request.has_accepted_after()) {
    query.accepted_from = time_of(request.accepted_after());
  }
  if (request.has_accepted_before()) {
    query.accepted_to = time_of(request.accepted_before());
  }
  if (query.accepted_from >= query.accepted_to) {
    return absl::InvalidArgumentError(
        "accepted_after: must be before accepted_before");
  }
  return query;
}

absl::Status CheckPredictRequest(const v1::PredictRequest& request) {
  if (absl::Status s = CheckModelId(request.model_id()); !s.ok()) return s;
  const int64_t rows = request.rows();
  if (rows < 1) return absl::InvalidArgumentError("rows must be at least 1");
  if (rows > kMaxPredictRows) {
    return absl::InvalidArgumentError(absl::StrCat(
        "rows is ", rows, "; the limit is ", kMaxPredictRows, " per request"));
  }
  const bool has_floats = request.features_size() > 0;
  const bool has_bytes = !request.features_f32le().empty();
  if (has_floats == has_bytes) {
    return absl::InvalidArgumentError(
        "give exactly one of features and features_f32le");
  }
  if (has_bytes && request.features_f32le().size() % 4 != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("features_f32le has ", request.features_f32le().size(),
                     " bytes, not a multiple of 4"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<float>> PredictInputs(
    const v1::PredictRequest& request, int64_t features_per_row) {
  const bool has_floats = request.features_size() > 0;
  const int64_t rows = request.rows();
  const int64_t values =
      has_floats ? request.features_size()
                 : static_cast<int64_t>(request.features_f32le().size() / 4);
  if (values != rows * features_per_row) {
    return absl::InvalidArgumentError(
        absl::StrCat(has_floats ? "features" : "features_f32le", " has ",
                     values, " values; rows=", rows, " x ", features_per_row,
                     " features per row of model '", request.model_id(),
                     "' needs ", rows * features_per_row));
  }
  std::vector<float> inputs;
  if (has_floats) {
    inputs.assign(request.features().begin(), request.features().end());
  } else {
    // Little-endian on the wire and on every platform we build for.
    inputs.resize(values);
    std::memcpy(inputs.data(), request.features_f32le().data(),
                request.features_f32le().size());
  }
  return inputs;
}

}  // namespace oubli::coordinator
