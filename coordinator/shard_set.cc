#include "coordinator/shard_set.h"

#include <cstdio>
#include <memory>
#include <utility>

#include "common/hash.h"
#include "common/status_macros.h"

namespace oubli::coordinator {

ShardSet::ShardSet(const ModelConfig& config, const ShardingPlan* plan,
                   std::string config_fingerprint, storage::LineageStore* store,
                   storage::CheckpointStore* checkpoints, const ModelBase* base,
                   SliceGenerations* slice_generations,
                   PublishedSnapshot* published, ModelSliceCache* slice_cache,
                   std::function<void(int shard)> checkpoint_dropped)
    : config_(config),
      store_(store),
      checkpoints_(checkpoints),
      base_(base),
      slice_generations_(slice_generations),
      published_(published),
      slice_cache_(slice_cache),
      checkpoint_dropped_(std::move(checkpoint_dropped)),
      table_(plan, std::move(config_fingerprint), config.shards, slice_cache) {}

absl::Status ShardSet::LoadShard(int shard) {
  std::set<int> all;
  for (int slice = 0; slice < config_.slices; ++slice) all.insert(slice);
  OUBLI_ASSIGN_OR_RETURN(auto slices, ReadSlices(*store_, shard, all,
                                                 config_.backbone.InputSize()));
  InstallSlices(shard, std::move(slices));
  return absl::OkStatus();
}

void ShardSet::InstallSlices(int shard,
                             std::vector<std::pair<int, LoadedSlice>> slices) {
  ShardState& state = table_[shard];
  if (state.slices.size() != static_cast<size_t>(config_.slices)) {
    state.slices.assign(config_.slices, SliceData());
  }
  if (slices.size() == static_cast<size_t>(config_.slices)) {
    state.needs_reload = false;
  }
  for (auto& [slice, loaded] : slices) {
    slice_cache_->Replace(state.slices[slice].digest, loaded.data.digest);
    state.slices[slice] = std::move(loaded.data);
    // Warm for the next position: read anyway, and the budget bounds it.
    slice_cache_->Insert(state.slices[slice].digest, std::move(loaded.encoded));
    slice_generations_->Bump(shard, slice);
  }
  state.samples = 0;
  for (const SliceData& slice : state.slices) {
    state.samples += static_cast<int64_t>(slice.ids.size());
  }
  table_.RecomputeKeys(shard);
  ChooseServed(shard);
}

void ShardSet::ReloadOrBlankShard(int shard) {
  absl::Status loaded = LoadShard(shard);
  if (loaded.ok()) return;
  // Serve nothing from this shard rather than risk serving deleted data;
  // training reloads it before touching it.
  std::fprintf(stderr, "oubli: reloading shard %d failed, blanking it: %s\n",
               shard, loaded.ToString().c_str());
  ShardState& state = table_[shard];
  slice_generations_->BumpShard(shard);
  for (SliceData& slice : state.slices) {
    SliceData empty = EmptySlice();
    slice_cache_->Replace(slice.digest, empty.digest);
    slice = std::move(empty);
  }
  state.samples = 0;
  state.needs_reload = true;
  table_.RecomputeKeys(shard);
  state.served = ServedModel();
}

void ShardSet::AddSamples(int shard, int slice,
                          absl::Span<const Sample* const> samples) {
  slice_generations_->Bump(shard, slice);
  table_[shard].samples += static_cast<int64_t>(samples.size());
  SliceData& data = table_[shard].slices[slice];
  const std::string old_digest = data.digest;
  data.bytes = SliceBytes(shard, slice);  // from the exact size, if known
  coordinator::AddSamples(data, samples);
  slice_cache_->Replace(old_digest, data.digest);
}

absl::Status ShardSet::RemoveSamples(
    int shard, int slice, const absl::flat_hash_set<std::string>& gone,
    int64_t gone_min_bytes) {
  // Before the edit: a position of this slice that is cancelled now must
  // not find its slices unchanged.
  slice_generations_->Bump(shard, slice);
  SliceData& data = table_[shard].slices[slice];
  const std::string old_digest = data.digest;
  const int64_t bytes_before = data.bytes;
  data.bytes = SliceBytes(shard, slice);  // from the exact size, if known
  absl::StatusOr<int64_t> removed =
      coordinator::RemoveSamples(data, gone, gone_min_bytes);
  if (!removed.ok()) {
    data.bytes = bytes_before;  // nothing removed
    return removed.status();
  }
  // The cached bytes held the deleted samples: gone now, not at PURGED.
  slice_cache_->Replace(old_digest, data.digest);
  table_[shard].samples -= *removed;
  return absl::OkStatus();
}

int64_t ShardSet::SliceBytes(int shard, int slice) const {
  const SliceData& data = table_[shard].slices[slice];
  return slice_cache_->EncodedBytes(data.digest).value_or(data.bytes);
}

PrefixSlices ShardSet::ReadPrefix(int shard,
                                  absl::Span<const int> order) const {
  std::vector<PrefixSlices::Slice> wanted;
  for (int slice : order) {
    const std::string& ids_digest = table_[shard].slices[slice].digest;
    wanted.push_back({slice, ids_digest,
                      slice_cache_->EncodedDigest(ids_digest).value_or("")});
  }
  return PrefixSlices(
      std::move(wanted),
      [store = store_, cache = slice_cache_, shard,
       input_size = config_.backbone.InputSize()](
          const PrefixSlices::Slice& slice)
          -> absl::StatusOr<std::shared_ptr<const storage::EncodedSlice>> {
        std::shared_ptr<const storage::EncodedSlice> encoded =
            cache->Find(slice.ids_digest);
        if (encoded != nullptr) return encoded;
        OUBLI_ASSIGN_OR_RETURN(
            encoded, ReadSliceAsOf(*store, {shard, slice.slice}, input_size,
                                   slice.ids_digest));
        cache->Insert(slice.ids_digest, encoded);
        return encoded;
      });
}

void ShardSet::UpdateServed(int shard, const ServedModel* prepared) {
  ChooseServed(shard, prepared);
  PublishServed();
}

void ShardSet::PublishServed() {
  auto snapshot = std::make_shared<ServedSnapshot>();
  std::vector<std::string> shas;
  for (int s = 0; s < table_.size(); ++s) {
    snapshot->shards.push_back(table_.Describe(s));
    snapshot->served.push_back(table_[s].served);
    shas.push_back(ServedSha(table_[s].served));
  }
  snapshot->fingerprint = ModelFingerprint(shas);
  published_->Publish(std::move(snapshot));
}

void ShardSet::ChooseServed(int shard, const ServedModel* prepared) {
  ShardState& state = table_[shard];
  // Each failed load forgets one stored key, so this terminates.
  while (true) {
    int best_sequence = -1;
    int best_length = 0;
    for (size_t b = 0; b < state.valid_length.size(); ++b) {
      if (state.valid_length[b] > best_length) {
        best_length = state.valid_length[b];
        best_sequence = static_cast<int>(b);
      }
    }
    // A shard with no data, or no trained prefix, would only add noise.
    if (best_length == 0 || state.samples == 0) {
      state.served = ServedModel();
      return;
    }
    const std::string key = state.keys[best_sequence][best_length - 1];
    if (state.served.key == key) {
      state.served.sequence = best_sequence;
      return;
    }
    absl::StatusOr<ServedModel> built;
    if (prepared != nullptr && prepared->key == key && prepared->model) {
      built = *prepared;
    } else {
      absl::StatusOr<std::string> bytes = checkpoints_->Get(key);
      built = bytes.ok() ? BuildServed(*base_, key, *bytes) : bytes.status();
    }
    if (built.ok()) {
      state.served = *std::move(built);
      state.served.sequence = best_sequence;
      state.served.length = best_length;
      return;
    }
    // Missing or corrupt: forget it so the prefix is retrained, and serve
    // the next best one meanwhile.
    std::fprintf(stderr,
                 "oubli: dropping unusable checkpoint %s of shard %d: %s\n",
                 key.c_str(), shard, built.status().ToString().c_str());
    table_.ForgetStored(key);
    (void)checkpoints_->Destroy(key);  // GC retries if this fails
    table_.RecomputeKeys(shard);
    checkpoint_dropped_(shard);
  }
}

absl::StatusOr<std::vector<std::pair<int, LoadedSlice>>> ReadSlices(
    storage::LineageStore& store, int shard, const std::set<int>& which,
    int64_t input_size) {
  std::vector<std::pair<int, LoadedSlice>> slices;
  for (int slice : which) {
    OUBLI_ASSIGN_OR_RETURN(LoadedSlice loaded,
                           LoadSlice(store, {shard, slice}, input_size));
    slices.emplace_back(slice, std::move(loaded));
  }
  return slices;
}

absl::StatusOr<ServedModel> BuildServed(const ModelBase& base,
                                        const std::string& key,
                                        const std::string& checkpoint) {
  ServedModel served;
  OUBLI_ASSIGN_OR_RETURN(served.model, base.ShardModelOf(checkpoint));
  served.key = key;
  served.checkpoint_sha256 = Sha256Hex(checkpoint);
  return served;
}

}  // namespace oubli::coordinator
