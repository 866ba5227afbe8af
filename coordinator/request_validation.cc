#include "coordinator/request_validation.h"

#include <openssl/crypto.h>

#include <cmath>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "google/protobuf/timestamp.pb.h"

namespace oubli::coordinator {

namespace v1 = ::oubli::v1;

namespace {

// Ids at or above 2^31 would turn negative as the engine's int32 ids.
constexpr uint32_t kMaxTokenId = 0x7FFFFFFF;

// InvalidArgument naming `field`[i] for an id of 2^31 or more.
absl::Status CheckTokenIds(const google::protobuf::RepeatedField<uint32_t>& ids,
                           absl::string_view field) {
  for (int i = 0; i < ids.size(); ++i) {
    if (ids[i] > kMaxTokenId) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, "[", i, "]: token id ", ids[i], " is 2^31 or more"));
    }
  }
  return absl::OkStatus();
}

// `ids` as int32 ids, checked by CheckTokenIds.
absl::StatusOr<std::vector<int32_t>> TokenIds(
    const google::protobuf::RepeatedField<uint32_t>& ids,
    absl::string_view field) {
  if (absl::Status s = CheckTokenIds(ids, field); !s.ok()) return s;
  return std::vector<int32_t>(ids.begin(), ids.end());
}

// Why the token sample `in` is malformed on the wire, or OK.
absl::Status CheckTokenSample(const v1::Sample& in) {
  const int tokens = in.tokens_size();
  if (tokens > 0 && !in.features().empty()) {
    return absl::InvalidArgumentError(
        "has both features and tokens: give features to an image model, "
        "tokens to a decoder");
  }
  if (tokens == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("prompt_tokens: ", in.prompt_tokens(), " without tokens"));
  }
  if (in.prompt_tokens() < 0 || in.prompt_tokens() >= tokens) {
    return absl::InvalidArgumentError(absl::StrCat(
        "prompt_tokens: ", in.prompt_tokens(), " is outside [0, ", tokens,
        ") for ", tokens, " tokens (the prompt must leave a token to learn)"));
  }
  return CheckTokenIds(in.tokens(), "tokens");
}

// Each of `sequences` as int32 ids, at least `min_tokens` long; messages
// name `field`[i].
absl::StatusOr<std::vector<std::vector<int32_t>>> TokenRows(
    const google::protobuf::RepeatedPtrField<v1::TokenSequence>& sequences,
    absl::string_view field, int min_tokens) {
  std::vector<std::vector<int32_t>> rows;
  rows.reserve(sequences.size());
  for (int i = 0; i < sequences.size(); ++i) {
    const std::string name = absl::StrCat(field, "[", i, "]");
    if (sequences[i].tokens_size() < min_tokens) {
      return absl::InvalidArgumentError(absl::StrCat(
          name, ": ", sequences[i].tokens_size(), " tokens; at least ",
          min_tokens, min_tokens == 1 ? " is" : " are", " needed"));
    }
    absl::StatusOr<std::vector<int32_t>> ids =
        TokenIds(sequences[i].tokens(), absl::StrCat(name, ".tokens"));
    if (!ids.ok()) return ids.status();
    rows.push_back(*std::move(ids));
  }
  return rows;
}

