// The seam between the engine and training on other processes. The engine
// hands a position to a RemoteTrainer when it has one; coordinator/
// worker_pool implements it over the cluster protocol. No gRPC and no
// torch here.
#ifndef OUBLI_COORDINATOR_REMOTE_TRAINING_H_
#define OUBLI_COORDINATOR_REMOTE_TRAINING_H_

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "worker/position_worker.h"

namespace oubli::coordinator {

// One S3T position to train, self-contained: a worker needs nothing else.
using RemotePosition = worker::PositionRequest;

struct RemoteResult {
  std::string checkpoint;
  int64_t samples = 0;
  int64_t steps = 0;
  std::string worker;  // who trained it, for logs
};

class RemoteTrainer {
 public:
  virtual ~RemoteTrainer() = default;

  // Live workers able to train for `environment`: how many positions may
  // usefully run at once. 0 means train locally.
  virtual int Capacity(const std::string& environment) = 0;

  // Trains on some live worker, moving to another if one dies or fails
  // transiently. Unavailable: no worker could take it (train locally).
  // Cancelled once `cancelled` returns true (polled). Other errors are the
  // position's own (InvalidArgument: corrupt parent) and are final.
  virtual absl::StatusOr<RemoteResult> TrainPosition(
      const RemotePosition& position,
      const std::function<bool()>& cancelled) = 0;
};

}  // namespace oubli::coordinator

#endif  // OUBLI_COORDINATOR_REMOTE_TRAINING_H_
