#include "coordinator/predictor.h"

#include <cstdio>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/hash.h"
#include "common/status_macros.h"
#include "coordinator/ensemble.h"
#include "coordinator/lm_ensemble.h"

namespace oubli::coordinator {

Predictor::Predictor(const ModelConfig* config, const PublishedSnapshot* served,
                     std::shared_ptr<const ml::ShardModel> base_model,
                     ShardServing* shard_serving,
                     ShardServing::Query serving_query,
                     storage::CheckpointStore* checkpoints,
                     InFlightDrain* predict_drain, EngineMetrics* metrics)
    : config_(*config),
      served_(served),
      base_model_(std::move(base_model)),
      shard_serving_(shard_serving),
      serving_query_(std::move(serving_query)),
      checkpoints_(checkpoints),
      predict_drain_(predict_drain),
      metrics_(metrics) {}

absl::StatusOr<Prediction> Predictor::Predict(absl::Span<const float> inputs,
                                              int64_t rows) {
  const int64_t width = config_.backbone.InputSize();
  if (config_.backbone.kind == BackboneKind::kDecoder) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model '", config_.model_id, "' is a language model: it takes token ",
        config_.backbone.decoder.objective == DecoderObjective::kClassify
            ? "rows (Predict with sequences)"
            : "sequences (Score, Generate)",
        ", not features"));
  }
  if (rows <= 0) {
    return absl::InvalidArgumentError("predict needs at least one input row");
  }
  if (static_cast<int64_t>(inputs.size()) != rows * width) {
    return absl::InvalidArgumentError(absl::StrCat(
        "predict got ", inputs.size(), " values for ", rows, " rows; model '",
        config_.model_id, "' takes ", width, " features per row"));
  }
  Prediction out;
  // The ensemble of the base alone (from_base) has no shard checkpoint, so
  // it is computed here: the mean of one model is its own answer.
  OUBLI_ASSIGN_OR_RETURN(Answering answering, AnsweringNow());
  const std::vector<std::shared_ptr<const ml::ShardModel>>& models =
      answering.models;
  const std::vector<size_t>& served_index = answering.shard_of;
  ShardServing::Query query = serving_query_;
  for (size_t i = 0; i < served_index.size(); ++i) {
    query.shards.push_back(
        {static_cast<int>(served_index[i]), answering.checkpoint_sha256[i]});
  }
  std::move(answering).ReportTo(out);
  // Workers answer with the checkpoint named by its SHA-256, so what they
  // compute is exactly what the models captured above would.
  std::vector<ShardServing::ShardResult> remote;
  if (shard_serving_ != nullptr && !query.shards.empty() &&
      shard_serving_->ServingCapacity(serving_query_.environment) > 0) {
    query.inputs = inputs;
    query.rows = rows;
    query.checkpoint = [&](size_t i) -> absl::StatusOr<std::string> {
      const std::string& key = out.served[served_index[i]].key;
      OUBLI_ASSIGN_OR_RETURN(std::string bytes, checkpoints_->Get(key));
      // Purged or replaced since: the worker must not get other bytes.
      if (Sha256Hex(bytes) != query.shards[i].checkpoint_sha256) {
        return absl::AbortedError("checkpoint changed since the request");
      }
      return bytes;
    };
    InFlightDrain::Scope in_flight(predict_drain_);
    remote = shard_serving_->Predict(query);
  }
  std::vector<EnsembleMember> members(models.size());
  int64_t by_workers = 0, fallbacks = 0;
  const int64_t classes = config_.backbone.num_classes;
  for (size_t i = 0; i < models.size(); ++i) {
    members[i].model = models[i];
    if (i < remote.size() && remote[i].probabilities.ok() &&
        static_cast<int64_t>(remote[i].probabilities->size()) ==
            rows * classes) {
      members[i].answered = &*remote[i].probabilities;
      out.served[served_index[i]].worker = remote[i].worker;
      ++by_workers;
    } else if (i < remote.size()) {
      ++fallbacks;
      // One line per model per 10 s at most: a dead worker can fail
      // thousands of requests before its heartbeats time out.
      const int64_t now = absl::ToUnixSeconds(absl::Now());
      int64_t last = last_fallback_log_.load();
      if (fallbacks == 1 && now - last >= 10 &&
          last_fallback_log_.compare_exchange_strong(last, now)) {
        std::fprintf(stderr, "oubli: predict: shard %d computed here: %s\n",
                     query.shards[i].shard,
                     remote[i].probabilities.status().ToString().c_str());
      }
    }
  }
  OUBLI_ASSIGN_OR_RETURN(out.probabilities,
                         EnsembleMean(members, inputs, rows, width, classes));
  if (metrics_ != nullptr && !out.from_base) {
    metrics_->ShardsPredicted(
        by_workers,
        static_cast<int64_t>(models.size()) - by_workers - fallbacks,
        fallbacks);
  }
  out.rows = rows;
  out.classes = classes;
  return out;
}

