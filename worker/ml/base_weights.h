// Frozen base weights by config, shared by a worker's position trainers and
// its shard server: a worker that trains and serves a model holds (and
// reads from disk) that model's base once.
#ifndef OUBLI_WORKER_ML_BASE_WEIGHTS_H_
#define OUBLI_WORKER_ML_BASE_WEIGHTS_H_

#include <list>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/config.h"
#include "worker/ml/model.h"

namespace oubli::ml {

class BaseWeightsCache {
 public:
  // Keeps the bases of the last `capacity` configs (at least one).
  explicit BaseWeightsCache(int capacity = 4)
      : capacity_(capacity < 1 ? 1 : static_cast<size_t>(capacity)) {}

  // The base of `config` (LoadBaseState). FailedPrecondition: not loadable
  // on this worker (weights file missing or changed).
  absl::StatusOr<std::shared_ptr<const NamedTensors>> For(
      const ModelConfig& config);

 private:
  struct Entry {
    std::string fingerprint;  // ConfigFingerprint: what the weights depend on
    std::shared_ptr<const NamedTensors> tensors;
  };
  const size_t capacity_;
  absl::Mutex mu_;
  std::list<Entry> entries_ ABSL_GUARDED_BY(mu_);  // most recent first
};

}  // namespace oubli::ml

#endif  // OUBLI_WORKER_ML_BASE_WEIGHTS_H_
