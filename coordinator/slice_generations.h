// Change counters per (shard, slice), readable without the engine mutex.
//
// A position trains on the slices of its prefix only, so it goes stale
// only when one of those slices changes: a deletion in slice 3 leaves a
// position training slices {0, 1} exact and worth keeping. A position
// stamps the counters of its slices when it starts (Stamp) and is stale
// once any of them moved (Changed): that is when its training read data
// that is gone (a purge waits for it) or its checkpoint can no longer be
// served (it is destroyed).
//
// Bumped by the engine under its mutex whenever a slice's content changes;
// read from any thread (cancellation polls it while a position trains).
#ifndef OUBLI_COORDINATOR_SLICE_GENERATIONS_H_
#define OUBLI_COORDINATOR_SLICE_GENERATIONS_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "absl/types/span.h"

namespace oubli::coordinator {

class SliceGenerations {
 public:
  SliceGenerations(int shards, int slices);

  // The slice's content changed.
  void Bump(int shard, int slice);
  // Every slice of the shard may have changed (a reload or a blanking).
  void BumpShard(int shard);

  // The counters of `slices` of `shard`, as they are now.
  struct Stamp {
    int shard = -1;
    std::vector<std::pair<int, uint64_t>> slices;  // (slice, counter)
  };
  Stamp Take(int shard, absl::Span<const int> slices) const;
  // Whether any slice of the stamp changed since it was taken.
  bool Changed(const Stamp& stamp) const;

 private:
  std::atomic<uint64_t>& At(int shard, int slice) const {
    return counters_[static_cast<size_t>(shard) * slices_ + slice];
  }

  const int shards_;
  const int slices_;
  std::unique_ptr<std::atomic<uint64_t>[]> counters_;
};

// Per shard, a data generation: bumped, under the engine's deletion lock,
// whenever a deletion or an ingest changes the shard's samples. A deletion
// is RESTORED once its shards' sequences were whole at the generation it
// left them at (see RestoreProgress), and Verify keeps a read only if it
// did not move. Read from any thread.
class ShardGenerations {
 public:
  explicit ShardGenerations(int shards);

  uint64_t Get(int shard) const { return counters_[shard].load(); }
  void Bump(int shard) { ++counters_[shard]; }

 private:
  std::unique_ptr<std::atomic<uint64_t>[]> counters_;
};

}  // namespace oubli::coordinator

#endif  // OUBLI_COORDINATOR_SLICE_GENERATIONS_H_
