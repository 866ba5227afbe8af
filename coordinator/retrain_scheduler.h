// Trains one model's shards back to whole: the training loops that take
// due shards off the retrain queue (RetrainQueue: the policy), and
// training a shard position by position. Each position is the first
// missing prefix of the sequence with the longest valid prefix, unless the
// shard is one deletion away from serving nothing (ChooseNextPosition); its
// checkpoint comes from the PositionRunner (rebuilt from chunks, trained
// on a worker or here), is kept unless a slice of its prefix changed
// meanwhile (then it is destroyed), and what the shard serves is updated
// and published at once.
//
// Knows nothing of deletions' internals: it tells the pending deletions
// which sequences are whole and records the RESTORED records they hand
// back. Reads and changes the shards, the queue and the pending deletions
// under the engine mutex it is given, which it takes itself (call it
// without).
#ifndef OUBLI_COORDINATOR_RETRAIN_SCHEDULER_H_
#define OUBLI_COORDINATOR_RETRAIN_SCHEDULER_H_

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/config.h"
#include "common/thread_priority.h"
#include "coordinator/engine_types.h"
#include "coordinator/metrics.h"
#include "coordinator/model_base.h"
#include "coordinator/pending_deletions.h"
#include "coordinator/position_runner.h"
#include "coordinator/remote_training.h"
#include "coordinator/retrain_queue.h"
#include "coordinator/served_snapshot.h"
#include "coordinator/shard_set.h"
#include "coordinator/sharding_plan.h"
#include "coordinator/slice_generations.h"
#include "storage/checkpoint_store.h"

namespace oubli::ml {
class S3tTrainer;
}  // namespace oubli::ml

namespace oubli::coordinator {

class RetrainScheduler {
 public:
  // What training works on; every pointer outlives the scheduler.
  struct Parts {
    const ModelConfig* config;
    int training_threads = 1;  // positions trained here at once
    // The training threads' priority (common/thread_priority.h).
    BackgroundPriority background_priority = {};
    // The engine mutex and what it guards.
    absl::Mutex* engine_mu;
    ShardSet* shards ABSL_PT_GUARDED_BY(engine_mu);
    RetrainQueue* queue ABSL_PT_GUARDED_BY(engine_mu);
    PendingDeletions* pending ABSL_PT_GUARDED_BY(engine_mu);
    // Thread-safe.
    const ShardingPlan* plan;
    const ModelBase* base;
    PositionRunner* runner;
    const SliceGenerations* slice_generations;
    const ShardGenerations* generations;
    const PublishedSnapshot* served;
    storage::CheckpointStore* checkpoints;
    RestoredRecorder* restored;
    EngineMetrics* metrics;  // may be null
    // Trains on workers of `environment` when it has live ones; may be null.
    RemoteTrainer* remote_trainer;
    std::string environment;
  };

  explicit RetrainScheduler(Parts parts) : p_(std::move(parts)) {}
  ~RetrainScheduler();  // RequestStop, then Join
  RetrainScheduler(const RetrainScheduler&) = delete;
  RetrainScheduler& operator=(const RetrainScheduler&) = delete;

  // Starts the background loops, which train due shards as the queue's
  // policy makes them due: `training_threads` loops train here, and with a
  // remote trainer one more per live worker (up to the shard count, at
  // most 16).
  void Start();
  // The queue gained work, or a shard was released: the loops look again.
  void Wake() { work_cv_.SignalAll(); }

  // Shards trained at once: the local threads, or one per live worker.
  int TrainingParallelism() const;
  // Trains `shards` to completion, `threads` at a time, in the calling
  // thread (and helpers); a shard another loop is training is waited for,
  // then finished. A failed shard stays queued (due again in 5 s). With
  // `yield_to_unserved` (the background loops), a shard that serves stops
  // between positions while a due shard with samples serves nothing and no
  // loop has it, and stays queued, due now: a loop that never sees its
  // shard whole under a stream must not keep another out of the ensemble.
  // Cancelled: stopping; ResourceExhausted: out of memory; other codes:
  // checkpoint or storage failures (the first one).
  absl::StatusOr<TrainSummary> TrainShards(std::vector<int> shards, int threads,
                                           bool yield_to_unserved = false)
      ABSL_LOCKS_EXCLUDED(*p_.engine_mu);

  // Stop in two steps, so the engine can stop its parts together: training
  // ends at the next position (RequestStop), then Join waits for the loops.
  // Both idempotent.
  void RequestStop() ABSL_LOCKS_EXCLUDED(*p_.engine_mu);
  void Join();

 private:
  void BackgroundLoop(int index);
  // Sets *yielded (and returns OK) when it stopped for an unserved shard
  // (TrainShards' yield_to_unserved; null: never).
  absl::Status TrainShardToCompletion(int shard, ml::S3tTrainer& trainer,
                                      TrainSummary* summary, bool* yielded)
      ABSL_LOCKS_EXCLUDED(*p_.engine_mu);
  // ShardState::ServesNothing, read under the engine mutex.
  bool Unserved(int shard) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(*p_.engine_mu);
  // Another shard that serves nothing is due and no loop has it.
  bool AnotherUnservedIsWaiting(int shard) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(*p_.engine_mu);
  // The served model of a position just stored, built without the engine
  // mutex when it may be served next (longer than the prefix served now);
  // empty otherwise.
  ServedModel PrepareServed(int shard, const SliceGenerations::Stamp& stamp,
                            const PositionJob& job,
                            const absl::StatusOr<PositionResult>& result);
  // Applies a position's result to the shard under the engine mutex;
  // `destroy` names a checkpoint the caller destroys once the mutex is
  // released (empty: none); `restored` gets the deletions it completed, for
  // the caller to record once the mutex is released.
  absl::Status ApplyPosition(int shard, const SliceGenerations::Stamp& stamp,
                             const PositionJob& job,
                             const absl::StatusOr<PositionResult>& result,
                             const ServedModel& prepared, TrainSummary* summary,
                             std::string* destroy,
                             std::vector<internal::DeletionRecord>* restored)
      ABSL_LOCKS_EXCLUDED(*p_.engine_mu);
  // Notes the shard's whole sequences with the pending deletions; whether
  // that was news.
  bool NoteWhole(int shard) ABSL_EXCLUSIVE_LOCKS_REQUIRED(*p_.engine_mu);
  std::vector<internal::DeletionRecord> TakeRestored()
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(*p_.engine_mu);

  const Parts p_;
  bool stopping_ ABSL_GUARDED_BY(*p_.engine_mu) = false;
  // Cancels the positions in training.
  std::atomic<bool> stop_requested_{false};
  // Signalled when the queue gains work or a shard is released.
  absl::CondVar work_cv_;
  std::vector<std::thread> loops_;
};

}  // namespace oubli::coordinator

#endif  // OUBLI_COORDINATOR_RETRAIN_SCHEDULER_H_
