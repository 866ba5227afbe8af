// The per-shard state of one model that the engine serves and trains from:
// each shard's slices (their ids: the bytes are read when needed), the current key and valid length of every
// prefix of every sequence, what it serves, and which checkpoints are
// stored. Keys and validity are pure functions of the slices and the stored
// set (checkpoints are content-addressed, see PrefixKey): nothing here is
// tracked by hand.
//
// No lock of its own: the engine holds its mutex around every call (the
// engine's field is ABSL_GUARDED_BY it). No I/O.
#ifndef OUBLI_COORDINATOR_SHARD_TABLE_H_
#define OUBLI_COORDINATOR_SHARD_TABLE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "coordinator/encoded_slice_cache.h"
#include "coordinator/engine_types.h"
#include "coordinator/served_snapshot.h"
#include "coordinator/sharding_plan.h"
#include "coordinator/slice_generations.h"
#include "coordinator/slice_data.h"

namespace oubli::coordinator {

struct ShardState {
  std::vector<SliceData> slices;
  // keys[b][p - 1]: current key of sequence b's prefix of length p.
  std::vector<std::vector<std::string>> keys;
  std::vector<int> valid_length;  // per sequence
  ServedModel served;
  int64_t samples = 0;
  bool in_training = false;   // claimed by a training loop
  bool needs_reload = false;  // its slices may lag the store: reload first
  // The slices of the in-flight position, if any, as it read them (the
  // engine's purge waits for a stale one).
  std::optional<SliceGenerations::Stamp> in_flight;

  // Has samples yet serves no prefix: out of the ensemble until retrained
  // (the retrain queue and the training loops put such a shard first).
  bool ServesNothing() const { return served.model == nullptr && samples > 0; }
};

class ShardTable {
 public:
  // `plan` and `slice_cache` outlive the table; `config_fingerprint` names
  // the weights a config produces here (part of every key).
  ShardTable(const ShardingPlan* plan, std::string config_fingerprint,
             int shards, ModelSliceCache* slice_cache);

  ShardState& operator[](int shard) { return shards_[shard]; }
  const ShardState& operator[](int shard) const { return shards_[shard]; }
  int size() const { return static_cast<int>(shards_.size()); }
  std::vector<ShardState>::const_iterator begin() const {
    return shards_.begin();
  }
  std::vector<ShardState>::const_iterator end() const { return shards_.end(); }

  // The checkpoints stored here, by key.
  bool IsStored(const std::string& key) const {
    return stored_.contains(key);
  }
  void MarkStored(const std::string& key) { stored_.insert(key); }
  void ForgetStored(const std::string& key) { stored_.erase(key); }

  // Recomputes the shard's keys from its slices and each sequence's valid
  // length (the longest prefix whose whole chain is stored). Keys that
  // stop being current while stored are remembered as stale, with their
  // shard (StaleShardOf).
  void RecomputeKeys(int shard);
  // Whether every prefix of every sequence of the shard is stored.
  bool Complete(int shard) const;
  // Every current key of every shard.
  absl::flat_hash_set<std::string> CurrentKeys() const;
  // The keys of `on_disk` that are not current (trained on data that is
  // gone or changed), forgotten as stored; the caller destroys them.
  std::vector<std::string> TakeGarbage(const std::vector<std::string>& on_disk);

  // The shard of a stale key (see RecomputeKeys), if known.
  std::optional<int> StaleShardOf(const std::string& key) const;
  // Forgets every stale key but those in `left` (their copies elsewhere
  // could not be destroyed yet).
  void RetainStale(const absl::flat_hash_set<std::string>& left);

  // The public description of what the shard serves.
  ServedShard Describe(int shard) const;
  // Digests of the encodings of the slices as they are now, those read
  // since they last changed: what workers may keep cached (a slice not
  // read since was sent to no worker in its current form).
  absl::flat_hash_set<std::string> CurrentSliceDigests() const;

 private:
  const ShardingPlan* const plan_;
  const std::string config_fingerprint_;
  ModelSliceCache* const slice_cache_;
  std::vector<ShardState> shards_;
  absl::flat_hash_set<std::string> stored_;
  // Shard of each stored checkpoint that stopped being current in this
  // process and whose copies elsewhere are not destroyed yet.
  absl::flat_hash_map<std::string, int> stale_shard_;
};

}  // namespace oubli::coordinator

#endif  // OUBLI_COORDINATOR_SHARD_TABLE_H_
