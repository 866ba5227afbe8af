#include "coordinator/purger.h"

#include <algorithm>
#include <cstdio>
#include <memory>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/status_macros.h"
#include "common/thread_priority.h"
#include "coordinator/deletion_log.h"

namespace oubli::coordinator {

using internal::DeletionRecord;

Purger::~Purger() {
  RequestStop();
  Join();
}

void Purger::Start() {
  thread_ = std::thread([this] { PurgeLoop(); });
}

void Purger::RetryNow() {
  absl::MutexLock lock(&retry_mu_);
  retry_now_ = true;
}

void Purger::RequestStop() {
  {
    absl::MutexLock lock(p_.engine_mu);
    stopping_ = true;
  }
  {
    absl::MutexLock lock(&retry_mu_);
    retry_stop_ = true;
  }
  stop_requested_ = true;
}

void Purger::Join() {
  if (thread_.joinable()) thread_.join();
}

absl::Status Purger::DestroyRemoteCopies() {
  if (p_.shard_serving != nullptr) {
    OUBLI_RETURN_IF_ERROR(p_.shard_serving->Sync(p_.serving_query));
  }
  OUBLI_ASSIGN_OR_RETURN(std::vector<std::string> keys,
                         p_.chunks->GarbageKeys({}));  // every key with chunks
  // Chunks first: a holder's failure names what to retire.
  OUBLI_RETURN_IF_ERROR(p_.chunks->Forget(keys));
  if (p_.remote_trainer != nullptr) {
    OUBLI_RETURN_IF_ERROR(p_.remote_trainer->DropStaleSlices(
        p_.config->model_id, {}, p_.reopened));
  }
  return absl::OkStatus();
}

absl::Status Purger::SyncServingCopies() {
  if (p_.shard_serving == nullptr) return absl::OkStatus();
  // Predicts that read a checkpoint before this pass destroyed it finish
  // their loads first; later ones find it gone.
  p_.predict_drain->WaitForEarlier();
  ShardServing::Query query = p_.serving_query;
  const std::shared_ptr<const ServedSnapshot> snapshot = p_.served->Get();
  for (size_t s = 0; s < snapshot->served.size(); ++s) {
    const ServedModel& served = snapshot->served[s];
    if (served.model) {
      query.shards.push_back({static_cast<int>(s), served.checkpoint_sha256});
    }
  }
  return p_.shard_serving->Sync(query);
}

absl::Status Purger::DropCachedSlices() {
  // The engine's own cache dropped the slices when the deletions applied.
  // Every position that read a slice as it was before this pass's
  // deletions is done (WaitForStaleTraining), so none uploads it again.
  absl::flat_hash_set<std::string> keep;
  {
    absl::MutexLock lock(p_.engine_mu);
    keep = p_.shards->CurrentSliceDigests();
  }
  if (p_.remote_trainer == nullptr) return absl::OkStatus();
  return p_.remote_trainer->DropStaleSlices(p_.config->model_id, keep,
                                            p_.reopened);
}

absl::Status Purger::DestroyCheckpoints(const std::vector<std::string>& keys) {
  for (const std::string& key : keys) {
    OUBLI_RETURN_IF_ERROR(p_.checkpoints->Destroy(key));
  }
  return absl::OkStatus();
}

absl::Status Purger::PurgeUnfinished(bool* chunks_only) {
  absl::MutexLock purge_lock(&purge_mu_);
  PendingDeletions::Unpurged listed;
  std::vector<std::string> garbage;
  std::vector<std::string> garbage_chunks;  // checkpoint keys
  {
    absl::MutexLock lock(p_.engine_mu);
    listed = p_.pending->ListUnpurged();
    if (listed.records.empty()) return absl::OkStatus();
    // After this, no position that read deleted data is left to write a
    // checkpoint: the listing below sees every file that holds any.
    WaitForStaleTraining(listed.affected);
  }
  std::vector<DeletionRecord>& unpurged = listed.records;
  const std::vector<std::set<int>>& shards_of = listed.shards_of;
  // Listed without the engine mutex; positions that start meanwhile train
  // on data without these deletions.
  OUBLI_ASSIGN_OR_RETURN(std::vector<std::string> on_disk,
                         p_.checkpoints->List());
  absl::flat_hash_set<std::string> current;
  {
    absl::MutexLock lock(p_.engine_mu);
    garbage = p_.shards->TakeGarbage(on_disk);
    current = p_.shards->CurrentKeys();
  }
  OUBLI_ASSIGN_OR_RETURN(garbage_chunks, p_.chunks->GarbageKeys(current));
  // Slow I/O (flush, compaction, shredding) without the engine mutex:
  // serving and new deletions go on, and pile up for the next pass.
  std::vector<std::string> ids;
  for (const DeletionRecord& record : unpurged) {
    ids.insert(ids.end(), record.resolved_ids().begin(),
               record.resolved_ids().end());
  }
  absl::Status purged = p_.store->Purge(ids);
  if (purged.ok()) purged = DestroyCheckpoints(garbage);
  // Copies on workers too: PURGED means no copy is left anywhere. A chunk
  // holder that is down keeps the deletions of the shards whose stale
  // checkpoints it holds chunks of short of PURGED until it is back; the
  // others go on.
  absl::flat_hash_set<std::string> left;
  absl::Status copies = absl::OkStatus();
  if (purged.ok()) {
    copies = p_.chunks->Forget(garbage_chunks, &left);
    {
      // Every stale checkpoint with copies was just listed: what was not
      // left behind is gone (or never had copies). A key made stale during
      // this pass and pruned here is unknown if a later pass leaves it
      // behind: that holds everyone back, which is safe.
      absl::MutexLock lock(p_.engine_mu);
      p_.shards->RetainStale(left);
    }
    // And checkpoints that workers hold in memory to answer Predict, and
    // the slices they cached for training.
    absl::Status held = SyncServingCopies();
    if (absl::Status dropped = DropCachedSlices(); !dropped.ok()) {
      held = dropped;
    }
    if (!held.ok()) {
      // A chunk holder's failure says more (it names what to retire).
      if (copies.ok()) copies = held;
      left.clear();  // not known per deletion: all wait
    }
    if (chunks_only != nullptr) *chunks_only = !copies.ok();
  }
  const absl::Status& failure = purged.ok() ? copies : purged;
  if (!failure.ok()) {
    // Done anyway: a deletion with no checkpoint left behind in its shards
    // (a checkpoint only ever holds samples of its own shard). A leftover
    // of unknown shard (stale since before this process started) holds
    // everyone back, as does a failure not per checkpoint (`left` empty).
    absl::MutexLock lock(p_.engine_mu);
    std::set<int> blocked;
    bool block_all = !purged.ok() || left.empty();
    for (const std::string& key : left) {
      if (std::optional<int> shard = p_.shards->StaleShardOf(key)) {
        blocked.insert(*shard);
      } else {
        block_all = true;
      }
    }
    std::vector<DeletionRecord> done;
    for (size_t i = 0; i < unpurged.size(); ++i) {
      bool clear = !block_all;
      for (int shard : shards_of[i]) clear = clear && !blocked.contains(shard);
      if (clear) {
        done.push_back(std::move(unpurged[i]));
        continue;
      }
      p_.pending->SetNote(unpurged[i].deletion_id(),
                          absl::StrCat("purge failed (", failure.ToString(),
                                       "); it is retried in the background"));
    }
    unpurged = std::move(done);
    if (unpurged.empty()) return failure;
  }
  // Persisted before the live records change: only a live record stamped
  // PURGED can become RESTORED (TakeRestored), so this write never
  // overwrites a RESTORED one.
  const int64_t purged_at = absl::ToUnixNanos(absl::Now());
  for (DeletionRecord& record : unpurged) {
    record.set_purged_unix_nanos(purged_at);
    record.clear_note();
  }
  OUBLI_RETURN_IF_ERROR(WriteDeletions(*p_.store, p_.ledger, unpurged));
  std::vector<DeletionRecord> restored;
  {
    absl::MutexLock lock(p_.engine_mu);
    p_.pending->MarkPurged(unpurged, purged_at);
    restored = p_.pending->TakeRestored(p_.served->Get()->fingerprint);
  }
  p_.restored->Record(std::move(restored));
  return failure;
}

void Purger::PurgeLoop() {
  StartBackgroundThread("oubli-purge", p_.background_priority);
  // A pass costs a flush and a compaction whatever its size, so under a
  // stream of deletions passes start at most every kPurgeCoalesce: the
  // deletions of that interval share one pass instead of each competing
  // with the request path for CPU. A lone deletion is purged at once.
  // Between passes, with erasure-coded copies, chunks on dead workers are
  // re-placed every kRepairPeriod.
  constexpr absl::Duration kPurgeCoalesce = absl::Milliseconds(500);
  constexpr absl::Duration kRepairPeriod = absl::Seconds(2);
  absl::Duration backoff = absl::ZeroDuration();
  absl::Time last_pass = absl::InfinitePast();
  absl::Time next_repair = absl::Now() + kRepairPeriod;
  while (true) {
    bool repair_due = false;
    {
      absl::MutexLock lock(p_.engine_mu);
      auto has_work = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(*p_.engine_mu) {
        return stopping_ || p_.pending->HasUnpurged();
      };
      if (!p_.chunks->enabled()) {
        p_.engine_mu->Await(absl::Condition(&has_work));
      } else if (!p_.engine_mu->AwaitWithTimeout(absl::Condition(&has_work),
                                                 next_repair - absl::Now())) {
        repair_due = true;
      }
      if (stopping_) return;
    }
    if (!repair_due) {
      absl::MutexLock lock(&retry_mu_);
      const absl::Duration wait =
          std::max(backoff, last_pass + kPurgeCoalesce - absl::Now());
      auto stop_or_retry = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(retry_mu_) {
        return retry_stop_ || retry_now_;
      };
      if (wait > absl::ZeroDuration()) {
        retry_mu_.AwaitWithTimeout(absl::Condition(&stop_or_retry), wait);
      }
      if (retry_stop_) return;
      if (retry_now_) {
        retry_now_ = false;
        backoff = absl::ZeroDuration();
      }
    }
    if (repair_due) {
      RepairChunks();
      next_repair = absl::Now() + kRepairPeriod;
      continue;
    }
    last_pass = absl::Now();
    if (absl::Status s = PurgeUnfinished(); !s.ok()) {
      std::fprintf(stderr, "oubli: purge failed, retrying: %s\n",
                   s.ToString().c_str());
      backoff =
          std::min(std::max(2 * backoff, absl::Seconds(1)), absl::Seconds(30));
    } else {
      backoff = absl::ZeroDuration();
    }
  }
}

void Purger::RepairChunks() {
  // Serialized with purge passes: a key made stale by a deletion while its
  // chunks are re-placed is found, new holders included, by the purge pass
  // that deletion waits for.
  absl::MutexLock purge_lock(&purge_mu_);
  absl::flat_hash_set<std::string> current;
  {
    absl::MutexLock lock(p_.engine_mu);
    current = p_.shards->CurrentKeys();
  }
  absl::StatusOr<std::vector<ChunkReplication::KeyedManifest>> manifests =
      p_.chunks->Manifests(current, /*want_current=*/true);
  if (!manifests.ok()) return;
  absl::flat_hash_set<std::string> coded;
  for (const auto& [key, manifest] : *manifests) coded.insert(key);
  std::vector<std::string> uncoded;
  {
    absl::MutexLock lock(p_.engine_mu);
    for (const std::string& key : current) {
      if (p_.shards->IsStored(key) && !coded.contains(key)) {
        uncoded.push_back(key);
      }
    }
  }
  p_.chunks->RepairPass(
      *manifests, std::move(uncoded),
      [this](const std::string& key) { return p_.checkpoints->Get(key); },
      p_.config->erasure, stop_requested_);
}

void Purger::WaitForStaleTraining(const std::set<int>& affected) {
  // A position trained before the deletion holds the deleted samples in
  // memory and may be about to write its checkpoint; PURGED must not be
  // claimed until it has been cancelled and cleaned up.
  auto no_stale = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(*p_.engine_mu) {
    for (int s : affected) {
      const auto& in_flight = (*p_.shards)[s].in_flight;
      if (in_flight.has_value() && p_.slice_generations->Changed(*in_flight)) {
        return false;
      }
    }
    return true;
  };
  p_.engine_mu->Await(absl::Condition(&no_stale));
}

}  // namespace oubli::coordinator
