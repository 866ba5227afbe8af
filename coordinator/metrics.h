// Observer interfaces through which the domain layer (Engine,
// ModelRegistry) and the transport (OubliService) report events for
// monitoring. They name no metrics library: coordinator/prometheus_metrics
// implements them; a null pointer means "no metrics".
//
// Implementations must be thread-safe, must not block, and must never call
// back into an Engine or ModelRegistry: the engine calls some of them while
// holding its own mutex.
#ifndef OUBLI_COORDINATOR_METRICS_H_
#define OUBLI_COORDINATOR_METRICS_H_

#include <cstdint>
#include <memory>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace oubli::coordinator {

// Events of one model's engine. Deletion events are one per deletion (not
// per sample), in this process: a deletion finished after a restart reports
// only the stages reached after it.
class EngineMetrics {
 public:
  virtual ~EngineMetrics() = default;

  // The deletion's record and index removal are durable. `samples`: ids it
  // resolved (deleted now).
  virtual void DeletionAccepted(int64_t samples) = 0;
  // Served ensemble switched. `since_request`: from the request's arrival in
  // the engine (includes waiting for its group commit).
  virtual void DeletionForgotten(absl::Duration since_request) = 0;
  virtual void DeletionPurged(absl::Duration since_accepted) = 0;
  virtual void DeletionRestored(absl::Duration since_accepted) = 0;

  // One prefix position trained to completion (also when its checkpoint is
  // discarded because a deletion raced it). `checkpoint_bytes_written`: 0 if
  // the checkpoint write failed.
  virtual void PositionTrained(int64_t sample_visits, int64_t steps,
                               int64_t checkpoint_bytes_written) = 0;
  // A position whose result was thrown away because a deletion changed its
  // shard while it trained (cancelled mid-way, or its checkpoint discarded
  // as stale). `sample_visits`: those it had done.
  virtual void PositionWasted(int64_t sample_visits) {}

  // A new checkpoint was erasure-coded onto workers.
  virtual void CheckpointEncoded(int64_t bytes) {}
  // A lost checkpoint was rebuilt from chunks instead of retrained.
  virtual void CheckpointRestored(int64_t bytes) {}
  // Rebuilding failed (too few good chunks): the prefix is retrained.
  virtual void CheckpointRestoreFailed() {}
  // Chunks regenerated and re-placed on live workers after their holder
  // died.
  virtual void ChunksRepaired(int64_t chunks) {}
  // One Predict: shards answered by workers, by the coordinator because no
  // worker serves, and by the coordinator after a worker failed to answer.
  virtual void ShardsPredicted(int64_t by_workers, int64_t by_coordinator,
                               int64_t after_worker_failure) {}
};

// Hands each model's engine its EngineMetrics.
class ModelMetricsFactory {
 public:
  virtual ~ModelMetricsFactory() = default;
  // Called once per engine the registry opens or creates; may be called
  // again for the same id (e.g. after a failed create) and should then
  // return the same series.
  virtual std::shared_ptr<EngineMetrics> ForModel(
      absl::string_view model_id) = 0;
};

// Completed RPCs of the public API.
class RpcMetrics {
 public:
  virtual ~RpcMetrics() = default;
  // `method`: the RPC's name ("DeleteSamples"); `code`: the gRPC status
  // code's name ("OK", "NOT_FOUND").
  virtual void RpcHandled(absl::string_view method, absl::string_view code,
                          absl::Duration latency) = 0;
};

}  // namespace oubli::coordinator

#endif  // OUBLI_COORDINATOR_METRICS_H_
