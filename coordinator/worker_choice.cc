#include "coordinator/worker_choice.h"

#include <algorithm>

namespace oubli::coordinator {

std::optional<size_t> ChooseTrainingWorker(
    absl::Span<const WorkerCandidate> candidates) {
  if (candidates.empty()) return std::nullopt;
  int least_busy = candidates[0].busy;
  for (const WorkerCandidate& c : candidates) {
    least_busy = std::min(least_busy, c.busy);
  }
  std::optional<size_t> best;
  for (size_t i = 0; i < candidates.size(); ++i) {
    const WorkerCandidate& c = candidates[i];
    if (c.busy > least_busy + kBusySlack) continue;
    if (!best.has_value()) {
      best = i;
      continue;
    }
    const WorkerCandidate& b = candidates[*best];
    if (c.cached_slices != b.cached_slices) {
      if (c.cached_slices > b.cached_slices) best = i;
    } else if (c.busy != b.busy) {
      if (c.busy < b.busy) best = i;
    } else if (c.id < b.id) {
      best = i;
    }
  }
  return best;
}

}  // namespace oubli::coordinator
