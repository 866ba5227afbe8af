// Produces one S3T position's checkpoint: rebuilt from its erasure-coded
// chunks when it has some, else trained on a worker, else trained here
// (at most `training_threads` positions at once in this process, however
// many training loops run for workers), then stored and coded onto
// workers. Knows nothing of shards' state: the engine picks the position,
// hands over its data and decides what the result means (a deletion may
// have made it stale meanwhile). Thread-safe.
#ifndef OUBLI_COORDINATOR_POSITION_RUNNER_H_
#define OUBLI_COORDINATOR_POSITION_RUNNER_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/config.h"
#include "coordinator/chunk_replication.h"
#include "coordinator/metrics.h"
#include "coordinator/prefix_slices.h"
#include "coordinator/remote_training.h"
#include "storage/checkpoint_store.h"
#include "storage/encoded_slice.h"
#include "worker/ml/position_data.h"

namespace oubli::ml {
class S3tTrainer;
}  // namespace oubli::ml

namespace oubli::coordinator {

struct PositionJob {
  int shard = 0;
  std::vector<int> prefix;  // slice order, parent + this position's slice
  std::string key;          // checkpoint key of the prefix
  std::string parent_key;   // empty for the first position
  // The prefix's slices by digest, read only as far as needed: those a
  // worker lacks, or all of them once a local training slot is taken.
  // Aborted from a read: a slice changed meanwhile (the position is
  // cancelled).
  PrefixSlices read_slices;
  // Polled while training: true once the result would be stale.
  std::function<bool()> cancelled;
};

enum class PositionOutcome {
  kRestored,       // rebuilt from chunks and stored under job.key
  kTrained,        // trained and stored under job.key
  kCancelled,      // job.cancelled said so; nothing stored
  kParentMissing,  // the parent checkpoint is gone; nothing stored
  kParentCorrupt,  // the parent checkpoint does not load; nothing stored
};

struct PositionResult {
  PositionOutcome outcome = PositionOutcome::kTrained;
  ml::TrainStats stats;  // of the training, also a cancelled one
  // kRestored, kTrained: the bytes stored under job.key (the caller may
  // build the served model from them without reading the file again).
  std::string checkpoint;
};

class PositionRunner {
 public:
  // Every pointer outlives this; `remote` and `metrics` may be null.
  PositionRunner(const ModelConfig& config, std::string config_text,
                 std::string environment,
                 storage::CheckpointStore* checkpoints,
                 ChunkReplication* chunks, RemoteTrainer* remote,
                 int training_threads, EngineMetrics* metrics);

  // Runs `job` (its slices are read only when needed and released as
  // soon as they are no longer needed).
  // `trainer` trains it if it is trained here. Errors: reading the parent
  // or writing the checkpoint failed; ResourceExhausted: out of memory;
  // other training failures of the position itself.
  absl::StatusOr<PositionResult> Run(PositionJob& job, ml::S3tTrainer& trainer);

  // Positions waiting for a local training slot now (tests).
  int LocalWaiting() ABSL_LOCKS_EXCLUDED(local_mu_);

 private:
  // Unavailable when no worker could take the position.
  // Aborted: a slice changed since the position was chosen.
  absl::StatusOr<std::string> TrainRemotely(PositionJob& job,
                                            const std::string& parent,
                                            ml::TrainStats* stats);

  const ModelConfig& config_;
  const std::string config_text_;
  const std::string environment_;
  storage::CheckpointStore* const checkpoints_;
  ChunkReplication* const chunks_;
  RemoteTrainer* const remote_;
  const int training_threads_;
  EngineMetrics* const metrics_;

  absl::Mutex local_mu_;
  int local_training_ ABSL_GUARDED_BY(local_mu_) = 0;
  int local_waiting_ ABSL_GUARDED_BY(local_mu_) = 0;
};

}  // namespace oubli::coordinator

#endif  // OUBLI_COORDINATOR_POSITION_RUNNER_H_
