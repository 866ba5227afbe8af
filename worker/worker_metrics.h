// Prometheus metrics of one oubli-worker (prometheus-cpp behind a pimpl).
// Served on the worker's --metrics_listen by common/metrics_server.h.
#ifndef OUBLI_WORKER_WORKER_METRICS_H_
#define OUBLI_WORKER_WORKER_METRICS_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/time/time.h"

namespace oubli::worker {

class WorkerMetrics {
 public:
  WorkerMetrics();
  ~WorkerMetrics();
  WorkerMetrics(const WorkerMetrics&) = delete;
  WorkerMetrics& operator=(const WorkerMetrics&) = delete;

  // One TrainPosition call; `code` is its gRPC status code name.
  void PositionDone(const std::string& code, int64_t samples, int64_t steps,
                    absl::Duration elapsed);
  void ChunkStored(int64_t bytes);
  void ChunksDestroyed(int64_t chunks);
  void SetRegistered(bool registered);
  // Whether the coordinator's numeric environment equals this worker's
  // (it gets no training or Predict otherwise).
  void SetEnvironmentMatches(bool matches);
  // One PredictShards call: its gRPC code name, shards answered, and the
  // serving checkpoints held in memory afterwards.
  void ShardsPredicted(const std::string& code, int64_t shards, int loaded);
  // One LoadShard that succeeded.
  void ShardLoaded(int64_t bytes, int loaded);
  void SetServingCheckpoints(int loaded);
  // Slice cache: a TrainPosition's slices found or missing, a slice
  // received, slice files read back (verified and promoted to memory, or
  // corrupt and shredded), and what the cache holds afterwards in memory
  // and on disk.
  void SlicesLooked(int64_t hits, int64_t misses);
  void SliceReceived(int64_t bytes);
  void SliceFilesRead(int64_t promoted, int64_t corrupt);
  void SetSliceCache(int64_t slices, int64_t bytes, int64_t disk_slices,
                     int64_t disk_bytes);

  // Text exposition format 0.0.4.
  std::string Serialize() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace oubli::worker

#endif  // OUBLI_WORKER_WORKER_METRICS_H_
