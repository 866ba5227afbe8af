// Wire-level checks of the public API's requests (oubli.v1) and their
// conversion to domain values: what the gRPC adapter does before it calls
// the registry. Apart from the adapter, free of gRPC and torch, so every
// request a client can send is fuzzed through them (tests/fuzz). Errors are
// InvalidArgument naming the field and, where there is one, the limit.
#ifndef OUBLI_COORDINATOR_REQUEST_VALIDATION_H_
#define OUBLI_COORDINATOR_REQUEST_VALIDATION_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/config.h"
#include "common/types.h"
#include "coordinator/engine_types.h"
#include "oubli/v1/oubli.pb.h"

namespace oubli::coordinator {

// Wire-level limits; the proto documents them.
inline constexpr int kMaxDeleteIds = 10000;
inline constexpr int kMaxIngestSamplesPerMessage = 10000;
inline constexpr int kMaxListPageSize = 1000;
inline constexpr int kDefaultListPageSize = 100;
inline constexpr size_t kMaxListOwnerBytes = 256;
// ListDeletions page tokens: this prefix and a deletion id.
inline constexpr absl::string_view kPageTokenPrefix = "p1.";
inline constexpr size_t kMaxPageTokenIdBytes = 64;

absl::Status CheckModelId(absl::string_view model_id);

// The samples of one IngestSamples message.
struct IngestBatch {
  std::vector<Sample> samples;
  // (sample id, reason) of samples malformed on the wire (an unknown
  // feature_type; tokens beside features, an id of 2^31 or more, or
  // prompt_tokens outside [0, tokens)): reported in the response, not fatal
  // to the message. Whether tokens fit the model (vocabulary, context) is
  // the engine's to say.
  std::vector<std::pair<std::string, std::string>> rejected;
};
// Moves the samples out of message number `message` (from 1) of a stream.
// The model id is the caller's: it depends on the stream's first message.
absl::StatusOr<IngestBatch> TakeIngestSamples(
    int64_t message, oubli::v1::IngestSamplesRequest* request);

// The ids a DeleteSamples request names, each valid (ValidateSampleId).
absl::StatusOr<std::vector<std::string>> DeleteSamplesIds(
    const oubli::v1::DeleteSamplesRequest& request);

absl::Status CheckForgetOwner(const oubli::v1::ForgetOwnerRequest& request);

// The query a ListDeletions request asks for (its model id checked).
absl::StatusOr<DeletionQuery> ListDeletionsQuery(
    const oubli::v1::ListDeletionsRequest& request);

// Predict before the model is looked up: model id, and either token rows
// (sequences: 1..kMaxPredictRows, rows 0 or their count, no features) or
// features (rows 1..kMaxPredictRows, exactly one encoding).
absl::Status CheckPredictRequest(const oubli::v1::PredictRequest& request);
// Whether `config`'s model answers this Predict: image models take
// features, classifying decoders token rows, and a causal language model
// none (Score and Generate serve it). Requires CheckPredictRequest.
absl::Status CheckPredictFitsModel(const oubli::v1::PredictRequest& request,
                                   const ModelConfig& config);
// Predict's inputs, row-major, for a model of `features_per_row` inputs.
// Requires CheckPredictRequest(request) to have passed.
absl::StatusOr<std::vector<float>> PredictInputs(
    const oubli::v1::PredictRequest& request, int64_t features_per_row);
// Predict's token rows, each 1.. tokens. Requires CheckPredictRequest.
absl::StatusOr<std::vector<std::vector<int32_t>>> PredictTokenRows(
    const oubli::v1::PredictRequest& request);

// Score's sequences: 1..kMaxScoredSequences, each at least 2 ids below
// 2^31 (the engine checks the model's kind, vocabulary and context).
absl::StatusOr<std::vector<std::vector<int32_t>>> ScoreSequences(
    const oubli::v1::ScoreRequest& request);
// Generate's options: a prompt of 1.. ids and stop tokens below 2^31,
// max_tokens 1..kMaxGeneratedTokens, a finite temperature >= 0.
absl::StatusOr<GenerateOptions> GenerateOptionsFrom(
    const oubli::v1::GenerateRequest& request);

}  // namespace oubli::coordinator

#endif  // OUBLI_COORDINATOR_REQUEST_VALIDATION_H_
