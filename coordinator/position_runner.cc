#include "coordinator/position_runner.h"

#include <torch/torch.h>

#include <algorithm>
#include <cstdio>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/status_macros.h"
#include "worker/ml/s3t_trainer.h"

namespace oubli::coordinator {

PositionRunner::PositionRunner(const ModelConfig& config,
                               std::string config_text,
                               std::string environment,
                               storage::CheckpointStore* checkpoints,
                               ChunkReplication* chunks, RemoteTrainer* remote,
                               int training_threads, EngineMetrics* metrics)
    : config_(config),
      config_text_(std::move(config_text)),
      environment_(std::move(environment)),
      checkpoints_(checkpoints),
      chunks_(chunks),
      remote_(remote),
      training_threads_(std::max(1, training_threads)),
      metrics_(metrics) {}

absl::StatusOr<PositionResult> PositionRunner::Run(
    PositionJob& job, worker::S3tTrainer& trainer) {
  PositionResult result;
  // A checkpoint lost here but erasure-coded on workers is rebuilt, not
  // retrained: same key, same bytes (checked against the manifest).
  if (chunks_->enabled()) {
    absl::StatusOr<std::optional<std::string>> restored =
        chunks_->Restore(job.key);
    absl::Status put = restored.status();
    if (restored.ok() && restored->has_value()) {
      put = checkpoints_->Put(job.key, **restored);
      if (put.ok()) {
        job.slices.clear();
        if (metrics_ != nullptr) {
          metrics_->CheckpointRestored(
              static_cast<int64_t>((*restored)->size()));
        }
        result.outcome = PositionOutcome::kRestored;
        result.checkpoint = **std::move(restored);
        return result;
      }
    }
    if (!put.ok()) {
      std::fprintf(stderr,
                   "oubli: checkpoint %s not restorable from chunks, "
                   "retraining it: %s\n",
                   job.key.c_str(), put.ToString().c_str());
      if (metrics_ != nullptr) metrics_->CheckpointRestoreFailed();
    }
  }

  std::string parent;
  if (!job.parent_key.empty()) {
    absl::StatusOr<std::string> bytes = checkpoints_->Get(job.parent_key);
    if (absl::IsNotFound(bytes.status())) {
      result.outcome = PositionOutcome::kParentMissing;
      return result;
    }
    OUBLI_RETURN_IF_ERROR(bytes.status());
    parent = *std::move(bytes);
  }
  if (job.read_slices) {
    absl::StatusOr<std::vector<std::shared_ptr<const storage::EncodedSlice>>>
        slices = job.read_slices();
    if (absl::IsAborted(slices.status())) {
      result.outcome = PositionOutcome::kCancelled;
      return result;
    }
    OUBLI_RETURN_IF_ERROR(slices.status());
    job.slices = *std::move(slices);
  }
  absl::StatusOr<std::string> trained = absl::UnavailableError("no worker");
  if (remote_ != nullptr && remote_->Capacity(environment_) > 0) {
    trained = TrainRemotely(job, parent, &result.stats);
  }
  // No worker could take it (none registered, or all died): train here.
  if (absl::IsUnavailable(trained.status())) {
    {
      absl::MutexLock lock(&local_mu_);
      auto slot_free = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(local_mu_) {
        return local_training_ < training_threads_;
      };
      local_mu_.Await(absl::Condition(&slot_free));
      ++local_training_;
    }
    absl::StatusOr<worker::PositionData> data =
        worker::PositionDataFromSlices(job.slices, config_.backbone);
    if (data.ok()) {
      trained = trainer.TrainPosition(job.shard, job.prefix, parent, *data,
                                      &result.stats, job.cancelled);
    } else {
      // Our own slices: a malformed one is not the parent's fault.
      trained = absl::IsInvalidArgument(data.status())
                    ? absl::InternalError(data.status().message())
                    : data.status();
    }
    absl::MutexLock lock(&local_mu_);
    --local_training_;
  }
  job.slices.clear();  // drop our hold on the samples promptly
  if (absl::IsCancelled(trained.status())) {
    result.outcome = PositionOutcome::kCancelled;
    return result;
  }
  if (!parent.empty() && absl::IsInvalidArgument(trained.status())) {
    result.outcome = PositionOutcome::kParentCorrupt;
    return result;
  }
  OUBLI_RETURN_IF_ERROR(trained.status());
  absl::Status put = checkpoints_->Put(job.key, *trained);
  // Coded before the engine hears of it, so a purge waiting for this
  // position sees the manifest and destroys the chunks if a deletion made
  // them stale.
  if (put.ok() && !job.cancelled()) {
    chunks_->Protect(job.key, *trained, config_.erasure);
  }
  if (metrics_ != nullptr) {
    metrics_->PositionTrained(
        result.stats.samples, result.stats.steps,
        put.ok() ? static_cast<int64_t>(trained->size()) : 0);
  }
  OUBLI_RETURN_IF_ERROR(put);
  result.outcome = PositionOutcome::kTrained;
  result.checkpoint = *std::move(trained);
  return result;
}

absl::StatusOr<std::string> PositionRunner::TrainRemotely(
    const PositionJob& job, const std::string& parent,
    worker::TrainStats* stats) {
  RemotePosition position;
  position.config_text = config_text_;
  position.environment = environment_;
  position.shard = job.shard;
  position.prefix = job.prefix;
  position.parent = parent;
  position.model_id = config_.model_id;
  position.slices = job.slices;
  const absl::Time start = absl::Now();
  OUBLI_ASSIGN_OR_RETURN(RemoteResult result,
                         remote_->TrainPosition(position, job.cancelled));
  stats->samples = result.samples;
  stats->steps = result.steps;
  stats->elapsed = absl::Now() - start;
  return std::move(result.checkpoint);
}

}  // namespace oubli::coordinator
