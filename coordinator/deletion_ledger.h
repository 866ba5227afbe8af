// A model's deletion ledger (proto/oubli/v1/ledger.proto): every stage
// every deletion durably reached, as a hash chain of entries each signed
// with the coordinator's Ed25519 key, written in the same RocksDB batch as
// the deletion records it vouches for. The format and the auditor's check
// are coordinator/ledger_format.h.
#ifndef OUBLI_COORDINATOR_DELETION_LEDGER_H_
#define OUBLI_COORDINATOR_DELETION_LEDGER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "common/signing_key.h"
#include "coordinator/ledger_format.h"
#include "oubli/internal/deletion.pb.h"
#include "storage/lineage_store.h"

namespace oubli::coordinator {

class DeletionLedger {
 public:
  // Reads the ledger's head from `store` and ledgers every stage the
  // stored deletion records reached that it lacks (deletions recorded
  // before this model had a ledger). `store` and `key` must outlive it.
  // FailedPrecondition: the ledger's entries are signed by another key
  // (the key file was replaced); DataLoss: a corrupt head, last entry or
  // record; other codes: storage failures.
  static absl::StatusOr<std::unique_ptr<DeletionLedger>> Open(
      storage::LineageStore* store, std::string model_id,
      const SigningKey* key);

  // Writes the deletion records `records` describe: `write` must put the
  // given ledger keys in the same batch as the records. The entries are
  // those of every stage the records reached that the ledger does not
  // hold yet, chained after the head, which advances only when `write`
  // succeeds. Appends are serialized, so the chain's order is the order
  // of the writes. Returns `write`'s status, or a storage failure reading
  // which stages are ledgered already.
  using Write =
      std::function<absl::Status(const storage::LineageStore::MetaPuts&)>;
  absl::Status Append(absl::Span<const internal::DeletionRecord> records,
                      const Write& write) ABSL_LOCKS_EXCLUDED(mu_);

  // Serialized LedgerRecords from `from_sequence` (>= 1) on, at most
  // `limit`. Storage failures.
  absl::StatusOr<std::vector<std::string>> Read(int64_t from_sequence,
                                                size_t limit) const;
  int64_t head_sequence() const ABSL_LOCKS_EXCLUDED(mu_);
  const SigningKey& key() const { return *key_; }

 private:
  DeletionLedger(storage::LineageStore* store, std::string model_id,
                 const SigningKey* key)
      : store_(store), model_id_(std::move(model_id)), key_(key) {}

  storage::LineageStore* const store_;
  const std::string model_id_;
  const SigningKey* const key_;
  mutable absl::Mutex mu_;
  int64_t head_sequence_ ABSL_GUARDED_BY(mu_) = 0;
  std::string head_hash_ ABSL_GUARDED_BY(mu_);  // 32 bytes
};

// The digests a ledger entry commits to (see ledger.proto).
std::string RequestDigest(absl::string_view model_id,
                          const internal::DeletionRecord& record);
std::string ResolvedIdsDigest(absl::string_view model_id,
                              const internal::DeletionRecord& record);

}  // namespace oubli::coordinator

#endif  // OUBLI_COORDINATOR_DELETION_LEDGER_H_
