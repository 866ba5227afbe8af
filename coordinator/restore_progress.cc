#include "coordinator/restore_progress.h"

namespace oubli::coordinator {

RestoreProgress::RestoreProgress(int shards, int sequences)
    : whole_at_(shards, std::vector<std::optional<uint64_t>>(sequences)) {}

bool RestoreProgress::MarkWhole(int shard, int sequence, uint64_t generation) {
  std::optional<uint64_t>& whole_at = whole_at_[shard][sequence];
  if (whole_at.has_value() && *whole_at >= generation) return false;
  whole_at = generation;
  return true;
}

bool RestoreProgress::Restored(int shard, uint64_t applied_at) const {
  for (const std::optional<uint64_t>& whole_at : whole_at_[shard]) {
    if (!whole_at.has_value() || *whole_at < applied_at) return false;
  }
  return true;
}

}  // namespace oubli::coordinator