absl::Status Predictor::CheckDecoderObjective(DecoderObjective objective,
                                              absl::string_view call) const {
  const BackboneConfig& backbone = config_.backbone;
  if (backbone.kind == BackboneKind::kDecoder &&
      backbone.decoder.objective == objective) {
    return absl::OkStatus();
  }
  const bool causal = objective == DecoderObjective::kCausalLm;
  return absl::InvalidArgumentError(absl::StrCat(
      call, " needs a ",
      causal ? "causal language model" : "classifying decoder", "; model '",
      config_.model_id, "' is ",
      backbone.kind != BackboneKind::kDecoder ? "an image classifier (Predict)"
      : causal ? "a classifying decoder (Predict with token rows)"
               : "a causal language model (Score, Generate)"));
}

absl::StatusOr<Predictor::Answering> Predictor::AnsweringNow() const {
  // One snapshot, no engine lock (see served_snapshot.h).
  const std::shared_ptr<const ServedSnapshot> snapshot = served_->Get();
  Answering out;
  out.served = snapshot->shards;
  out.fingerprint = snapshot->fingerprint;
  for (size_t s = 0; s < snapshot->served.size(); ++s) {
    const ServedModel& served = snapshot->served[s];
    if (served.model) {
      out.models.push_back(served.model);
      out.shard_of.push_back(s);
      out.checkpoint_sha256.push_back(served.checkpoint_sha256);
    }
  }
  if (out.models.empty()) {
    if (base_model_ == nullptr) {
      return absl::FailedPreconditionError(absl::StrCat(
          "no shard has a valid prefix: the model is not trained yet, or "
          "deletions cut every shard and retraining is pending ",
          config_.serving.base_fallback
              ? "(base_fallback is on, but the base model could not be "
                "built: see the coordinator log)"
              : "(config serving.base_fallback=true answers from the base "
                "model then)"));
    }
    out.models.push_back(base_model_);
    out.from_base = true;
  }
  return out;
}

absl::StatusOr<Prediction> Predictor::PredictTokens(
    absl::Span<const std::vector<int32_t>> sequences) {
  OUBLI_RETURN_IF_ERROR(CheckDecoderObjective(
      DecoderObjective::kClassify, "predicting classes of token rows"));
  if (sequences.empty() || sequences.size() > kMaxPredictRows) {
    return absl::InvalidArgumentError(
        absl::StrCat("predict takes 1..", kMaxPredictRows, " token rows, got ",
                     sequences.size()));
  }
  // Decoders are computed here: workers serve image models only.
  OUBLI_ASSIGN_OR_RETURN(Answering serving, AnsweringNow());
  Prediction out;
  OUBLI_ASSIGN_OR_RETURN(out.probabilities,
                         EnsembleTokenClassProbabilities(
                             serving.models, config_.backbone, sequences));
  out.rows = static_cast<int64_t>(sequences.size());
  out.classes = config_.backbone.num_classes;
  std::move(serving).ReportTo(out);
  return out;
}

absl::StatusOr<TokenScores> Predictor::Score(
    absl::Span<const std::vector<int32_t>> sequences) {
  OUBLI_RETURN_IF_ERROR(
      CheckDecoderObjective(DecoderObjective::kCausalLm, "scoring"));
  if (sequences.empty() || sequences.size() > kMaxScoredSequences) {
    return absl::InvalidArgumentError(
        absl::StrCat("score takes 1..", kMaxScoredSequences, " sequences, got ",
                     sequences.size()));
  }
  // Decoders are computed here: workers serve image models only.
  OUBLI_ASSIGN_OR_RETURN(Answering serving, AnsweringNow());
  TokenScores out;
  OUBLI_ASSIGN_OR_RETURN(
      out.token_log_probs,
      EnsembleTokenLogProbs(serving.models, config_.backbone, sequences));
  std::move(serving).ReportTo(out);
  return out;
}

absl::StatusOr<Generation> Predictor::Generate(const GenerateOptions& options) {
  OUBLI_RETURN_IF_ERROR(
      CheckDecoderObjective(DecoderObjective::kCausalLm, "generating"));
  // Decoders are computed here: workers serve image models only.
  OUBLI_ASSIGN_OR_RETURN(Answering serving, AnsweringNow());
  OUBLI_ASSIGN_OR_RETURN(
      Generation out,
      EnsembleGenerate(serving.models, config_.backbone, options));
  std::move(serving).ReportTo(out);
  return out;
}

}  // namespace oubli::coordinator