const char* BackboneKindWord(const ModelConfig& config) {
  switch (config.backbone.kind) {
    case BackboneKind::kMlp:
      return "an MLP image model";
    case BackboneKind::kVit:
      return "a ViT image model";
    case BackboneKind::kDecoder:
      return config.backbone.decoder.objective == DecoderObjective::kCausalLm
                 ? "a causal language model"
                 : "a classifying decoder";
  }
  return "a model of unknown kind";
}

}  // namespace

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
    const bool tokens = in.tokens_size() > 0 || in.prompt_tokens() != 0;
    if (tokens) {
      if (absl::Status bad = CheckTokenSample(in); !bad.ok()) {
        batch.rejected.emplace_back(std::move(*in.mutable_id()),
                                    std::string(bad.message()));
        continue;
      }
    }
    Sample sample;
    sample.id = std::move(*in.mutable_id());
    sample.owner = std::move(*in.mutable_owner());
    sample.label = in.label();
    sample.features = std::move(*in.mutable_features());
    sample.deletion_risk = in.deletion_risk();
    if (tokens) {
      // feature_type describes features; the ids' width is EncodeTokens'.
      std::vector<uint32_t> ids(in.tokens().begin(), in.tokens().end());
      sample.features = EncodeTokens(ids, &sample.feature_type);
      sample.prompt_tokens = in.prompt_tokens();
      // Sample payloads are wiped, not just freed, once stored elsewhere.
      OPENSSL_cleanse(ids.data(), ids.size() * sizeof(uint32_t));
      OPENSSL_cleanse(in.mutable_tokens()->mutable_data(),
                      in.tokens_size() * sizeof(uint32_t));
      batch.samples.push_back(std::move(sample));
      continue;
    }
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
  if (request.sequences_size() > 0) {
    if (request.features_size() > 0 || !request.features_f32le().empty()) {
      return absl::InvalidArgumentError(
          "give either features (image models) or sequences (classifying "
          "decoders), not both");
    }
    if (request.sequences_size() > kMaxPredictRows) {
      return absl::InvalidArgumentError(
          absl::StrCat("sequences has ", request.sequences_size(),
                       " rows; the limit is ", kMaxPredictRows,
                       " per request"));
    }
    if (request.rows() != 0 && request.rows() != request.sequences_size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "rows is ", request.rows(), " but sequences has ",
          request.sequences_size(), " rows (rows may be 0: the count)"));
    }
    return absl::OkStatus();
  }
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

absl::Status CheckPredictFitsModel(const v1::PredictRequest& request,
                                   const ModelConfig& config) {
  const bool decoder = config.backbone.kind == BackboneKind::kDecoder;
  if (decoder &&
      config.backbone.decoder.objective == DecoderObjective::kCausalLm) {
    return absl::InvalidArgumentError(
        absl::StrCat("model '", request.model_id(),
                     "' is a causal language model, which Predict does not "
                     "serve: use Score or Generate"));
  }
  const bool tokens = request.sequences_size() > 0;
  if (decoder && !tokens) {
    return absl::InvalidArgumentError(
        absl::StrCat("model '", request.model_id(),
                     "' is a classifying decoder: give token rows in "
                     "sequences, not features"));
  }
  if (!decoder && tokens) {
    return absl::InvalidArgumentError(
        absl::StrCat("sequences: model '", request.model_id(), "' is ",
                     BackboneKindWord(config),
                     ", which takes features, not token rows"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::vector<int32_t>>> PredictTokenRows(
    const v1::PredictRequest& request) {
  return TokenRows(request.sequences(), "sequences", 1);
}

absl::StatusOr<std::vector<std::vector<int32_t>>> ScoreSequences(
    const v1::ScoreRequest& request) {
  if (absl::Status s = CheckModelId(request.model_id()); !s.ok()) return s;
  if (request.sequences_size() == 0) {
    return absl::InvalidArgumentError(
        "sequences is empty: give at least one sequence to score");
  }
  if (request.sequences_size() > kMaxScoredSequences) {
    return absl::InvalidArgumentError(
        absl::StrCat("sequences has ", request.sequences_size(),
                     " sequences; the limit is ", kMaxScoredSequences,
                     " per request"));
  }
  // A sequence of n tokens has n - 1 tokens after a context.
  return TokenRows(request.sequences(), "sequences", 2);
}

absl::StatusOr<GenerateOptions> GenerateOptionsFrom(
    const v1::GenerateRequest& request) {
  if (absl::Status s = CheckModelId(request.model_id()); !s.ok()) return s;
  GenerateOptions options;
  if (request.prompt_size() == 0) {
    return absl::InvalidArgumentError(
        "prompt is empty: give at least one token to continue");
  }
  absl::StatusOr<std::vector<int32_t>> prompt =
      TokenIds(request.prompt(), "prompt");
  if (!prompt.ok()) return prompt.status();
  options.prompt = *std::move(prompt);
  if (request.max_tokens() < 1 || request.max_tokens() > kMaxGeneratedTokens) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_tokens: must be 1..", kMaxGeneratedTokens, ", got ",
                     request.max_tokens()));
  }
  options.max_tokens = request.max_tokens();
  if (!std::isfinite(request.temperature()) || request.temperature() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("temperature: must be finite and >= 0 (0: greedy), got ",
                     request.temperature()));
  }
  options.temperature = request.temperature();
  options.seed = request.seed();
  absl::StatusOr<std::vector<int32_t>> stop =
      TokenIds(request.stop_tokens(), "stop_tokens");
  if (!stop.ok()) return stop.status();
  options.stop_tokens = *std::move(stop);
  return options;
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
