// Answers one model's Predict, PredictTokens, Score and Generate from the
// served snapshot, without any engine lock, so no writer's I/O delays them.
// Image models' shards go to workers of this process's numeric environment
// when there are some (a worker lacking a checkpoint gets its bytes, named
// by their SHA-256), and a shard no worker answers is computed here;
// decoders are computed here. Thread-safe.
#ifndef OUBLI_COORDINATOR_PREDICTOR_H_
#define OUBLI_COORDINATOR_PREDICTOR_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/config.h"
#include "coordinator/engine_types.h"
#include "coordinator/in_flight_drain.h"
#include "coordinator/metrics.h"
#include "coordinator/remote_training.h"
#include "coordinator/served_snapshot.h"
#include "storage/checkpoint_store.h"

namespace oubli::coordinator {

class Predictor {
 public:
  // Every pointer outlives the predictor. `base_model`: what answers when
  // no shard serves, under serving.base_fallback (null: nothing then).
  // `shard_serving` and `metrics` may be null; `serving_query` names the
  // model (no shards, no inputs). Predicts that hand workers checkpoints
  // enter `predict_drain` (a purge waits for them).
  Predictor(const ModelConfig* config, const PublishedSnapshot* served,
            std::shared_ptr<const ml::ShardModel> base_model,
            ShardServing* shard_serving, ShardServing::Query serving_query,
            storage::CheckpointStore* checkpoints, InFlightDrain* predict_drain,
            EngineMetrics* metrics);

  // As Engine's (see engine.h), errors included.
  absl::StatusOr<Prediction> Predict(absl::Span<const float> inputs,
                                     int64_t rows);
  absl::StatusOr<Prediction> PredictTokens(
      absl::Span<const std::vector<int32_t>> sequences);
  absl::StatusOr<TokenScores> Score(
      absl::Span<const std::vector<int32_t>> sequences);
  absl::StatusOr<Generation> Generate(const GenerateOptions& options);

 private:
  // What answers now, as of one snapshot: the served shards' models in
  // shard order, or the base alone (from_base) under base_fallback.
  // FailedPrecondition when nothing may answer.
  struct Answering {
    std::vector<std::shared_ptr<const ml::ShardModel>> models;
    // Per model, its shard (index into `served`); empty for the base.
    std::vector<size_t> shard_of;
    std::vector<ServedShard> served;
    std::vector<std::string> checkpoint_sha256;  // per model, as shard_of
    std::string fingerprint;
    bool from_base = false;

    // What every answer reports of the ensemble that gave it.
    template <typename Answer>
    void ReportTo(Answer& out) && {
      out.served = std::move(served);
      out.fingerprint = std::move(fingerprint);
      out.from_base = from_base;
    }
  };
  absl::StatusOr<Answering> AnsweringNow() const;
  // InvalidArgument naming `call` and what the model serves instead, unless
  // the model is a decoder of `objective`.
  absl::Status CheckDecoderObjective(DecoderObjective objective,
                                     absl::string_view call) const;

  const ModelConfig& config_;
  const PublishedSnapshot* const served_;
  const std::shared_ptr<const ml::ShardModel> base_model_;
  ShardServing* const shard_serving_;
  const ShardServing::Query serving_query_;
  storage::CheckpointStore* const checkpoints_;
  InFlightDrain* const predict_drain_;
  EngineMetrics* const metrics_;
  // Unix seconds of the last "computed here" log line.
  std::atomic<int64_t> last_fallback_log_{0};
};

}  // namespace oubli::coordinator

#endif  // OUBLI_COORDINATOR_PREDICTOR_H_
