// CheckpointReplicas over the worker pool: erasure-coded checkpoint chunks
// on the workers that hold chunks (a --data_dir), through the cluster
// protocol (PutChunk, GetChunk, DeleteChunks). Holders are named by worker
// name, so a worker that restarts with the same --name and --data_dir
// serves its chunks again; one chunk per holder, so every worker lost is a
// single erasure.
#ifndef OUBLI_COORDINATOR_WORKER_CHUNKS_H_
#define OUBLI_COORDINATOR_WORKER_CHUNKS_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/config.h"
#include "coordinator/remote_training.h"
#include "coordinator/worker_pool.h"
#include "storage/erasure_code.h"

namespace grpc {
class Status;
}  // namespace grpc

namespace oubli::coordinator {

class WorkerChunks final : public CheckpointReplicas {
 public:
  explicit WorkerChunks(std::shared_ptr<WorkerPool> pool);
  ~WorkerChunks() override;
  WorkerChunks(const WorkerChunks&) = delete;
  WorkerChunks& operator=(const WorkerChunks&) = delete;

  absl::Status Protect(
      const std::string& key, absl::string_view bytes,
      const ErasureCodeConfig& code,
      const std::function<absl::Status(const std::string&)>& persist) override;
  bool CanProtect(const ErasureCodeConfig& code) override;
  absl::StatusOr<std::string> Restore(const std::string& key,
                                      const std::string& manifest) override;
  absl::StatusOr<int> Repair(
      const std::string& key, const std::string& manifest,
      const std::function<absl::Status(const std::string&)>& persist) override;
  absl::Status Forget(const std::string& key,
                      const std::string& manifest) override;

 private:
  // Fetches chunks of `key` from live holders, skipping `skip` indices,
  // until `needed` pass their CRC. Fills `fetched`/`views` (k+m entries);
  // returns how many are good and appends what failed to `problems`.
  int FetchChunks(const std::string& key,
                  const std::vector<std::string>& holders,
                  const std::vector<uint32_t>& crcs, uint64_t chunk_size,
                  int needed, const std::vector<int>& skip, bool wait_at_start,
                  std::vector<std::string>* fetched,
                  std::vector<std::optional<storage::ChunkView>>* views,
                  std::vector<std::string>* problems);
  // Stores `bytes` (CRC32C `crc32c`) as chunk `index` of `key`.
  grpc::Status PutChunk(const WorkerPool::Worker& holder,
                        const std::string& key, int index,
                        absl::string_view bytes, uint32_t crc32c);

  const std::shared_ptr<WorkerPool> pool_;
};

}  // namespace oubli::coordinator

#endif  // OUBLI_COORDINATOR_WORKER_CHUNKS_H_
