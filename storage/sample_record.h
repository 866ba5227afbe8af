// A stored sample's record in the lineage store (samples column family):
// the sample, where it lives and its deletion state, as protobuf bytes
// (internal.SampleRecord). Its own file so the decoder of stored bytes can
// be fuzzed without RocksDB.
#ifndef OUBLI_STORAGE_SAMPLE_RECORD_H_
#define OUBLI_STORAGE_SAMPLE_RECORD_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/types.h"

namespace oubli::storage {

enum class SampleState : uint8_t {
  kActive = 0,
  // Deactivated by a deletion: excluded from every slice and owner index,
  // payload still on disk until Purge.
  kDeleted = 1,
  // Payload and indexes physically removed; only this tombstone remains
  // (id, shard, slice, deletion id) so repeated deletes stay idempotent.
  kPurged = 2,
};

struct SampleRecord {
  Sample sample;  // owner/features are empty once purged
  SliceRef where;
  SampleState state = SampleState::kActive;
  std::string deletion_id;  // set once deleted
};

std::string EncodeSampleRecord(const SampleRecord& record);

// The record of sample `id` stored as `bytes`. DataLoss naming the id: the
// bytes do not parse, or name an unknown feature type or state, or a
// negative shard or slice. Other fields are taken as stored: the caller
// checks them against the model (ValidateSample, the sharding plan).
absl::StatusOr<SampleRecord> DecodeSampleRecord(absl::string_view id,
                                                absl::string_view bytes);

}  // namespace oubli::storage

#endif  // OUBLI_STORAGE_SAMPLE_RECORD_H_
