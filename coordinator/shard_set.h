// The model's shards as the engine keeps them in memory: each shard's
// slices (their ids), read from the lineage store and edited as samples
// come and go, their bytes read again when a position needs them (through
// the coordinator's EncodedSliceCache, which drops a slice's old bytes as
// soon as its ids change);
// the keys and validity of its prefixes (ShardTable); and what it serves,
// its longest valid prefix, whose model is built from the stored
// checkpoint and published with every other shard's as one ServedSnapshot
// (which Predict reads without any engine lock).
//
// No lock of its own: the engine holds its mutex around every call (the
// engine's field is ABSL_GUARDED_BY it; a part with threads of its own gets
// a pointer ABSL_PT_GUARDED_BY it). Loading a shard and choosing what it
// serves read the store and checkpoints under that mutex: training loops
// and status calls may wait for them, Predict does not.
#ifndef OUBLI_COORDINATOR_SHARD_SET_H_
#define OUBLI_COORDINATOR_SHARD_SET_H_

#include <functional>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/config.h"
#include "common/types.h"
#include "coordinator/encoded_slice_cache.h"
#include "coordinator/model_base.h"
#include "coordinator/prefix_slices.h"
#include "coordinator/served_snapshot.h"
#include "coordinator/shard_table.h"
#include "coordinator/sharding_plan.h"
#include "coordinator/slice_data.h"
#include "coordinator/slice_generations.h"
#include "storage/checkpoint_store.h"
#include "storage/lineage_store.h"

namespace oubli::coordinator {

class ShardSet {
 public:
  // Every pointer outlives the set. `slice_cache` holds this model's slice
  // bytes. `checkpoint_dropped(shard)` runs, under
  // the engine mutex, when the checkpoint the shard would serve does not
  // load and was forgotten: that prefix is owed training again.
  ShardSet(const ModelConfig& config, const ShardingPlan* plan,
           std::string config_fingerprint, storage::LineageStore* store,
           storage::CheckpointStore* checkpoints, const ModelBase* base,
           SliceGenerations* slice_generations, PublishedSnapshot* published,
           ModelSliceCache* slice_cache,
           std::function<void(int shard)> checkpoint_dropped);

  ShardTable& table() { return table_; }
  const ShardTable& table() const { return table_; }
  ShardState& operator[](int shard) { return table_[shard]; }
  const ShardState& operator[](int shard) const { return table_[shard]; }

  // Reads every slice of the shard and installs them (InstallSlices: the
  // caller publishes). The store may change meanwhile only by a commit
  // under the engine's deletion lock; that commit then applies its change
  // again under the engine mutex and bumps the generation, so a read racing
  // it is overwritten.
  absl::Status LoadShard(int shard);
  // Replaces those slices of the shard, clears needs_reload if every slice
  // was given, and recomputes keys and the served prefix without
  // publishing it (the caller calls PublishServed once for all shards it
  // changed).
  void InstallSlices(int shard,
                     std::vector<std::pair<int, LoadedSlice>> slices);
  // LoadShard, or when that fails, blanks the shard: it serves nothing and
  // needs a reload, rather than risk serving deleted data. Without
  // publishing.
  void ReloadOrBlankShard(int shard);

  // Newly ingested samples of one slice (ids not in it, each once). The
  // caller recomputes the keys and what the shard serves.
  void AddSamples(int shard, int slice,
                  absl::Span<const Sample* const> samples);
  // Drops `gone` from one slice, all or nothing (see RemoveSamples in
  // slice_data.h; `gone_min_bytes`: their EncodedSampleMinBytes), and the
  // slice's cached bytes; the slice counts as changed either way, so a
  // position reading it is stale. The caller recomputes as for AddSamples.
  // ResourceExhausted: out of memory (nothing removed).
  absl::Status RemoveSamples(int shard, int slice,
                             const absl::flat_hash_set<std::string>& gone,
                             int64_t gone_min_bytes);

  // The encoded size of one slice as ingest limits count it: exact once
  // its current samples were read (by a position or a reload), else
  // SliceData::bytes, an estimate never below the truth.
  int64_t SliceBytes(int shard, int slice) const;

  // The shard's slices named by `order` as they are now, by digest; their
  // bytes are read when asked for (without the engine mutex; before this
  // set is destroyed), from the cache, else from the store (then cached).
  // A read aborts when the slice changed meanwhile (the position is
  // stale); other errors as LoadSlice.
  PrefixSlices ReadPrefix(int shard, absl::Span<const int> order) const;

  // Serves the shard's longest valid prefix, without publishing; drops
  // checkpoints that do not load (see checkpoint_dropped). `prepared`, if it
  // is the prefix chosen, is served as it is (its model built without the
  // engine mutex) instead of reading and building it here.
  void ChooseServed(int shard, const ServedModel* prepared = nullptr);
  // ChooseServed, then PublishServed.
  void UpdateServed(int shard, const ServedModel* prepared = nullptr);
  // Swaps in a snapshot of what every shard serves now.
  void PublishServed();

 private:
  const ModelConfig& config_;
  storage::LineageStore* const store_;
  storage::CheckpointStore* const checkpoints_;
  const ModelBase* const base_;
  SliceGenerations* const slice_generations_;
  PublishedSnapshot* const published_;
  ModelSliceCache* const slice_cache_;
  const std::function<void(int)> checkpoint_dropped_;
  ShardTable table_;
};

// The slices `which` of `shard`, read from the store; needs no lock.
// `input_size` as for LoadSlice.
absl::StatusOr<std::vector<std::pair<int, LoadedSlice>>> ReadSlices(
    storage::LineageStore& store, int shard, const std::set<int>& which,
    int64_t input_size);

// What serving `key` means: the model built from its checkpoint bytes and
// their SHA-256 (sequence and length are the caller's); needs no lock.
// Errors: the checkpoint does not load.
absl::StatusOr<ServedModel> BuildServed(const ModelBase& base,
                                        const std::string& key,
                                        const std::string& checkpoint);

}  // namespace oubli::coordinator

#endif  // OUBLI_COORDINATOR_SHARD_SET_H_
