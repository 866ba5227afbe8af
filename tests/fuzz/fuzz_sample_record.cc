// A stored sample record as the lineage store reads it back (GetSample,
// ReadActiveSamples): the input is the sample id it is stored under, a
// zero byte, then the stored value.
#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"
#include "google/protobuf/stubs/logging.h"
#include "storage/sample_record.h"

// Invalid UTF-8 in a string field is a parse failure, which protobuf also
// logs: quiet, or logging is most of each run.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t zero = input.find('\0');
  if (zero == absl::string_view::npos) return 0;
  const absl::string_view id = input.substr(0, zero);
  using oubli::storage::DecodeSampleRecord;
  using oubli::storage::EncodeSampleRecord;
  using oubli::storage::SampleRecord;
  auto record = DecodeSampleRecord(id, input.substr(zero + 1));
  if (!record.ok()) return 0;
  // What the engine relies on: the record is of the id it is stored
  // under, and its place is never negative (slices are indexed by it).
  if (record->sample.id != id || record->where.shard < 0 ||
      record->where.slice < 0) {
    __builtin_trap();
  }
  // Rewriting a record (a deletion rewrites it as a tombstone) keeps every
  // field.
  auto again = DecodeSampleRecord(id, EncodeSampleRecord(*record));
  if (!again.ok()) __builtin_trap();
  const SampleRecord& a = *record;
  const SampleRecord& b = *again;
  if (a.sample.owner != b.sample.owner || a.sample.label != b.sample.label ||
      a.sample.feature_type != b.sample.feature_type ||
      a.sample.features != b.sample.features ||
      a.sample.prompt_tokens != b.sample.prompt_tokens ||
      a.where.shard != b.where.shard || a.where.slice != b.where.slice ||
      a.state != b.state || a.deletion_id != b.deletion_id) {
    __builtin_trap();
  }
  return 0;
}
