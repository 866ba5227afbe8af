// ShardServing over the worker pool: shard predictions answered by workers
// through the cluster protocol (PredictShards, LoadShard). Shard s goes to
// the live worker s mod n of its environment (WorkerPool::PlaceShards), all
// workers asked in parallel; a worker lacking a checkpoint is sent it.
#ifndef OUBLI_COORDINATOR_WORKER_SERVING_H_
#define OUBLI_COORDINATOR_WORKER_SERVING_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "coordinator/remote_training.h"
#include "coordinator/worker_pool.h"

namespace oubli::coordinator {

class WorkerServing final : public ShardServing {
 public:
  explicit WorkerServing(std::shared_ptr<WorkerPool> pool);
  ~WorkerServing() override;
  WorkerServing(const WorkerServing&) = delete;
  WorkerServing& operator=(const WorkerServing&) = delete;

  int ServingCapacity(const std::string& environment) override;
  std::vector<ShardResult> Predict(const Query& query) override;
  absl::Status Sync(const Query& query) override;

 private:
  // Answers query.shards[indices] on `server`, loading the checkpoints it
  // lacks; fills those entries of `results`.
  void PredictOn(const std::shared_ptr<WorkerPool::Worker>& server,
                 const Query& query, const std::string& features,
                 const std::vector<size_t>& indices,
                 std::vector<ShardResult>* results);

  const std::shared_ptr<WorkerPool> pool_;
};

}  // namespace oubli::coordinator

#endif  // OUBLI_COORDINATOR_WORKER_SERVING_H_
