#include "coordinator/engine_types.h"

#include <algorithm>

namespace oubli::coordinator {

double SliceImbalance(absl::Span<const ShardStatus> shards) {
  int64_t total = 0, largest = 0, cells = 0;
  for (const ShardStatus& shard : shards) {
    for (int64_t n : shard.slice_samples) {
      total += n;
      largest = std::max(largest, n);
      ++cells;
    }
  }
  if (total == 0) return 0;
  return static_cast<double>(largest) * static_cast<double>(cells) /
         static_cast<double>(total);
}

const char* DeletionStageName(DeletionStage stage) {
  switch (stage) {
    case DeletionStage::kAccepted:
      return "ACCEPTED";
    case DeletionStage::kForgotten:
      return "FORGOTTEN";
    case DeletionStage::kPurged:
      return "PURGED";
    case DeletionStage::kRestored:
      return "RESTORED";
  }
  return "UNKNOWN";
}

}  // namespace oubli::coordinator
