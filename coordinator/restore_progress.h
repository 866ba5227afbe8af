// When a deletion may be called RESTORED: every sequence of every shard it
// was applied to has been stored whole (every prefix's checkpoint) at or
// after the shard generation the deletion left it at. Sequences need not
// be whole at the same moment: each deletion cuts every sequence of its
// shard, so under a stream of deletions a shard is seldom whole at once,
// while each of its sequences is retrained whole between deletions, from
// data without the deletion's samples. A deletion is therefore never held
// back by the ones that came after it.
//
// Plain data, not thread-safe: the engine calls it under its mutex.
#ifndef OUBLI_COORDINATOR_RESTORE_PROGRESS_H_
#define OUBLI_COORDINATOR_RESTORE_PROGRESS_H_

#include <cstdint>
#include <optional>
#include <vector>

namespace oubli::coordinator {

class RestoreProgress {
 public:
  RestoreProgress(int shards, int sequences);

  // `sequence` of `shard` is whole at the shard's `generation`. Returns
  // whether that is news (a deletion may have become RESTORED).
  bool MarkWhole(int shard, int sequence, uint64_t generation);

  // Whether a deletion that left `shard` at `applied_at` is restored there.
  bool Restored(int shard, uint64_t applied_at) const;

 private:
  // whole_at_[shard][sequence]: the latest generation at which the
  // sequence was whole; nullopt: not since the engine opened.
  std::vector<std::vector<std::optional<uint64_t>>> whole_at_;
};

}  // namespace oubli::coordinator

#endif  // OUBLI_COORDINATOR_RESTORE_PROGRESS_H_
