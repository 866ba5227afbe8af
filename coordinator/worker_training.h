// RemoteTrainer over the worker pool: S3T positions trained on workers
// through the cluster protocol (TrainPosition, slice uploads, DropSlices).
//
// A position goes to the least busy live worker of the right numeric
// environment; if that worker dies (connection lost, heartbeats stop) or
// fails transiently, the position moves to another, and with none left
// TrainPosition says Unavailable so the engine trains it itself. Training
// is deterministic, so where a position ran never changes its bits.
#ifndef OUBLI_COORDINATOR_WORKER_TRAINING_H_
#define OUBLI_COORDINATOR_WORKER_TRAINING_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "coordinator/remote_training.h"
#include "coordinator/worker_pool.h"

namespace grpc {
class Status;
}  // namespace grpc

namespace oubli::coordinator {

class WorkerTraining final : public RemoteTrainer {
 public:
  explicit WorkerTraining(std::shared_ptr<WorkerPool> pool);
  ~WorkerTraining() override;
  WorkerTraining(const WorkerTraining&) = delete;
  WorkerTraining& operator=(const WorkerTraining&) = delete;

  int Capacity(const std::string& environment) override;
  absl::StatusOr<RemoteResult> TrainPosition(
      const RemotePosition& position,
      const std::function<bool()>& cancelled) override;
  absl::Status DropStaleSlices(const std::string& model_id,
                               const absl::flat_hash_set<std::string>& keep,
                               bool reopened) override;

  // Slice bytes workers have accepted so far.
  int64_t slice_bytes_sent() const { return slice_bytes_sent_.load(); }

 private:
  class AttemptWatch;  // cancels one training attempt's calls

  // Streams `slice` into `worker`'s slice cache under the current epoch;
  // `watch` cancels it with the attempt.
  grpc::Status UploadSlice(WorkerPool::Worker& worker,
                           const std::string& model_id,
                           const storage::EncodedSlice& slice,
                           AttemptWatch& watch);

  const std::shared_ptr<WorkerPool> pool_;
  std::atomic<int64_t> slice_bytes_sent_{0};
};

}  // namespace oubli::coordinator

#endif  // OUBLI_COORDINATOR_WORKER_TRAINING_H_
