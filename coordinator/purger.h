// Makes one model's deletions PURGED: no copy of their samples left
// anywhere. A pass (PurgeUnfinished) takes every pending deletion not
// purged yet, waits out positions that trained on their samples, purges
// the payloads from the lineage store (one flush and compaction however
// many deletions), destroys every checkpoint no longer current, the
// erasure-coded chunks of those checkpoints on workers, the workers'
// serving copies and the slices they cached, then stamps PURGED (and
// RESTORED where that was all a deletion still waited for).
//
// Its thread runs passes as deletions arrive (coalesced under a stream),
// backs off after a failure until RetryNow, and between passes re-places
// chunks whose holders died.
//
// Knows nothing of training: it reads the shard table (current and stale
// keys, positions in flight) and changes the pending deletions under the
// engine mutex it is given, which it takes itself (call it without).
#ifndef OUBLI_COORDINATOR_PURGER_H_
#define OUBLI_COORDINATOR_PURGER_H_

#include <atomic>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "common/config.h"
#include "common/thread_priority.h"
#include "coordinator/chunk_replication.h"
#include "coordinator/deletion_ledger.h"
#include "coordinator/in_flight_drain.h"
#include "coordinator/pending_deletions.h"
#include "coordinator/remote_training.h"
#include "coordinator/served_snapshot.h"
#include "coordinator/shard_table.h"
#include "coordinator/slice_generations.h"
#include "storage/checkpoint_store.h"
#include "storage/lineage_store.h"

namespace oubli::coordinator {

class Purger {
 public:
  // What a pass works on; every pointer outlives the purger.
  struct Parts {
    const ModelConfig* config;
    // The model existed before this process (workers may hold copies an
    // earlier coordinator gave them).
    bool reopened = false;
    // The engine mutex and what it guards.
    absl::Mutex* engine_mu;
    ShardTable* shards ABSL_PT_GUARDED_BY(engine_mu);
    PendingDeletions* pending ABSL_PT_GUARDED_BY(engine_mu);
    // Thread-safe.
    const SliceGenerations* slice_generations;
    const PublishedSnapshot* served;
    InFlightDrain* predict_drain;
    RestoredRecorder* restored;
    storage::LineageStore* store;
    DeletionLedger* ledger;  // may be null
    storage::CheckpointStore* checkpoints;
    ChunkReplication* chunks;
    // May be null (no workers serve or train).
    ShardServing* shard_serving;
    RemoteTrainer* remote_trainer;
    // The model's identity for ShardServing (no shards, no inputs).
    ShardServing::Query serving_query;
    // The purge thread's priority (common/thread_priority.h).
    BackgroundPriority background_priority = {};
  };

  explicit Purger(Parts parts) : p_(std::move(parts)) {}
  ~Purger();  // RequestStop, then Join
  Purger(const Purger&) = delete;
  Purger& operator=(const Purger&) = delete;

  // PURGED for every pending deletion not purged yet, in one pass (one
  // compaction however many deletions): waits out stale training, purges
  // payloads, destroys every checkpoint that held them, then records the
  // stage. One pass at a time. `chunks_only`, when given, is set when the
  // pass failed only at destroying copies on workers, chunks or serving
  // copies (local data is gone). Errors: what failed first; the
  // deletions it held back carry it as their note.
  absl::Status PurgeUnfinished(bool* chunks_only = nullptr)
      ABSL_LOCKS_EXCLUDED(purge_mu_, *p_.engine_mu);

  // Starts the purge thread.
  void Start();
  // Starts the next pass now instead of after the failure back-off (up to
  // 30 s): something that held purges back is gone. Waits for nothing
  // else (it runs inside a worker's Register RPC).
  void RetryNow() ABSL_LOCKS_EXCLUDED(retry_mu_);
  // Stop in two steps, so the engine can stop its parts together: the
  // thread ends after its current pass or repair (RequestStop), then Join
  // waits for it. Both idempotent.
  void RequestStop() ABSL_LOCKS_EXCLUDED(*p_.engine_mu, retry_mu_);
  void Join();

  // For a model being deleted, once stopped: destroys every copy of it
  // outside its data dir, the workers' serving copies and cached slices and
  // every erasure-coded chunk. Unavailable while a worker holding chunks is
  // unreachable; other codes: storage failures reading manifests.
  absl::Status DestroyRemoteCopies();

 private:
  void PurgeLoop();
  // Re-places chunks whose holders died (CheckpointReplicas::Repair).
  void RepairChunks() ABSL_LOCKS_EXCLUDED(purge_mu_, *p_.engine_mu);
  // Returns once no position that read the data of `shards` as it was
  // before a change is in flight.
  void WaitForStaleTraining(const std::set<int>& shards)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(*p_.engine_mu);
  absl::Status DestroyCheckpoints(const std::vector<std::string>& keys);
  // Makes every live worker drop the checkpoints it holds for serving that
  // the model no longer serves (ShardServing::Sync).
  absl::Status SyncServingCopies();
  // Drops deleted samples from the engine's slice encodings, and the
  // slices workers cached for training that no longer hold the model's
  // samples as they are now. Takes the engine mutex.
  absl::Status DropCachedSlices() ABSL_LOCKS_EXCLUDED(*p_.engine_mu);

  const Parts p_;
  // One pass (or repair) at a time: the thread, Open, RunPendingRetrains.
  absl::Mutex purge_mu_ ABSL_ACQUIRED_BEFORE(*p_.engine_mu);
  bool stopping_ ABSL_GUARDED_BY(*p_.engine_mu) = false;
  // RetryNow, and the loop's back-off waits on it. A mutex of its own,
  // never held across anything else: RetryNow must not wait for the engine
  // mutex (held for shard loads).
  absl::Mutex retry_mu_;
  bool retry_now_ ABSL_GUARDED_BY(retry_mu_) = false;
  bool retry_stop_ ABSL_GUARDED_BY(retry_mu_) = false;  // with stopping_
  // Ends a repair pass early.
  std::atomic<bool> stop_requested_{false};
  std::thread thread_;
};

}  // namespace oubli::coordinator

#endif  // OUBLI_COORDINATOR_PURGER_H_
