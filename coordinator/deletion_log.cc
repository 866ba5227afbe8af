#include "coordinator/deletion_log.h"

#include <algorithm>
#include <set>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "coordinator/slice_data.h"

namespace oubli::coordinator {

using internal::DeletionRecord;

absl::StatusOr<DeletionReceipt> DeletionQueue::Submit(
    DeleteRequest* request, const CommitGroup& commit) {
  mu_.Lock();
  queue_.push_back(request);
  auto leads_or_done = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return request->result.has_value() || queue_.front() == request;
  };
  mu_.Await(absl::Condition(&leads_or_done));
  if (!request->result.has_value()) {
    std::vector<DeleteRequest*> group;
    size_t ids = 0;
    for (DeleteRequest* queued : queue_) {
      if (!group.empty() && (group.size() >= kMaxGroupRequests ||
                             ids + queued->ids.size() > kMaxGroupIds)) {
        break;
      }
      group.push_back(queued);
      ids += queued->ids.size();
    }
    mu_.Unlock();
    std::vector<absl::StatusOr<DeletionReceipt>> results = commit(group);
    mu_.Lock();
    // Results are published under mu_, which followers wait on; the next
    // front leads.
    for (size_t i = 0; i < group.size(); ++i) {
      group[i]->result = std::move(results[i]);
      queue_.pop_front();
    }
  }
  absl::StatusOr<DeletionReceipt> result = *std::move(request->result);
  mu_.Unlock();
  return result;
}

std::vector<ResolvedRequest> ResolveGroup(
    storage::LineageStore& store, absl::Span<DeleteRequest* const> group,
    SliceRef bounds, int64_t* next_seq) {
  std::vector<ResolvedRequest> work;
  work.reserve(group.size());
  // Samples taken by an earlier request of this group -> its deletion id.
  absl::flat_hash_map<std::string, std::string> claimed;
  int64_t& seq = *next_seq;

  for (const DeleteRequest* request : group) {
    ResolvedRequest& w = work.emplace_back();
    w.request = request;
    DeletionRecord& record = w.record;
    record.set_owner(request->owner);
    for (const std::string& id : request->requested) {
      record.add_requested_ids(id);
    }
    std::vector<std::string> ids = request->ids;
    if (request->by_owner) {
      absl::StatusOr<std::vector<std::string>> owned =
          store.OwnerSamples(request->owner);
      if (!owned.ok()) {
        w.result = owned.status();
        continue;
      }
      if (owned->empty()) {
        w.owner_already_forgotten = true;
        continue;
      }
      ids = *std::move(owned);
    }
    std::vector<std::pair<std::string, SliceRef>> resolved;
    absl::Status lookup;
    for (const std::string& id : ids) {
      if (auto it = claimed.find(id); it != claimed.end()) {
        auto* already = record.add_already_deleted();
        already->set_sample_id(id);
        already->set_deletion_id(it->second);
        continue;
      }
      absl::StatusOr<std::optional<storage::SampleRecord>> sample =
          store.GetSample(id);
      if (!sample.ok()) {
        lookup = sample.status();
        break;
      }
      if (sample->has_value() &&
          ((*sample)->where.shard >= bounds.shard ||
           (*sample)->where.slice >= bounds.slice)) {
        // Only corruption can put a sample outside the plan; deleting it
        // would index shards that do not exist.
        lookup = absl::DataLossError(absl::StrCat(
            "stored sample '", id, "' names shard ", (*sample)->where.shard,
            " slice ", (*sample)->where.slice, ", outside this model's ",
            bounds.shard, " shards x ", bounds.slice,
            " slices: the lineage store is corrupt"));
        break;
      }
      if (!sample->has_value()) {
        record.add_unknown_ids(id);
      } else if ((*sample)->state != storage::SampleState::kActive) {
        auto* already = record.add_already_deleted();
        already->set_sample_id(id);
        already->set_deletion_id((*sample)->deletion_id);
      } else {
        resolved.emplace_back(id, (*sample)->where);
        record.add_resolved_ids(id);
        w.min_bytes[(*sample)->where] +=
            EncodedSampleMinBytes((*sample)->sample);
      }
    }
    if (!lookup.ok()) {
      w.result = lookup;
      continue;
    }
    if (resolved.empty()) {
      if (record.already_deleted_size() == 0) {
        w.result = absl::NotFoundError(absl::StrCat(
            "none of the ", ids.size(), " sample ids is known: ",
            absl::StrJoin(ids.begin(),
                          ids.begin() + std::min<size_t>(ids.size(), 5), ", "),
            ids.size() > 5 ? ", ..." : ""));
      } else {
        w.repeat = true;  // answered once the group is committed
      }
      continue;
    }
    record.set_deletion_id(DeletionIdFor(seq++));
    std::set<int> shards;
    for (const auto& [id, where] : resolved) {
      claimed[id] = record.deletion_id();
      w.by_slice[where].insert(id);
      shards.insert(where.shard);
    }
    for (int s : shards) record.add_affected_shards(s);
  }

  return work;
}

