// Durable lineage and sample store for one model, on RocksDB.
//
// Column families:
//   samples   id -> SampleRecord (owner, label, features, shard, slice, state)
//   owners    owner '\0' id -> ""            (active samples of an owner)
//   slices    be32(shard) be32(slice) id -> "" (active members of a slice)
//   deletions deletion id -> opaque bytes   (the deletion log; coordinator's)
//   meta      key -> value
//
// Every multi-key change is one WriteBatch. Deletion records are written
// with sync=true before RecordDeletion returns, so an acknowledged deletion
// survives a crash. Assignment (shard, slice) is computed by the caller.
#ifndef OUBLI_STORAGE_LINEAGE_STORE_H_
#define OUBLI_STORAGE_LINEAGE_STORE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/thread_priority.h"
#include "common/types.h"
#include "storage/sample_record.h"

namespace oubli::storage {

struct AssignedSample {
  Sample sample;
  SliceRef where;
};

struct IngestResult {
  int64_t accepted = 0;
  // Same id, same content already stored (ingest is idempotent by id).
  int64_t duplicates = 0;
  // id -> reason (e.g. same id with different content, id already deleted).
  std::vector<std::pair<std::string, std::string>> rejected;
};

class LineageStore {
 public:
  struct Options {
    std::string path;
    bool create_if_missing = true;
    // RocksDB's flush and compaction threads (a purge's compaction) run at
    // it; process-wide, see storage/rocksdb_background_env.h. The default
    // leaves them unchanged.
    BackgroundPriority background_priority = {};
  };

  // InvalidArgument: an empty path or a background nice_increment
  // outside 0..19;
  // other codes: RocksDB could not open or create the store.
  static absl::StatusOr<std::unique_ptr<LineageStore>> Open(
      const Options& options);
  ~LineageStore();
  LineageStore(const LineageStore&) = delete;
  LineageStore& operator=(const LineageStore&) = delete;

  // ---- meta
  absl::Status PutMeta(absl::string_view key, absl::string_view value);  // sync
  absl::StatusOr<std::optional<std::string>> GetMeta(absl::string_view key);
  absl::Status DeleteMeta(absl::string_view key);  // sync; absent is fine
  // Every (key, value) whose key starts with `prefix`, in key order.
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> ListMeta(
      absl::string_view prefix);
  // At most `limit` of them, from the first key >= `start` on.
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> ListMeta(
      absl::string_view prefix, absl::string_view start, size_t limit);
  // Several meta keys in one synced batch.
  using MetaPuts = std::vector<std::pair<std::string, std::string>>;
  absl::Status PutMetas(const MetaPuts& puts);

  // ---- samples
  // Validates each sample (ValidateSample); invalid ones are rejected with
  // the validation message, the rest are written in one WriteBatch.
  absl::StatusOr<IngestResult> Ingest(absl::Span<const AssignedSample> samples);
  absl::StatusOr<std::optional<SampleRecord>> GetSample(absl::string_view id);
  // Active samples (payload included) for the given ids, in the given order.
  // NotFound if any id is unknown, FailedPrecondition if any is not active.
  absl::StatusOr<std::vector<Sample>> ReadActiveSamples(
      absl::Span<const std::string> ids);
  // Sorted (bytewise) ids of the active samples of one slice.
  absl::StatusOr<std::vector<std::string>> SliceMembers(SliceRef slice);
  // Sorted ids of an owner's active samples.
  absl::StatusOr<std::vector<std::string>> OwnerSamples(
      absl::string_view owner);
  absl::StatusOr<int64_t> CountActiveSamples();

  // ---- deletion log
  // In one synced WriteBatch: stores `record` under `deletion_id`, flips each
  // listed sample (must be active) to kDeleted with that deletion id, and
  // removes it from the owner and slice indexes.
  absl::Status RecordDeletion(absl::string_view deletion_id,
                              absl::string_view record,
                              absl::Span<const std::string> sample_ids);
  // Group commit: several deletions in one synced WriteBatch (one fsync),
  // all or none. The deletions must not share samples.
  struct NewDeletion {
    std::string deletion_id;
    std::string record;
    std::vector<std::string> sample_ids;
  };
  // `meta`: meta keys written in the same batch (the deletion ledger).
  absl::Status RecordDeletions(absl::Span<const NewDeletion> deletions,
                               const MetaPuts& meta = {});
  // Overwrites a deletion record (synced).
  absl::Status UpdateDeletion(absl::string_view deletion_id,
                              absl::string_view record);
  // Overwrites several deletion records in one synced batch; each must
  // exist. Pairs of (deletion id, record).
  absl::Status UpdateDeletions(
      absl::Span<const std::pair<std::string, std::string>> records,
      const MetaPuts& meta = {});
  absl::StatusOr<std::optional<std::string>> GetDeletion(
      absl::string_view deletion_id);
  // Calls fn(id, record) for every deletion in id order.
  absl::Status ForEachDeletion(
      const std::function<void(absl::string_view, absl::string_view)>& fn);
  // Calls fn(id, record) for the deletions with ids below `before` (all when
  // empty), highest id first, until fn returns false.
  absl::Status ForEachDeletionBackward(
      absl::string_view before,
      const std::function<bool(absl::string_view, absl::string_view)>& fn);

  // Physically removes the payload and owner of deleted samples: rewrites
  // each to a kPurged tombstone, flushes memtables and WAL, then compacts the
  // affected key range to the bottommost level so no SST, WAL or MANIFEST
  // under the DB directory still holds the payload bytes. Ids already purged
  // are skipped; active ids are a FailedPrecondition.
  absl::Status Purge(absl::Span<const std::string> sample_ids);

  // Total size of the DB files (SST + WAL + MANIFEST etc.), bytes.
  absl::StatusOr<int64_t> DiskBytes();
  const std::string& path() const;

 private:
  struct Impl;
  explicit LineageStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace oubli::storage

#endif  // OUBLI_STORAGE_LINEAGE_STORE_H_
