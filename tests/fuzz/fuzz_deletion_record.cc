// A stored deletion record as the coordinator reads its deletion log back
// (RecoverDeletions, ReadDeletion, ListDeletions): the input is the key
// it is stored under, a zero byte, then the stored value.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/algorithm/container.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "coordinator/deletion_record.h"
#include "google/protobuf/stubs/logging.h"
#include "oubli/internal/deletion.pb.h"

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
  const absl::string_view key = input.substr(0, zero);
  const absl::string_view bytes = input.substr(zero + 1);
  auto record = oubli::coordinator::ParseDeletionRecord(key, bytes);
  if (!record.ok()) return 0;
  // RecoverDeletions takes the sequence number of every record it reads.
  const std::optional<int64_t> seq = oubli::coordinator::DeletionSeqOf(key);
  // An accepted record is the one its key names, and the key is an id as
  // the coordinator makes them: "del-" and the decimal sequence number
  // (zero-padded or not).
  absl::string_view digits = key;
  if (record->deletion_id() != key || !seq.has_value() || *seq < 0 ||
      !absl::ConsumePrefix(&digits, "del-") || digits.empty() ||
      !absl::c_all_of(digits, absl::ascii_isdigit)) {
    __builtin_trap();
  }
  while (digits.size() > 1 && digits.front() == '0') digits.remove_prefix(1);
  if (absl::StrCat(*seq) != digits) __builtin_trap();
  // Its receipt is at the stage its times say, and has reached ACCEPTED.
  const oubli::coordinator::DeletionReceipt receipt =
      oubli::coordinator::ReceiptFromRecord(*record);
  const absl::Time reached[] = {receipt.accepted_at, receipt.forgotten_at,
                                receipt.purged_at, receipt.restored_at};
  if (receipt.stage != oubli::coordinator::StageOf(*record) ||
      receipt.accepted_at == absl::InfinitePast() ||
      reached[static_cast<int>(receipt.stage)] == absl::InfinitePast()) {
    __builtin_trap();
  }
  // Round trip: written back (WriteDeletions), it reads the same.
  const std::string again = record->SerializeAsString();
  auto reread = oubli::coordinator::ParseDeletionRecord(key, again);
  if (!reread.ok() || reread->SerializeAsString() != again) __builtin_trap();
  return 0;
}
