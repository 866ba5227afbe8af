#include "coordinator/deletion_record.h"

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"

namespace oubli::coordinator {
namespace {

using internal::DeletionRecord;

constexpr char kDeletionIdPrefix[] = "del-";

absl::Time FromUnixNanos(int64_t nanos) {
  return nanos == 0 ? absl::InfinitePast() : absl::FromUnixNanos(nanos);
}

}  // namespace

DeletionStage StageOf(const DeletionRecord& r) {
  return r.restored_unix_nanos() != 0    ? DeletionStage::kRestored
         : r.purged_unix_nanos() != 0    ? DeletionStage::kPurged
         : r.forgotten_unix_nanos() != 0 ? DeletionStage::kForgotten
                                         : DeletionStage::kAccepted;
}

DeletionReceipt ReceiptFromRecord(const DeletionRecord& r) {
  DeletionReceipt receipt;
  receipt.deletion_id = r.deletion_id();
  receipt.owner = r.owner();
  receipt.resolved_ids.assign(r.resolved_ids().begin(), r.resolved_ids().end());
  receipt.unknown_ids.assign(r.unknown_ids().begin(), r.unknown_ids().end());
  for (const auto& a : r.already_deleted()) {
    receipt.already_deleted.emplace_back(a.sample_id(), a.deletion_id());
  }
  receipt.affected_shards.assign(r.affected_shards().begin(),
                                 r.affected_shards().end());
  for (const auto& a : r.affected()) {
    receipt.affected.push_back({a.shard(), a.slice(), a.sequence(),
                                a.valid_length_before(),
                                a.valid_length_after()});
  }
  receipt.accepted_at = FromUnixNanos(r.accepted_unix_nanos());
  receipt.forgotten_at = FromUnixNanos(r.forgotten_unix_nanos());
  receipt.purged_at = FromUnixNanos(r.purged_unix_nanos());
  receipt.restored_at = FromUnixNanos(r.restored_unix_nanos());
  receipt.stage = StageOf(r);
  receipt.fingerprint_before = r.fingerprint_before();
  receipt.fingerprint_forgotten = r.fingerprint_forgotten();
  receipt.fingerprint_restored = r.fingerprint_restored();
  receipt.note = r.note();
  return receipt;
}

std::string DeletionIdFor(int64_t seq) {
  return absl::StrFormat("%s%012d", kDeletionIdPrefix, seq);
}

std::optional<int64_t> DeletionSeqOf(absl::string_view deletion_id) {
  if (!absl::ConsumePrefix(&deletion_id, kDeletionIdPrefix) ||
      deletion_id.empty()) {
    return std::nullopt;
  }
  // Digits only: SimpleAtoi alone also takes a sign and spaces.
  for (char c : deletion_id) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) {
      return std::nullopt;
    }
  }
  int64_t seq = 0;
  if (!absl::SimpleAtoi(deletion_id, &seq)) return std::nullopt;  // too long
  return seq;
}

absl::StatusOr<DeletionRecord> ParseDeletionRecord(
    absl::string_view deletion_id, absl::string_view bytes) {
  const auto corrupt = [&](absl::string_view why) {
    return absl::DataLossError(
        absl::StrCat("deletion record ", deletion_id, " is corrupt: ", why));
  };
  if (!DeletionSeqOf(deletion_id).has_value()) {
    return corrupt("its key is not a deletion id");
  }
  DeletionRecord record;
  if (!record.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return corrupt("not a DeletionRecord");
  }
  // Every record is written under its own id, once ACCEPTED.
  if (record.deletion_id() != deletion_id) {
    return corrupt("it names another deletion");
  }
  if (record.accepted_unix_nanos() == 0) {
    return corrupt("it has no ACCEPTED time");
  }
  return record;
}

}  // namespace oubli::coordinator
