// One model's durable deletion log: a DeletionRecord per deletion in the
// lineage DB (stages stamped as they are reached), the group commit that
// admits concurrent requests together, and reading the log back after a
// restart. Knows nothing of shards, serving or training: what a group
// commit does is the engine's (resolve, record, deactivate).
#ifndef OUBLI_COORDINATOR_DELETION_LOG_H_
#define OUBLI_COORDINATOR_DELETION_LOG_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "common/types.h"
#include "coordinator/deletion_ledger.h"
#include "coordinator/deletion_record.h"
#include "coordinator/engine_types.h"
#include "oubli/internal/deletion.pb.h"
#include "storage/lineage_store.h"

namespace oubli::coordinator {

// One deletion request waiting for its group commit.
struct DeleteRequest {
  std::vector<std::string> ids;        // distinct; empty for an owner
  std::vector<std::string> requested;  // as sent, for the receipt
  std::string owner;                   // ForgetOwner only
  bool by_owner = false;
  absl::Time arrived;  // entry into the engine (time to forget)
  // Set by the group's leader (DeletionQueue).
  std::optional<absl::StatusOr<DeletionReceipt>> result;
};

// Group commit in the manner of leveldb's writer queue: the request at the
// front commits every request queued behind it (up to a bound), so
// concurrent deletions share one fsync and one deactivation instead of
// queueing for each. Thread-safe.
class DeletionQueue {
 public:
  // Answers each request of a group, in group order. Runs for one group
  // at a time, in arrival order, without the queue's lock.
  using CommitGroup = std::function<std::vector<absl::StatusOr<DeletionReceipt>>(
      absl::Span<DeleteRequest* const> group)>;

  // Queues `request` and returns its answer once its group is committed.
  absl::StatusOr<DeletionReceipt> Submit(DeleteRequest* request,
                                         const CommitGroup& commit)
      ABSL_LOCKS_EXCLUDED(mu_);

 private:
  static constexpr size_t kMaxGroupRequests = 512;
  static constexpr size_t kMaxGroupIds = 100000;

  absl::Mutex mu_;
  // In arrival order; the front one leads the next group.
  std::deque<DeleteRequest*> queue_ ABSL_GUARDED_BY(mu_);
};

// One request of a group, resolved against the lineage store.
struct ResolvedRequest {
  const DeleteRequest* request = nullptr;
  // Requested, resolved, unknown and already-deleted ids; the deletion id
  // and affected shards when it deletes anything.
  internal::DeletionRecord record;
  // What it deletes, by slice, and the bytes those samples take there at
  // least (EncodedSampleMinBytes): how much smaller each slice gets.
  std::map<SliceRef, absl::flat_hash_set<std::string>> by_slice;
  std::map<SliceRef, int64_t> min_bytes;
  // Nothing new to delete: answered with the earlier deletions' stage.
  bool repeat = false;
  // ForgetOwner of an owner without active samples: answered with the
  // deletion that forgot the owner earlier, if any.
  bool owner_already_forgotten = false;
  // Set when the request is answered already (an error).
  std::optional<absl::StatusOr<DeletionReceipt>> result;
};

// Resolves a group in arrival order: active ids are deleted (a sample
// named twice goes to the first request), unknown and already-deleted ids
// are reported, not fatal. Each request that deletes something gets the
// next deletion id from `*next_seq`. `bounds`: the model's shard and slice
// counts. Per request: NotFound when none of its ids is known; DataLoss
// for a stored sample outside `bounds`; storage failures as its result.
std::vector<ResolvedRequest> ResolveGroup(
    storage::LineageStore& store, absl::Span<DeleteRequest* const> group,
    SliceRef bounds, int64_t* next_seq);

// The records of the log, read at open: those not yet RESTORED (a crash
// interrupted them) and the highest sequence number used.
struct RecoveredDeletions {
  std::vector<internal::DeletionRecord> unfinished;
  int64_t last_seq = 0;
};
// DataLoss: a corrupt record; other codes: storage failures.
absl::StatusOr<RecoveredDeletions> RecoverDeletions(
    storage::LineageStore& store);

// The stored record of `deletion_id`. NotFound: none; DataLoss: corrupt.
absl::StatusOr<internal::DeletionRecord> ReadDeletion(
    storage::LineageStore& store, absl::string_view deletion_id);

// The last stored deletion that forgot `owner` (deletions by id keep no
// owner); nullopt if none. Errors: storage failures; DataLoss: a stored
// record is corrupt (it might be the owner's).
absl::StatusOr<std::optional<internal::DeletionRecord>> FindOwnerDeletion(
    storage::LineageStore& store, absl::string_view owner);

// A page of deletions matching `query`, newest first. `current` gives a
// stored record as it stands now (a pending deletion's copy in memory is
// ahead of the stored one). At most kMaxScannedPerPage records are read per
// call: past that the page may be short, with next_below_id set. DataLoss:
// a corrupt record; other codes: storage failures.
inline constexpr int kMaxScannedPerPage = 10000;
absl::StatusOr<DeletionPage> ListDeletions(
    storage::LineageStore& store, const DeletionQuery& query,
    const std::function<internal::DeletionRecord(internal::DeletionRecord)>&
        current);

// Replaces the stored records of existing deletions, in one synced write
// that also appends the stages they reached to `ledger` (when not null).
// Internal: a record cannot be serialized; other codes: storage failures.
absl::Status WriteDeletions(storage::LineageStore& store,
                            DeletionLedger* ledger,
                            absl::Span<const internal::DeletionRecord> records);

}  // namespace oubli::coordinator

#endif  // OUBLI_COORDINATOR_DELETION_LOG_H_
