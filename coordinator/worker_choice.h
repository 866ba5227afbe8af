// Which live worker trains the next position.
//
// The least busy one; among those, the one already sent most of the
// position's slices (then the lowest id), so a shard's data stays where it
// was sent whenever that costs no waiting. Letting a busier worker with
// the slices win (a slack of one position) sent fewer bytes with two
// workers, but with one retrain loop per worker it could give both
// positions in flight to one worker and leave the other idle: load wins.
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

// Index into `candidates` of the chosen worker; nullopt when empty.
std::optional<size_t> ChooseTrainingWorker(
    absl::Span<const WorkerCandidate> candidates);

}  // namespace oubli::coordinator

#endif  // OUBLI_COORDINATOR_WORKER_CHOICE_H_
