// The deletions the engine still tracks: FORGOTTEN (or recovered at open)
// and not yet RESTORED. Each has its live record, ahead of the stored one
// (stages are stamped here first), the shards it cut and the shard
// generation it left each at. RestoreProgress says when each may be called
// RESTORED.
//
// PendingDeletions is plain data with no lock of its own: the engine holds
// its mutex around every call (its field is ABSL_GUARDED_BY it), and does
// no I/O under it. RestoredRecorder writes RESTORED records; it takes the
// engine mutex itself.
#ifndef OUBLI_COORDINATOR_PENDING_DELETIONS_H_
#define OUBLI_COORDINATOR_PENDING_DELETIONS_H_

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "coordinator/deletion_ledger.h"
#include "coordinator/engine_types.h"
#include "coordinator/metrics.h"
#include "coordinator/restore_progress.h"
#include "coordinator/shard_table.h"
#include "oubli/internal/deletion.pb.h"
#include "storage/lineage_store.h"

namespace oubli::coordinator {

struct PendingDeletion {
  internal::DeletionRecord record;
  std::set<int> shards;
  // Per shard, its generation once this deletion was applied there (absent:
  // 0, the generation at Open, whose slices come from the store and so
  // already exclude every accepted deletion). The deletion is RESTORED once
  // every sequence of each of its shards has been stored whole at that
  // generation or later.
  std::map<int, uint64_t> applied_at;
  // Its RESTORED record is being written (TakeRestored, FinishRestored).
  bool restoring = false;
};

class PendingDeletions {
 public:
  // `slices`: a sequence is whole at that length. `metrics` may be null.
  PendingDeletions(int shards, int sequences, int slices,
                   EngineMetrics* metrics);

  // Tracks `record` (from FORGOTTEN, or as recovered at open) with the
  // shards it cut; the caller fills in applied_at.
  PendingDeletion& Track(internal::DeletionRecord record);
  // The live record; nullptr once it is RESTORED (or never was pending).
  const internal::DeletionRecord* Find(absl::string_view deletion_id) const;
  int size() const { return static_cast<int>(pending_.size()); }
  // In ACCEPTED order (stable on ties): how Open replays them.
  std::vector<const PendingDeletion*> ByAcceptance() const;
  // The counts and the oldest ACCEPTED time of ModelStatus.
  void Summarize(ModelStatus* status) const;

  // ---- PURGED
  bool HasUnpurged() const;
  struct Unpurged {
    std::vector<internal::DeletionRecord> records;
    std::vector<std::set<int>> shards_of;  // per record
    std::set<int> affected;                // every shard of any
  };
  Unpurged ListUnpurged() const;
  // Notes on the live record why its purge is retried (no-op once gone).
  void SetNote(const std::string& deletion_id, std::string note);
  // `records` were stored PURGED at `purged_at`: so are their live copies.
  void MarkPurged(absl::Span<const internal::DeletionRecord> records,
                  int64_t purged_at);

  // ---- RESTORED
  // Retraining was requested (Engine::Train): from now on a deletion is
  // RESTORED once retrained; before, nothing was served, so it is RESTORED
  // once PURGED.
  void set_training_requested(bool requested) {
    training_requested_ = requested;
  }
  // Records the sequences of `state` (shard `shard`, at `generation`) that
  // are whole now; returns whether that was news for any of them.
  bool NoteWhole(int shard, const ShardState& state, uint64_t generation);
  // RESTORED in two steps, so the synced write happens without the engine
  // mutex: TakeRestored stamps copies of the records of every deletion that
  // has reached it (PURGED, and restored in every shard it was applied to:
  // see RestoreProgress), with `fingerprint` as the model restored, and
  // marks them `restoring` (no other thread takes them); FinishRestored
  // stops tracking them once written (`written` ok). On a failed write they
  // stay pending, to be taken again at the next completion.
  std::vector<internal::DeletionRecord> TakeRestored(
      const std::string& fingerprint);
  void FinishRestored(absl::Span<const internal::DeletionRecord> records,
                      const absl::Status& written);

 private:
  const int slices_;
  EngineMetrics* const metrics_;
  std::map<std::string, PendingDeletion, std::less<>> pending_;
  // Which sequences were whole at which generation (NoteWhole), so
  // TakeRestored knows which deletions are RESTORED.
  RestoreProgress restore_progress_;
  bool training_requested_ = false;
};

// Writes what PendingDeletions::TakeRestored took, in one synced batch
// without the engine mutex, then finishes it there under the mutex.
// Thread-safe; call it without the engine mutex.
class RestoredRecorder {
 public:
  // Every pointer outlives the recorder; `ledger` may be null.
  RestoredRecorder(absl::Mutex& engine_mu, PendingDeletions* pending,
                   storage::LineageStore* store, DeletionLedger* ledger)
      : mu_(engine_mu), pending_(pending), store_(store), ledger_(ledger) {}

  void Record(std::vector<internal::DeletionRecord> records)
      ABSL_LOCKS_EXCLUDED(mu_);

 private:
  absl::Mutex& mu_;  // the engine's
  PendingDeletions* const pending_ ABSL_PT_GUARDED_BY(mu_);
  storage::LineageStore* const store_;
  DeletionLedger* const ledger_;
};

}  // namespace oubli::coordinator

#endif  // OUBLI_COORDINATOR_PENDING_DELETIONS_H_
