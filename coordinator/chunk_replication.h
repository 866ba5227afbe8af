// Erasure-coded copies of one model's checkpoints on workers: which
// checkpoints have chunks (manifests in the model's lineage DB), coding a
// new checkpoint, rebuilding a lost one, re-placing chunks of dead holders,
// and destroying the chunks of checkpoints that hold deleted data. Where
// the chunks go is the CheckpointReplicas' (coordinator/worker_chunks) choice.
//
// Knows nothing of deletions or serving: the engine says which checkpoint
// keys are current and which to forget. Thread-safe; work on one key is
// serialized (a training thread and a repair pass coding the same key at
// once would each place chunks, and the manifest kept would name only one
// set), different keys proceed in parallel.
#ifndef OUBLI_COORDINATOR_CHUNK_REPLICATION_H_
#define OUBLI_COORDINATOR_CHUNK_REPLICATION_H_

#include <atomic>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "common/config.h"
#include "coordinator/metrics.h"
#include "coordinator/remote_training.h"
#include "storage/lineage_store.h"

namespace oubli::coordinator {

// Where one checkpoint's erasure-coded chunks live (its manifest).
struct ChunkPlacement {
  int data_chunks = 0;               // k
  int parity_chunks = 0;             // m
  std::vector<std::string> holders;  // worker name per chunk
};

class ChunkReplication {
 public:
  // (checkpoint key, serialized internal::ChunkManifest)
  using KeyedManifest = std::pair<std::string, std::string>;

  // `replicas` null: the model keeps no copies, and every call is a no-op
  // (nothing listed, nothing restorable). `store` and `metrics` (nullable)
  // outlive this.
  ChunkReplication(std::string model_id, CheckpointReplicas* replicas,
                   storage::LineageStore* store, EngineMetrics* metrics);

  bool enabled() const { return replicas_ != nullptr; }

  // The manifests whose checkpoint key is in `current` (`want_current`) or
  // not (garbage: trained on data that is gone or changed). Errors: storage
  // failures.
  absl::StatusOr<std::vector<KeyedManifest>> Manifests(
      const absl::flat_hash_set<std::string>& current, bool want_current);

  // Codes a new checkpoint onto workers and stores its manifest. Best
  // effort: a checkpoint without copies is retrained if lost, and a
  // RepairPass codes it once enough holders are alive.
  void Protect(const std::string& key, absl::string_view bytes,
               const ErasureCodeConfig& code);

  // The checkpoint rebuilt from its chunks (same key, same bytes, checked
  // against the manifest); nullopt when it has none. DataLoss: fewer than
  // k good chunks; other codes: storage failures.
  absl::StatusOr<std::optional<std::string>> Restore(const std::string& key);

  // The checkpoint keys with chunks that are not in `current` (garbage:
  // trained on data that is gone or changed). Errors: storage failures.
  absl::StatusOr<std::vector<std::string>> GarbageKeys(
      const absl::flat_hash_set<std::string>& current);

  // Destroys the chunks of the checkpoints `keys` and drops their
  // manifests, each as stored once the key's other work has finished (a
  // Protect still placing chunks, a repair moving them); the keys whose
  // chunks could not all be destroyed go into `left` (if given).
  // Unavailable while a holder is unreachable.
  absl::Status Forget(const std::vector<std::string>& keys,
                      absl::flat_hash_set<std::string>* left = nullptr);

  // One bounded pass of upkeep: codes a few of `uncoded` (current
  // checkpoints without chunks, read with `read`), then re-places the
  // chunks of dead holders of `current_manifests` for up to two seconds.
  // Resumes where the last pass stopped, so a failing key cannot starve
  // the others; returns early once `stop` is set.
  void RepairPass(
      const std::vector<KeyedManifest>& current_manifests,
      std::vector<std::string> uncoded,
      const std::function<absl::StatusOr<std::string>(const std::string&)>&
          read,
      const ErasureCodeConfig& code, const std::atomic<bool>& stop);
  // Whether enough holders are alive to code with `code`.
  bool CanProtect(const ErasureCodeConfig& code);

  // Whether any manifest, current or garbage, names `holder` (as a holder,
  // or as one whose chunk awaits destruction). Errors: storage failures.
  absl::StatusOr<bool> NamesHolder(absl::string_view holder);
  // Placements of the checkpoints in `current`. Errors: storage failures.
  absl::StatusOr<std::vector<ChunkPlacement>> Placements(
      const absl::flat_hash_set<std::string>& current);

 private:
  // Holds one key's work exclusive while in scope.
  class KeyLock {
   public:
    KeyLock(ChunkReplication* owner, const std::string& key);
    ~KeyLock();
    KeyLock(const KeyLock&) = delete;
    KeyLock& operator=(const KeyLock&) = delete;

   private:
    ChunkReplication* const owner_;
    const std::string key_;
  };

  // Destroys the key's chunks named in `manifest` and drops the manifest.
  // The caller holds the key's KeyLock.
  absl::Status ForgetLocked(const std::string& key,
                            const std::string& manifest);

  // Chunks are named per model: two models with the same config and data
  // share checkpoint keys, not chunks.
  std::string ChunkKey(const std::string& key) const;

  const std::string model_id_;
  CheckpointReplicas* const replicas_;
  storage::LineageStore* const store_;
  EngineMetrics* const metrics_;

  absl::Mutex keys_mu_;
  absl::flat_hash_set<std::string> busy_keys_ ABSL_GUARDED_BY(keys_mu_);
  // Where RepairPass resumes coding and repairing; one pass at a time.
  absl::Mutex repair_mu_;
  size_t coding_cursor_ ABSL_GUARDED_BY(repair_mu_) = 0;
  size_t repair_cursor_ ABSL_GUARDED_BY(repair_mu_) = 0;
};

}  // namespace oubli::coordinator

#endif  // OUBLI_COORDINATOR_CHUNK_REPLICATION_H_
