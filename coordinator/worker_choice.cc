#include "coordinator/worker_choice.h"

#include <tuple>

namespace oubli::coordinator {

std::optional<size_t> ChooseTrainingWorker(
    absl::Span<const WorkerCandidate> candidates) {
  std::optional<size_t> best;
  for (size_t i = 0; i < candidates.size(); ++i) {
    if (!best.has_value()) {
      best = i;
      continue;
    }
    const WorkerCandidate& c = candidates[i];
    const WorkerCandidate& b = candidates[*best];
    // Fewer busy, then more cached, then the lower id.
    if (std::make_tuple(c.busy, -c.cached_slices, c.id) <
        std::make_tuple(b.busy, -b.cached_slices, b.id)) {
      best = i;
    }
  }
  return best;
}

}  // namespace oubli::coordinator
