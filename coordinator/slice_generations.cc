#include "coordinator/slice_generations.h"

namespace oubli::coordinator {

SliceGenerations::SliceGenerations(int shards, int slices)
    : shards_(shards),
      slices_(slices),
      counters_(new std::atomic<uint64_t>[static_cast<size_t>(shards) *
                                          slices]) {
  for (size_t i = 0; i < static_cast<size_t>(shards) * slices; ++i) {
    counters_[i] = 0;
  }
}

void SliceGenerations::Bump(int shard, int slice) { ++At(shard, slice); }

void SliceGenerations::BumpShard(int shard) {
  for (int slice = 0; slice < slices_; ++slice) Bump(shard, slice);
}

SliceGenerations::Stamp SliceGenerations::Take(
    int shard, absl::Span<const int> slices) const {
  Stamp stamp;
  stamp.shard = shard;
  stamp.slices.reserve(slices.size());
  for (int slice : slices) {
    stamp.slices.emplace_back(slice, At(shard, slice).load());
  }
  return stamp;
}

ShardGenerations::ShardGenerations(int shards)
    : counters_(new std::atomic<uint64_t>[shards]) {
  for (int s = 0; s < shards; ++s) counters_[s] = 0;
}

bool SliceGenerations::Changed(const Stamp& stamp) const {
  for (const auto& [slice, counter] : stamp.slices) {
    if (At(stamp.shard, slice).load() != counter) return true;
  }
  return false;
}

}  // namespace oubli::coordinator
