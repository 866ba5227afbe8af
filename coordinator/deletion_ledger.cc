#include "coordinator/deletion_ledger.h"

#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/hash.h"
#include "common/status_macros.h"
#include "oubli/v1/ledger.pb.h"

namespace oubli::coordinator {
namespace {

using internal::DeletionRecord;

constexpr char kEntryPrefix[] = "ledger/entry/";
constexpr char kStagesPrefix[] = "ledger/stages/";
constexpr char kHeadKey[] = "ledger/head";
constexpr int kStages = 4;  // ACCEPTED .. RESTORED

std::string EntryKey(int64_t sequence) {
  return absl::StrFormat("%s%020d", kEntryPrefix, sequence);
}

// Stage s (1..4): when the record reached it (0: not yet) and the
// fingerprint it is about.
int64_t StageTime(const DeletionRecord& record, int stage) {
  switch (stage) {
    case 1:
      return record.accepted_unix_nanos();
    case 2:
      return record.forgotten_unix_nanos();
    case 3:
      return record.purged_unix_nanos();
    default:
      return record.restored_unix_nanos();
  }
}

const std::string& StageFingerprint(const DeletionRecord& record, int stage) {
  switch (stage) {
    case 1:
      return record.fingerprint_before();
    case 2:
    case 3:
      return record.fingerprint_forgotten();
    default:
      return record.fingerprint_restored();
  }
}

}  // namespace

std::string RequestDigest(absl::string_view model_id,
                          const DeletionRecord& record) {
  Sha256 hash;
  hash.AddField("oubli-request-v1")
      .AddField(model_id)
      .AddField(record.deletion_id());
  if (!record.owner().empty()) {
    hash.AddField("owner").AddField(record.owner());
  } else {
    hash.AddField("ids");
    for (const std::string& id : record.requested_ids()) hash.AddField(id);
  }
  Sha256Digest digest = hash.Finish();
  return std::string(reinterpret_cast<const char*>(digest.data()),
                     digest.size());
}

std::string ResolvedIdsDigest(absl::string_view model_id,
                              const DeletionRecord& record) {
  std::vector<std::string> ids(record.resolved_ids().begin(),
                               record.resolved_ids().end());
  std::sort(ids.begin(), ids.end());
  Sha256 hash;
  hash.AddField("oubli-ids-v1")
      .AddField(model_id)
      .AddField(record.deletion_id());
  for (const std::string& id : ids) hash.AddField(id);
  Sha256Digest digest = hash.Finish();
  return std::string(reinterpret_cast<const char*>(digest.data()),
                     digest.size());
}

absl::StatusOr<std::unique_ptr<DeletionLedger>> DeletionLedger::Open(
    storage::LineageStore* store, std::string model_id, const SigningKey* key) {
  std::unique_ptr<DeletionLedger> ledger(
      new DeletionLedger(store, std::move(model_id), key));
  OUBLI_ASSIGN_OR_RETURN(std::optional<std::string> head,
                         store->GetMeta(kHeadKey));
  {
    absl::MutexLock lock(&ledger->mu_);
    ledger->head_hash_.assign(32, '\0');
    if (head.has_value()) {
      v1::LedgerHead parsed;
      if (!parsed.ParseFromString(*head) || parsed.hash().size() != 32 ||
          parsed.sequence() < 1) {
        return absl::DataLossError(
            absl::StrCat("model '", ledger->model_id_,
                         "': the deletion ledger's head is "
                         "corrupt"));
      }
      ledger->head_sequence_ = parsed.sequence();
      ledger->head_hash_ = parsed.hash();
    }
  }
  if (head.has_value()) {
    // Appending under another key would break every audit from the first
    // new entry on: refuse instead (the key file was replaced or lost).
    OUBLI_ASSIGN_OR_RETURN(std::vector<std::string> last,
                           ledger->Read(ledger->head_sequence(), 1));
    v1::LedgerRecord record;
    v1::LedgerEntry entry;
    if (last.size() != 1 || !record.ParseFromString(last[0]) ||
        !entry.ParseFromString(record.entry())) {
      return absl::DataLossError(absl::StrCat(
          "model '", ledger->model_id_,
          "': the deletion ledger's last entry is missing or corrupt"));
    }
    if (entry.key_id() != key->key_id()) {
      return absl::FailedPreconditionError(
          absl::StrCat("model '", ledger->model_id_,
                       "': its deletion ledger is signed by "
                       "key ",
                       entry.key_id(), " but this coordinator's ledger key is ",
                       key->key_id(),
                       "; restore the original key file (the ledger key "
                       "must move with the data dir)"));
    }
  }
  // Deletions recorded before this model had a ledger.
  std::vector<DeletionRecord> records;
  absl::Status corrupt;
  OUBLI_RETURN_IF_ERROR(store->ForEachDeletion([&](absl::string_view id,
                                                   absl::string_view bytes) {
    DeletionRecord record;
    if (!record.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
      if (corrupt.ok()) {
        corrupt = absl::DataLossError(
            absl::StrCat("deletion record ", id, " is corrupt"));
      }
      return;
    }
    records.push_back(std::move(record));
  }));
  OUBLI_RETURN_IF_ERROR(corrupt);
  OUBLI_RETURN_IF_ERROR(ledger->Append(
      records, [store](const storage::LineageStore::MetaPuts& puts) {
        return store->PutMetas(puts);
      }));
  return ledger;
}

absl::Status DeletionLedger::Append(absl::Span<const DeletionRecord> records,
                                    const Write& write) {
  absl::MutexLock lock(&mu_);
  storage::LineageStore::MetaPuts puts;
  int64_t sequence = head_sequence_;
  std::string hash = head_hash_;
  // Stage masks as this append leaves them (a deletion named twice in one
  // call is ledgered once).
  absl::flat_hash_map<std::string, uint8_t> masks;
  for (const DeletionRecord& record : records) {
    const std::string stages_key =
        absl::StrCat(kStagesPrefix, record.deletion_id());
    auto known = masks.find(record.deletion_id());
    uint8_t mask = 0;
    if (known != masks.end()) {
      mask = known->second;
    } else {
      OUBLI_ASSIGN_OR_RETURN(std::optional<std::string> ledgered,
                             store_->GetMeta(stages_key));
      mask = ledgered.has_value() && !ledgered->empty()
                 ? static_cast<uint8_t>((*ledgered)[0])
                 : 0;
    }
    const uint8_t before = mask;
    std::string request_digest;
    std::string ids_digest;
    for (int stage = 1; stage <= kStages; ++stage) {
      if (StageTime(record, stage) == 0 || (mask & (1u << stage)) != 0) {
        continue;
      }
      if (request_digest.empty()) {
        request_digest = RequestDigest(model_id_, record);
        ids_digest = ResolvedIdsDigest(model_id_, record);
      }
      v1::LedgerEntry entry;
      entry.set_model_id(model_id_);
      entry.set_sequence(++sequence);
      entry.set_previous_hash(hash);
      entry.set_deletion_id(record.deletion_id());
      entry.set_stage(stage);
      entry.set_stage_unix_nanos(StageTime(record, stage));
      entry.set_request_digest(request_digest);
      entry.set_resolved_ids_digest(ids_digest);
      entry.set_resolved_count(record.resolved_ids_size());
      entry.set_fingerprint(StageFingerprint(record, stage));
      entry.set_key_id(key_->key_id());
      v1::LedgerRecord signed_entry;
      if (!entry.SerializeToString(signed_entry.mutable_entry())) {
        return absl::InternalError("cannot serialize a ledger entry");
      }
      signed_entry.set_signature(
          key_->Sign(LedgerSignedMessage(signed_entry.entry())));
      hash = LedgerEntryHash(signed_entry.entry());
      puts.emplace_back(EntryKey(sequence), signed_entry.SerializeAsString());
      mask |= static_cast<uint8_t>(1u << stage);
    }
    masks[record.deletion_id()] = mask;
    if (mask != before) {
      puts.emplace_back(stages_key, std::string(1, static_cast<char>(mask)));
    }
  }
  if (sequence != head_sequence_) {
    v1::LedgerHead head;
    head.set_sequence(sequence);
    head.set_hash(hash);
    puts.emplace_back(kHeadKey, head.SerializeAsString());
  }
  OUBLI_RETURN_IF_ERROR(write(puts));
  head_sequence_ = sequence;
  head_hash_ = std::move(hash);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> DeletionLedger::Read(
    int64_t from_sequence, size_t limit) const {
  OUBLI_ASSIGN_OR_RETURN(
      auto entries,
      store_->ListMeta(kEntryPrefix,
                       EntryKey(std::max<int64_t>(1, from_sequence)), limit));
  std::vector<std::string> out;
  out.reserve(entries.size());
  for (auto& [key, value] : entries) out.push_back(std::move(value));
  return out;
}

int64_t DeletionLedger::head_sequence() const {
  absl::MutexLock lock(&mu_);
  return head_sequence_;
}

}  // namespace oubli::coordinator
