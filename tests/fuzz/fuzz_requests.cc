// The public API's requests as the gRPC adapter validates them before it
// calls the registry (coordinator/request_validation.h): the first byte
// picks the RPC (0 IngestSamples, 1 DeleteSamples, 2 ForgetOwner,
// 3 ListDeletions, 4 Predict, 5 Score, 6 Generate), the rest is its request
// message as a client sends it.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "common/config.h"
#include "common/types.h"
#include "coordinator/request_validation.h"
#include "google/protobuf/stubs/logging.h"
#include "oubli/v1/oubli.pb.h"

namespace {

namespace v1 = ::oubli::v1;
using oubli::coordinator::kMaxDeleteIds;
using oubli::coordinator::kMaxGeneratedTokens;
using oubli::coordinator::kMaxIngestSamplesPerMessage;
using oubli::coordinator::kMaxListPageSize;
using oubli::coordinator::kMaxPredictRows;
using oubli::coordinator::kMaxScoredSequences;

// The documented bounds of ids and owners (common/types.h): 1..256 bytes,
// valid UTF-8 (echoed into replies unchanged), no control characters.
bool IsValidName(absl::string_view name) {
  if (name.empty() || name.size() > 256) return false;
  if (oubli::SanitizeUtf8(name) != name) return false;
  for (char c : name) {
    if (static_cast<uint8_t>(c) < 0x20 || c == 0x7F) return false;
  }
  return true;
}

void Check(bool holds) {
  if (!holds) __builtin_trap();
}

void Ingest(const v1::IngestSamplesRequest& request) {
  if (!oubli::coordinator::CheckModelId(request.model_id()).ok()) return;
  v1::IngestSamplesRequest taken = request;
  auto batch = oubli::coordinator::TakeIngestSamples(1, &taken);
  if (!batch.ok()) return;
  const int n = request.samples_size();
  Check(n >= 1 && n <= kMaxIngestSamplesPerMessage);
  Check(static_cast<int>(batch->samples.size() + batch->rejected.size()) == n);
  // Every sample is passed on as sent, or rejected for its feature type.
  size_t next = 0;
  size_t next_rejected = 0;
  for (const v1::Sample& in : request.samples()) {
    if (in.tokens_size() > 0 || in.prompt_tokens() != 0) {
      // Passed on only when well formed on the wire, ids as sent.
      const bool well_formed =
          in.features().empty() && in.tokens_size() > 0 &&
          in.prompt_tokens() >= 0 && in.prompt_tokens() < in.tokens_size() &&
          std::all_of(in.tokens().begin(), in.tokens().end(),
                      [](uint32_t t) { return t < (uint32_t{1} << 31); });
      if (!well_formed) {
        Check(batch->rejected.at(next_rejected++).first == in.id());
        continue;
      }
      const oubli::Sample& out = batch->samples.at(next++);
      Check(out.id == in.id() && out.owner == in.owner() &&
            out.prompt_tokens == in.prompt_tokens());
      Check(oubli::HoldsTokens(out.feature_type));
      const std::vector<int32_t> ids =
          oubli::DecodeTokens(out.feature_type, out.features);
      Check(std::equal(ids.begin(), ids.end(), in.tokens().begin(),
                       in.tokens().end(), [](int32_t a, uint32_t b) {
                         return a >= 0 && static_cast<uint32_t>(a) == b;
                       }));
      // Well formed on the wire, it is refused further on only for its
      // other fields.
      Check(oubli::ValidateSample(out).ok() || !IsValidName(out.id) ||
            !IsValidName(out.owner) || out.label < 0 ||
            !(out.deletion_risk >= 0 && out.deletion_risk <= 1));
      continue;
    }
    const bool known = in.feature_type() == v1::FEATURE_TYPE_UNSPECIFIED ||
                       in.feature_type() == v1::FEATURE_TYPE_U8 ||
                       in.feature_type() == v1::FEATURE_TYPE_F32;
    if (!known) {
      Check(batch->rejected.at(next_rejected++).first == in.id());
      continue;
    }
    const oubli::Sample& out = batch->samples.at(next++);
    Check(out.id == in.id() && out.owner == in.owner() &&
          out.features == in.features() && out.label == in.label());
    Check((out.feature_type == oubli::FeatureType::kF32) ==
          (in.feature_type() == v1::FEATURE_TYPE_F32));
    // What the registry then accepts is within the documented bounds.
    if (!oubli::ValidateSample(out).ok()) continue;
    Check(IsValidName(out.id) && IsValidName(out.owner));
    Check(!out.features.empty() && out.label >= 0);
    Check(out.feature_type != oubli::FeatureType::kF32 ||
          out.features.size() % 4 == 0);
    Check(out.deletion_risk >= 0 && out.deletion_risk <= 1);
  }
}

void Delete(const v1::DeleteSamplesRequest& request) {
  auto ids = oubli::coordinator::DeleteSamplesIds(request);
  if (!ids.ok()) return;
  Check(!request.model_id().empty());
  Check(!ids->empty() && ids->size() <= static_cast<size_t>(kMaxDeleteIds));
  Check(static_cast<int>(ids->size()) == request.sample_ids_size());
  for (int i = 0; i < request.sample_ids_size(); ++i) {
    Check((*ids)[i] == request.sample_ids(i) && IsValidName((*ids)[i]));
  }
}

void ForgetOwner(const v1::ForgetOwnerRequest& request) {
  if (!oubli::coordinator::CheckForgetOwner(request).ok()) return;
  Check(!request.model_id().empty() && IsValidName(request.owner()));
}

void List(const v1::ListDeletionsRequest& request) {
  auto query = oubli::coordinator::ListDeletionsQuery(request);
  if (!query.ok()) return;
  Check(!request.model_id().empty());
  Check(query->page_size >= 1 && query->page_size <= kMaxListPageSize);
  Check(query->below_id.empty() ||
        (query->below_id.rfind("del-", 0) == 0 &&
         query->below_id.size() <= oubli::coordinator::kMaxPageTokenIdBytes));
  Check(static_cast<int>(query->stages.size()) == request.stages_size());
  for (oubli::coordinator::DeletionStage stage : query->stages) {
    Check(stage >= oubli::coordinator::DeletionStage::kAccepted &&
          stage <= oubli::coordinator::DeletionStage::kRestored);
  }
  Check(query->owner.size() <= oubli::coordinator::kMaxListOwnerBytes);
  Check(query->accepted_from < query->accepted_to);
}

// Token ids as the engine gets them: as sent, each below 2^31.
bool SameIds(const std::vector<int32_t>& ids,
             const google::protobuf::RepeatedField<uint32_t>& sent) {
  return std::equal(ids.begin(), ids.end(), sent.begin(), sent.end(),
                    [](int32_t a, uint32_t b) {
                      return a >= 0 && static_cast<uint32_t>(a) == b;
                    });
}

void PredictTokens(const v1::PredictRequest& request) {
  Check(request.sequences_size() >= 1 &&
        request.sequences_size() <= kMaxPredictRows);
  Check(request.rows() == 0 || request.rows() == request.sequences_size());
  Check(request.features_size() == 0 && request.features_f32le().empty());
  // Each kind of model takes its rows or none.
  oubli::ModelConfig classifier;
  classifier.backbone.kind = oubli::BackboneKind::kDecoder;
  classifier.backbone.decoder.objective = oubli::DecoderObjective::kClassify;
  Check(oubli::coordinator::CheckPredictFitsModel(request, classifier).ok());
  Check(!oubli::coordinator::CheckPredictFitsModel(request,
                                                   oubli::ModelConfig())
             .ok());
  auto rows = oubli::coordinator::PredictTokenRows(request);
  if (!rows.ok()) return;
  Check(static_cast<int>(rows->size()) == request.sequences_size());
  for (int i = 0; i < request.sequences_size(); ++i) {
    Check(!(*rows)[i].empty() &&
          SameIds((*rows)[i], request.sequences(i).tokens()));
  }
}

void Predict(const v1::PredictRequest& request) {
  if (!oubli::coordinator::CheckPredictRequest(request).ok()) return;
  Check(!request.model_id().empty());
  if (request.sequences_size() > 0) return PredictTokens(request);
  Check(request.rows() >= 1 && request.rows() <= kMaxPredictRows);
  const bool has_floats = request.features_size() > 0;
  Check(has_floats != !request.features_f32le().empty());
  // The model's input size decides the rest; a few sizes, MNIST's among
  // them.
  for (int64_t width : {1, 3, 784}) {
    auto inputs = oubli::coordinator::PredictInputs(request, width);
    if (!inputs.ok()) continue;
    Check(static_cast<int64_t>(inputs->size()) == request.rows() * width);
    // The values as sent, bit for bit (NaNs included).
    const void* sent = has_floats
                           ? static_cast<const void*>(request.features().data())
                           : request.features_f32le().data();
    Check(std::memcmp(inputs->data(), sent, inputs->size() * sizeof(float)) ==
          0);
  }
}

void Score(const v1::ScoreRequest& request) {
  auto rows = oubli::coordinator::ScoreSequences(request);
  if (!rows.ok()) return;
  Check(!request.model_id().empty());
  Check(!rows->empty() &&
        rows->size() <= static_cast<size_t>(kMaxScoredSequences));
  Check(static_cast<int>(rows->size()) == request.sequences_size());
  for (int i = 0; i < request.sequences_size(); ++i) {
    Check((*rows)[i].size() >= 2 &&
          SameIds((*rows)[i], request.sequences(i).tokens()));
  }
}

void Generate(const v1::GenerateRequest& request) {
  auto options = oubli::coordinator::GenerateOptionsFrom(request);
  if (!options.ok()) return;
  Check(!request.model_id().empty());
  Check(!options->prompt.empty() && SameIds(options->prompt, request.prompt()));
  Check(SameIds(options->stop_tokens, request.stop_tokens()));
  Check(options->max_tokens >= 1 && options->max_tokens <= kMaxGeneratedTokens);
  Check(std::isfinite(options->temperature) && options->temperature >= 0);
  Check(options->seed == request.seed());
}

template <typename Request>
bool Parse(const uint8_t* data, size_t size, Request* request) {
  return request->ParseFromArray(data, static_cast<int>(size));
}

}  // namespace

// Invalid UTF-8 in a string field is a parse failure, which protobuf also
// logs: quiet, or logging is most of each run.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t rpc = data[0] % 7;
  ++data;
  --size;
  switch (rpc) {
    case 0:
      if (v1::IngestSamplesRequest r; Parse(data, size, &r)) Ingest(r);
      break;
    case 1:
      if (v1::DeleteSamplesRequest r; Parse(data, size, &r)) Delete(r);
      break;
    case 2:
      if (v1::ForgetOwnerRequest r; Parse(data, size, &r)) ForgetOwner(r);
      break;
    case 3:
      if (v1::ListDeletionsRequest r; Parse(data, size, &r)) List(r);
      break;
    case 4:
      if (v1::PredictRequest r; Parse(data, size, &r)) Predict(r);
      break;
    case 5:
      if (v1::ScoreRequest r; Parse(data, size, &r)) Score(r);
      break;
    case 6:
      if (v1::GenerateRequest r; Parse(data, size, &r)) Generate(r);
      break;
  }
  return 0;
}
