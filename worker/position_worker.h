// Training one S3T position from a self-contained request: what a worker
// process does for the coordinator (worker/worker_service.h is its gRPC
// adapter). No torch in this header.
#ifndef OUBLI_WORKER_POSITION_WORKER_H_
#define OUBLI_WORKER_POSITION_WORKER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/config.h"
#include "common/worker_requests.h"
#include "storage/encoded_slice.h"

namespace oubli::ml {
class BaseWeightsCache;  // worker/ml/base_weights.h (torch inside)
}  // namespace oubli::ml

namespace oubli::worker {

// A BaseWeightsCache for callers that must not include torch.
std::shared_ptr<ml::BaseWeightsCache> NewBaseWeightsCache(int capacity = 4);

// The config of a request from the coordinator, checked: FailedPrecondition
// when `environment` is not this process's NumericEnvironment() or the
// config is not understood here (another release), so the coordinator
// sends the work elsewhere instead of blaming the request.
absl::StatusOr<ModelConfig> ParseCoordinatorConfig(
    absl::string_view config_text, absl::string_view environment);

struct PositionResult {
  std::string checkpoint;  // deterministic safetensors
  int64_t samples = 0;     // sample visits
  int64_t steps = 0;
};

class PositionWorker {
 public:
  // Keeps trainers (module, optimizer) for the last few configs; base
  // weights come from `bases` (shared with the worker's shard server);
  // nullptr: a cache of its own.
  explicit PositionWorker(
      int cached_trainers = 4,
      std::shared_ptr<ml::BaseWeightsCache> bases = nullptr);
  ~PositionWorker();
  PositionWorker(const PositionWorker&) = delete;
  PositionWorker& operator=(const PositionWorker&) = delete;

  // FailedPrecondition: other numeric environment, or base weights not
  // loadable here. InvalidArgument: malformed config, data, prefix or
  // parent. Cancelled once `cancelled` (polled every batch) says so.
  absl::StatusOr<PositionResult> Train(const PositionRequest& request,
                                       const std::function<bool()>& cancelled);

 private:
  struct Trainers;
  std::unique_ptr<Trainers> trainers_;
};

}  // namespace oubli::worker

#endif  // OUBLI_WORKER_POSITION_WORKER_H_
