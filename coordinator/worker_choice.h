// Which live worker trains the next position.
//
// Load first, then locality: a worker may hold at most kBusySlack more
// positions than the least busy one; among those, the one already sent
// most of the position's slices wins (lower busy count, then id, on ties).
// Pure least-busy choice alternated a shard's positions between workers,
// so its slices crossed the wire once per worker (1.16 bytes sent per
// slice byte with 2 workers); one position of slack keeps a shard where
// its data is while queues stay within one position of each other.
//
// Pure function of its arguments.
#ifndef OUBLI_COORDINATOR_WORKER_CHOICE_H_
#define OUBLI_COORDINATOR_WORKER_CHOICE_H_

#include <optional>
#include <string>

#include "absl/types/span.h"

namespace oubli::coordinator {

struct WorkerCandidate {
  std::string id;
  int busy = 0;           // positions it trains or queues now
  int cached_slices = 0;  // of the position's slices, how many it was sent
};

inline constexpr int kBusySlack = 1;

// Index into `candidates` of the chosen worker; nullopt when empty.
std::optional<size_t> ChooseTrainingWorker(
    absl::Span<const WorkerCandidate> candidates);

}  // namespace oubli::coordinator

#endif  // OUBLI_COORDINATOR_WORKER_CHOICE_H_
