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

absl::StatusOr<PositionResult> PositionRunner::Run(PositionJob& job,
                                                   ml::S3tTrainer& trainer) {
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
  absl::StatusOr<std::string> trained = absl::UnavailableError("no worker");
  if (remote_ != nullptr && remote_->Capacity(environment_) > 0) {
    trained = TrainRemotely(job, parent, &result.stats);
  }
  // No worker could take it (none registered, or all died): train here.
  if (absl::IsUnavailable(trained.status())) {
    // What Digests() kept for a worker is read again once there is a slot.
    job.read_slices.Release();
    {
      absl::MutexLock lock(&local_mu_);
      auto slot_free = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(local_mu_) {
        return local_training_ < training_threads_;
      };
      ++local_waiting_;
      local_mu_.Await(absl::Condition(&slot_free));
      --local_waiting_;
      ++local_training_;
    }
    // Read only now: a position waiting for a slot holds no slice bytes.
    absl::StatusOr<std::vector<std::shared_ptr<const storage::EncodedSlice>>>
        slices = job.read_slices.ReadAll();
    absl::StatusOr<ml::PositionData> data =
        slices.ok() ? ml::PositionDataFromSlices(*slices, config_.backbone)
                    : slices.status();
    if (slices.ok()) slices->clear();  // the rows are decoded
    job.read_slices.Release();
    if (data.ok()) {
      trained = trainer.TrainPosition(job.shard, job.prefix, parent, *data,
                                      &result.stats, job.cancelled);
    } else if (absl::IsInvalidArgument(data.status())) {
      // Our own slices: a malformed one is not the parent's fault.
      trained = absl::InternalError(data.status().message());
    } else {
      trained = data.status();
    }
    absl::MutexLock lock(&local_mu_);
    --local_training_;
  }
  job.read_slices.Release();  // drop our hold on the samples promptly
  // Aborted: a slice changed since the position was chosen.
  if (absl::IsAborted(trained.status()) ||
      absl::IsCancelled(trained.status())) {
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
    PositionJob& job, const std::string& parent, ml::TrainStats* stats) {
  RemotePosition position;
  position.config_text = config_text_;
  position.environment = environment_;
  position.shard = job.shard;
  position.prefix = job.prefix;
  position.parent = parent;
  position.model_id = config_.model_id;
  OUBLI_ASSIGN_OR_RETURN(position.slice_digests, job.read_slices.Digests());
  // Called for the slices the worker lacks only. A slice it holds is not
  // read, so not checked against the store here; that cannot train on
  // deleted data: the digests were those of the current slices when the
  // engine chose the position, under its mutex, and a deletion bumps the
  // slice's generation under that mutex before it is FORGOTTEN, which
  // cancels this position (polled while the worker trains) and discards
  // its checkpoint even if it finished; the purge waits for such positions
  // (WaitForStaleTraining) before it drops the deleted slice from every
  // worker (DropStaleSlices), and workers refuse uploads begun before it.
  position.read_slices = [&job](absl::Span<const std::string> digests) {
    return job.read_slices.Read(digests);
  };
  const absl::Time start = absl::Now();
  OUBLI_ASSIGN_OR_RETURN(RemoteResult result,
                         remote_->TrainPosition(position, job.cancelled));
  stats->samples = result.samples;
  stats->steps = result.steps;
  stats->elapsed = absl::Now() - start;
  return std::move(result.checkpoint);
}

int PositionRunner::LocalWaiting() {
  absl::MutexLock lock(&local_mu_);
  return local_waiting_;
}

}  // namespace oubli::coordinator
