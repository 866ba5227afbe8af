// A stored deletion record (internal::DeletionRecord, one per deletion in
// a model's lineage DB): its id, reading it back, and the receipt it
// stands for. Free of RocksDB, gRPC and torch, so reading back can be
// fuzzed (tests/fuzz).
#ifndef OUBLI_COORDINATOR_DELETION_RECORD_H_
#define OUBLI_COORDINATOR_DELETION_RECORD_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "coordinator/engine_types.h"
#include "oubli/internal/deletion.pb.h"

namespace oubli::coordinator {

// The stage a record has reached, from its timestamps.
DeletionStage StageOf(const internal::DeletionRecord& record);
DeletionReceipt ReceiptFromRecord(const internal::DeletionRecord& record);
// "del-" and the sequence number, zero-padded so ids sort by age.
std::string DeletionIdFor(int64_t seq);
// The sequence number of a deletion id ("del-" and decimal digits, padded
// or not); nullopt for anything else.
std::optional<int64_t> DeletionSeqOf(absl::string_view deletion_id);

// The record stored under key `deletion_id` with value `bytes`. DataLoss
// (corrupt) unless the key is a deletion id and the value a record of that
// id that was ACCEPTED.
absl::StatusOr<internal::DeletionRecord> ParseDeletionRecord(
    absl::string_view deletion_id, absl::string_view bytes);

}  // namespace oubli::coordinator

#endif  // OUBLI_COORDINATOR_DELETION_RECORD_H_