absl::StatusOr<RecoveredDeletions> RecoverDeletions(
    storage::LineageStore& store) {
  RecoveredDeletions recovered;
  absl::Status parse_status;
  OUBLI_RETURN_IF_ERROR(
      store.ForEachDeletion([&](absl::string_view id, absl::string_view bytes) {
        absl::StatusOr<DeletionRecord> record = ParseDeletionRecord(id, bytes);
        if (!record.ok()) {
          parse_status.Update(record.status());
          return;
        }
        if (std::optional<int64_t> seq = DeletionSeqOf(id); seq.has_value()) {
          recovered.last_seq = std::max(recovered.last_seq, *seq);
        }
        if (record->restored_unix_nanos() == 0) {
          recovered.unfinished.push_back(*std::move(record));
        }
      }));
  OUBLI_RETURN_IF_ERROR(parse_status);
  return recovered;
}

absl::StatusOr<DeletionRecord> ReadDeletion(storage::LineageStore& store,
                                            absl::string_view deletion_id) {
  OUBLI_ASSIGN_OR_RETURN(std::optional<std::string> bytes,
                         store.GetDeletion(deletion_id));
  if (!bytes.has_value()) {
    return absl::NotFoundError(
        absl::StrCat("no deletion with id '", deletion_id, "'"));
  }
  return ParseDeletionRecord(deletion_id, *bytes);
}

absl::StatusOr<std::optional<DeletionRecord>> FindOwnerDeletion(
    storage::LineageStore& store, absl::string_view owner) {
  std::optional<DeletionRecord> found;
  absl::Status corrupt;
  OUBLI_RETURN_IF_ERROR(
      store.ForEachDeletion([&](absl::string_view id, absl::string_view bytes) {
        absl::StatusOr<DeletionRecord> record = ParseDeletionRecord(id, bytes);
        if (!record.ok()) {
          // Skipping it could answer "never ingested" for an owner whose
          // acknowledged deletion is the record that went bad.
          if (corrupt.ok()) corrupt = record.status();
          return;
        }
        if (record->owner() == owner) found = *std::move(record);
      }));
  OUBLI_RETURN_IF_ERROR(corrupt);
  return found;
}

absl::StatusOr<DeletionPage> ListDeletions(
    storage::LineageStore& store, const DeletionQuery& query,
    const std::function<DeletionRecord(DeletionRecord)>& current) {
  DeletionPage page;
  absl::Status corrupt;
  int scanned = 0;
  std::string last_scanned;
  bool more = false;
  auto matches = [&](const DeletionReceipt& receipt) {
    if (!query.stages.empty() &&
        std::find(query.stages.begin(), query.stages.end(), receipt.stage) ==
            query.stages.end()) {
      return false;
    }
    if (!query.owner.empty() && receipt.owner != query.owner) return false;
    return receipt.accepted_at >= query.accepted_from &&
           receipt.accepted_at < query.accepted_to;
  };
  OUBLI_RETURN_IF_ERROR(store.ForEachDeletionBackward(
      query.below_id, [&](absl::string_view id, absl::string_view bytes) {
        if (++scanned > kMaxScannedPerPage) {
          more = true;  // bounded work per call: the client asks again
          return false;
        }
        last_scanned = std::string(id);
        absl::StatusOr<DeletionRecord> record = ParseDeletionRecord(id, bytes);
        if (!record.ok()) {
          corrupt = record.status();
          return false;
        }
        // Ids sort by age, so nothing older can match an accepted_from.
        if (record->accepted_unix_nanos() != 0 &&
            absl::FromUnixNanos(record->accepted_unix_nanos()) <
                query.accepted_from) {
          return false;
        }
        DeletionReceipt receipt =
            ReceiptFromRecord(current(*std::move(record)));
        if (!matches(receipt)) return true;
        if (static_cast<int>(page.receipts.size()) == query.page_size) {
          more = true;  // one more match: the page is not the last
          return false;
        }
        page.receipts.push_back(std::move(receipt));
        return true;
      }));
  OUBLI_RETURN_IF_ERROR(corrupt);
  if (more) {
    page.next_below_id =
        page.receipts.size() == static_cast<size_t>(query.page_size)
            ? page.receipts.back().deletion_id
            : last_scanned;
  }
  return page;
}

absl::Status WriteDeletions(storage::LineageStore& store,
                            DeletionLedger* ledger,
                            absl::Span<const DeletionRecord> records) {
  std::vector<std::pair<std::string, std::string>> updates;
  for (const DeletionRecord& record : records) {
    std::string bytes;
    if (!record.SerializeToString(&bytes)) {
      return absl::InternalError(absl::StrCat(
          "cannot serialize deletion record ", record.deletion_id()));
    }
    updates.emplace_back(record.deletion_id(), std::move(bytes));
  }
  auto write = [&](const storage::LineageStore::MetaPuts& ledger_puts) {
    return store.UpdateDeletions(updates, ledger_puts);
  };
  return ledger != nullptr ? ledger->Append(records, write) : write({});
}

}  // namespace oubli::coordinator
