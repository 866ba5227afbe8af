#include "coordinator/shard_table.h"

#include <utility>

#include "absl/container/flat_hash_set.h"

namespace oubli::coordinator {

ShardTable::ShardTable(const ShardingPlan* plan, std::string config_fingerprint,
                       int shards, ModelSliceCache* slice_cache)
    : plan_(plan),
      config_fingerprint_(std::move(config_fingerprint)),
      slice_cache_(slice_cache),
      shards_(shards) {}

void ShardTable::RecomputeKeys(int shard) {
  ShardState& state = shards_[shard];
  std::vector<std::string> old_keys;
  for (const auto& sequence_keys : state.keys) {
    old_keys.insert(old_keys.end(), sequence_keys.begin(), sequence_keys.end());
  }
  std::vector<std::string> digests;
  for (const SliceData& slice : state.slices) digests.push_back(slice.digest);
  const auto& orders = plan_->orders();
  state.keys.assign(orders.size(), {});
  state.valid_length.assign(orders.size(), 0);
  for (size_t b = 0; b < orders.size(); ++b) {
    bool chain_intact = true;
    for (size_t p = 1; p <= orders[b].size(); ++p) {
      std::string key =
          PrefixKey(config_fingerprint_, shard,
                    absl::MakeConstSpan(orders[b]).subspan(0, p), digests);
      chain_intact = chain_intact && stored_.contains(key);
      if (chain_intact) state.valid_length[b] = static_cast<int>(p);
      state.keys[b].push_back(std::move(key));
    }
  }
  // Checkpoints no longer current (a deletion or an ingest changed their
  // content): remember their shard, so a purge that cannot destroy their
  // copies on workers holds back only that shard's deletions.
  absl::flat_hash_set<std::string> current;
  for (const auto& sequence_keys : state.keys) {
    current.insert(sequence_keys.begin(), sequence_keys.end());
  }
  for (std::string& key : old_keys) {
    if (!current.contains(key) && stored_.contains(key)) {
      stale_shard_[std::move(key)] = shard;
    }
  }
}

bool ShardTable::Complete(int shard) const {
  for (const auto& sequence_keys : shards_[shard].keys) {
    for (const std::string& key : sequence_keys) {
      if (!stored_.contains(key)) return false;
    }
  }
  return true;
}

absl::flat_hash_set<std::string> ShardTable::CurrentKeys() const {
  absl::flat_hash_set<std::string> current;
  for (const ShardState& state : shards_) {
    for (const auto& sequence_keys : state.keys) {
      current.insert(sequence_keys.begin(), sequence_keys.end());
    }
  }
  return current;
}

std::vector<std::string> ShardTable::TakeGarbage(
    const std::vector<std::string>& on_disk) {
  // Content only changes by deletion and ingest, so any checkpoint file
  // whose key is not current was trained on data that is gone or changed.
  // The disk listing (not the stored set) is the truth: a file whose
  // earlier destruction failed is found again here.
  const absl::flat_hash_set<std::string> current = CurrentKeys();
  std::vector<std::string> garbage;
  for (const std::string& key : on_disk) {
    if (!current.contains(key)) {
      garbage.push_back(key);
      stored_.erase(key);
    }
  }
  return garbage;
}

std::optional<int> ShardTable::StaleShardOf(const std::string& key) const {
  auto it = stale_shard_.find(key);
  if (it == stale_shard_.end()) return std::nullopt;
  return it->second;
}

void ShardTable::RetainStale(const absl::flat_hash_set<std::string>& left) {
  absl::erase_if(stale_shard_, [&](const auto& entry) {
    return !left.contains(entry.first);
  });
}

ServedShard ShardTable::Describe(int shard) const {
  const ShardState& state = shards_[shard];
  ServedShard out;
  out.shard = shard;
  out.samples = state.samples;
  out.served = state.served.model != nullptr;
  if (out.served) {
    out.sequence = state.served.sequence;
    const auto& order = plan_->orders()[state.served.sequence];
    out.prefix.assign(order.begin(), order.begin() + state.served.length);
    out.key = state.served.key;
  }
  return out;
}

absl::flat_hash_set<std::string> ShardTable::CurrentSliceDigests() const {
  absl::flat_hash_set<std::string> digests;
  for (const ShardState& state : shards_) {
    for (const SliceData& slice : state.slices) {
      if (std::optional<std::string> encoded =
              slice_cache_->EncodedDigest(slice.digest)) {
        digests.insert(*std::move(encoded));
      }
    }
  }
  return digests;
}

}  // namespace oubli::coordinator
