#include "coordinator/pending_deletions.h"

#include <algorithm>
#include <cstdio>
#include <utility>

#include "absl/time/time.h"
#include "coordinator/deletion_log.h"

namespace oubli::coordinator {

using internal::DeletionRecord;

PendingDeletions::PendingDeletions(int shards, int sequences, int slices,
                                   EngineMetrics* metrics)
    : slices_(slices),
      metrics_(metrics),
      restore_progress_(shards, sequences) {}

PendingDeletion& PendingDeletions::Track(DeletionRecord record) {
  PendingDeletion& p = pending_[record.deletion_id()];
  p.shards.insert(record.affected_shards().begin(),
                  record.affected_shards().end());
  p.record = std::move(record);
  return p;
}

const DeletionRecord* PendingDeletions::Find(
    absl::string_view deletion_id) const {
  auto it = pending_.find(deletion_id);
  return it == pending_.end() ? nullptr : &it->second.record;
}

std::vector<const PendingDeletion*> PendingDeletions::ByAcceptance() const {
  std::vector<const PendingDeletion*> by_acceptance;
  for (const auto& [id, p] : pending_) by_acceptance.push_back(&p);
  std::stable_sort(by_acceptance.begin(), by_acceptance.end(),
                   [](const PendingDeletion* a, const PendingDeletion* b) {
                     return a->record.accepted_unix_nanos() <
                            b->record.accepted_unix_nanos();
                   });
  return by_acceptance;
}

void PendingDeletions::Summarize(ModelStatus* status) const {
  status->pending_deletions = size();
  for (const auto& [id, p] : pending_) {
    // From the timestamps: a receipt would copy every resolved id.
    const DeletionRecord& r = p.record;
    if (r.purged_unix_nanos() != 0) {
      ++status->pending_purged;
    } else if (r.forgotten_unix_nanos() != 0) {
      ++status->pending_forgotten;
    } else {
      ++status->pending_accepted;
    }
    if (r.accepted_unix_nanos() == 0) continue;
    const absl::Time accepted = absl::FromUnixNanos(r.accepted_unix_nanos());
    if (status->oldest_pending_accepted_at == absl::InfinitePast() ||
        accepted < status->oldest_pending_accepted_at) {
      status->oldest_pending_accepted_at = accepted;
    }
  }
}

bool PendingDeletions::HasUnpurged() const {
  for (const auto& [id, p] : pending_) {
    if (p.record.purged_unix_nanos() == 0) return true;
  }
  return false;
}

PendingDeletions::Unpurged PendingDeletions::ListUnpurged() const {
  Unpurged unpurged;
  for (const auto& [id, p] : pending_) {
    if (p.record.purged_unix_nanos() != 0) continue;
    unpurged.records.push_back(p.record);
    unpurged.shards_of.push_back(p.shards);
    unpurged.affected.insert(p.shards.begin(), p.shards.end());
  }
  return unpurged;
}

void PendingDeletions::SetNote(const std::string& deletion_id,
                               std::string note) {
  auto it = pending_.find(deletion_id);
  if (it == pending_.end()) return;
  it->second.record.set_note(std::move(note));
}

void PendingDeletions::MarkPurged(absl::Span<const DeletionRecord> records,
                                  int64_t purged_at) {
  for (const DeletionRecord& record : records) {
    auto it = pending_.find(record.deletion_id());
    if (it == pending_.end()) continue;
    it->second.record.set_purged_unix_nanos(purged_at);
    it->second.record.clear_note();
  }
  if (metrics_ != nullptr) {
    for (const DeletionRecord& record : records) {
      metrics_->DeletionPurged(
          absl::Nanoseconds(purged_at - record.accepted_unix_nanos()));
    }
  }
}

bool PendingDeletions::NoteWhole(int shard, const ShardState& state,
                                 uint64_t generation) {
  if (state.needs_reload) return false;
  bool news = false;
  for (size_t b = 0; b < state.valid_length.size(); ++b) {
    if (state.valid_length[b] != slices_) continue;
    news =
        restore_progress_.MarkWhole(shard, static_cast<int>(b), generation) ||
        news;
  }
  return news;
}

std::vector<DeletionRecord> PendingDeletions::TakeRestored(
    const std::string& fingerprint) {
  std::vector<DeletionRecord> restored;
  for (auto& [id, pending_deletion] : pending_) {
    if (pending_deletion.restoring) continue;
    const DeletionRecord& record = pending_deletion.record;
    // RESTORED implies PURGED: never claim it with data still on disk.
    if (record.purged_unix_nanos() == 0) continue;
    bool all_complete = true;
    for (int s : pending_deletion.shards) {
      auto applied = pending_deletion.applied_at.find(s);
      const uint64_t needed =
          applied == pending_deletion.applied_at.end() ? 0 : applied->second;
      all_complete = all_complete && restore_progress_.Restored(s, needed);
    }
    if (!all_complete && training_requested_) continue;
    DeletionRecord& stamped = restored.emplace_back(record);
    if (!training_requested_) {
      stamped.set_note(
          "model not trained yet: nothing was served, so nothing to retrain");
    }
    stamped.set_restored_unix_nanos(absl::ToUnixNanos(absl::Now()));
    stamped.set_fingerprint_restored(fingerprint);
    pending_deletion.restoring = true;
  }
  return restored;
}

void PendingDeletions::FinishRestored(absl::Span<const DeletionRecord> records,
                                      const absl::Status& written) {
  for (const DeletionRecord& record : records) {
    auto it = pending_.find(record.deletion_id());
    if (it == pending_.end()) continue;
    if (!written.ok()) {
      // Stays pending; taken again at the next completion or restart.
      it->second.restoring = false;
      std::fprintf(stderr, "oubli: cannot record RESTORED for %s: %s\n",
                   record.deletion_id().c_str(), written.ToString().c_str());
      continue;
    }
    pending_.erase(it);
    if (metrics_ != nullptr) {
      metrics_->DeletionRestored(absl::Nanoseconds(
          record.restored_unix_nanos() - record.accepted_unix_nanos()));
    }
  }
}

void RestoredRecorder::Record(std::vector<DeletionRecord> records) {
  if (records.empty()) return;
  const absl::Status written = WriteDeletions(*store_, ledger_, records);
  absl::MutexLock lock(&mu_);
  pending_->FinishRestored(records, written);
}

}  // namespace oubli::coordinator
