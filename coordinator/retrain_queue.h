// The retrain queue: which shards owe training, when each becomes due under
// the model's retrain policy, and which one a free training loop takes.
//
// Fair: among the due shards, the one that has owed training longest goes
// first (its oldest unserved change), so a shard that receives deletions
// continuously cannot keep another waiting. Batched: deletions join the
// open batch, whose shards become due together when its window ends or
// when it reaches max_batch deletions; a full batch starts at once and the
// next deletion opens a new batch, so a burst does not turn the policy into
// IMMEDIATE for everything that follows.
//
// Plain data, not thread-safe: the engine calls it under its mutex.
#ifndef OUBLI_COORDINATOR_RETRAIN_QUEUE_H_
#define OUBLI_COORDINATOR_RETRAIN_QUEUE_H_

#include <functional>
#include <map>
#include <optional>
#include <set>
#include <vector>

#include "absl/time/time.h"
#include "common/config.h"

namespace oubli::coordinator {

class RetrainQueue {
 public:
  explicit RetrainQueue(RetrainPolicy policy) : policy_(policy) {}

  // `deletions` deletions accepted together at `now` cut these shards.
  // IMMEDIATE: due now. BATCHED: due when the open batch's window ends (the
  // batch opens now if none is open), or now once the batch holds
  // max_batch deletions.
  void AddDeletion(const std::set<int>& shards, absl::Time now,
                   int deletions = 1);

  // Other work (a retry after a failure, a shard queued at open): due at
  // `due`, owed since `owed_since`. An entry already queued keeps the
  // earlier of each.
  void Add(int shard, absl::Time due, absl::Time owed_since);
  // A shard that serves nothing is due now whatever the policy: a batch
  // window trades fewer retrains for staleness, never for a shard missing
  // from the ensemble. No-op if the shard is not queued.
  void Expedite(int shard, absl::Time now);
  // New samples or a lost checkpoint: due now unless the shard is queued
  // already (then it trains them when that entry is due, as a batch
  // would).
  void AddUnlessQueued(int shard, absl::Time now);

  // The due (due <= now) shard, not `busy`, that has owed training
  // longest (the lower shard on ties), those `urgent` (if given) before the
  // rest; nullopt if none.
  std::optional<int> NextDue(
      absl::Time now, const std::function<bool(int)>& busy,
      const std::function<bool(int)>& urgent = nullptr) const;

  // When the next shard that is not busy becomes due; InfiniteFuture if
  // none is queued.
  absl::Time EarliestDue(const std::function<bool(int)>& busy) const;

  // Every queued shard due at `now` (all of them if `ignore_policy`),
  // longest owed first.
  std::vector<int> Due(absl::Time now, bool ignore_policy) const;

  // Takes the shard off the queue (a loop claimed it) and returns since
  // when it was owed, so a failed attempt can put it back unchanged.
  std::optional<absl::Time> Remove(int shard);

  bool Contains(int shard) const { return entries_.contains(shard); }
  int size() const { return static_cast<int>(entries_.size()); }

 private:
  struct Entry {
    absl::Time due;
    absl::Time owed_since;
  };
  const RetrainPolicy policy_;
  std::map<int, Entry> entries_;
  // The open batch (BATCHED only): when it opened, its deletions, and the
  // shards they cut.
  std::optional<absl::Time> batch_opened_;
  int batch_deletions_ = 0;
  std::set<int> batch_shards_;
};

}  // namespace oubli::coordinator

#endif  // OUBLI_COORDINATOR_RETRAIN_QUEUE_H_
