#include "coordinator/retrain_queue.h"

#include <algorithm>

namespace oubli::coordinator {

void RetrainQueue::AddDeletion(const std::set<int>& shards, absl::Time now,
                               int deletions) {
  if (policy_.mode == RetrainMode::kImmediate) {
    for (int shard : shards) Add(shard, now, now);
    return;
  }
  if (batch_opened_.has_value() && now >= *batch_opened_ + policy_.window) {
    // Its window is over: its shards are due already; start a new one.
    batch_opened_.reset();
  }
  if (!batch_opened_.has_value()) {
    batch_opened_ = now;
    batch_deletions_ = 0;
    batch_shards_.clear();
  }
  const absl::Time window_end = *batch_opened_ + policy_.window;
  for (int shard : shards) {
    Add(shard, window_end, now);
    batch_shards_.insert(shard);
  }
  batch_deletions_ += deletions;
  if (batch_deletions_ >= policy_.max_batch) {
    for (int shard : batch_shards_) {
      // A shard of the batch that a loop took meanwhile is not queued now.
      if (auto it = entries_.find(shard); it != entries_.end()) {
        it->second.due = std::min(it->second.due, now);
      }
    }
    batch_opened_.reset();
  }
}

void RetrainQueue::Add(int shard, absl::Time due, absl::Time owed_since) {
  auto [it, inserted] = entries_.try_emplace(shard, Entry{due, owed_since});
  if (!inserted) {
    it->second.due = std::min(it->second.due, due);
    it->second.owed_since = std::min(it->second.owed_since, owed_since);
  }
}

std::optional<int> RetrainQueue::NextDue(
    absl::Time now, const std::function<bool(int)>& busy,
    const std::function<bool(int)>& urgent) const {
  std::optional<int> best;
  bool best_urgent = false;
  absl::Time best_owed = absl::InfiniteFuture();
  for (const auto& [shard, entry] : entries_) {
    if (entry.due > now || busy(shard)) continue;
    const bool is_urgent = urgent != nullptr && urgent(shard);
    if (!best.has_value() || (is_urgent && !best_urgent) ||
        (is_urgent == best_urgent && entry.owed_since < best_owed)) {
      best = shard;
      best_urgent = is_urgent;
      best_owed = entry.owed_since;
    }
  }
  return best;
}

absl::Time RetrainQueue::EarliestDue(
    const std::function<bool(int)>& busy) const {
  absl::Time earliest = absl::InfiniteFuture();
  for (const auto& [shard, entry] : entries_) {
    if (!busy(shard)) earliest = std::min(earliest, entry.due);
  }
  return earliest;
}

std::vector<int> RetrainQueue::Due(absl::Time now, bool ignore_policy) const {
  std::vector<std::pair<absl::Time, int>> due;
  for (const auto& [shard, entry] : entries_) {
    if (ignore_policy || entry.due <= now) {
      due.emplace_back(entry.owed_since, shard);
    }
  }
  std::sort(due.begin(), due.end());  // longest owed first
  std::vector<int> shards;
  for (const auto& [owed_since, shard] : due) shards.push_back(shard);
  return shards;
}

void RetrainQueue::Expedite(int shard, absl::Time now) {
  if (auto it = entries_.find(shard); it != entries_.end()) {
    it->second.due = std::min(it->second.due, now);
  }
}

void RetrainQueue::AddUnlessQueued(int shard, absl::Time now) {
  entries_.try_emplace(shard, Entry{now, now});
}

std::optional<absl::Time> RetrainQueue::Remove(int shard) {
  auto it = entries_.find(shard);
  if (it == entries_.end()) return std::nullopt;
  const absl::Time owed_since = it->second.owed_since;
  entries_.erase(it);
  return owed_since;
}

}  // namespace oubli::coordinator
