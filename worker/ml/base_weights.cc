#include "worker/ml/base_weights.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "worker/ml/s3t_trainer.h"

namespace oubli::ml {

absl::StatusOr<std::shared_ptr<const NamedTensors>> BaseWeightsCache::For(
    const ModelConfig& config) {
  const std::string fingerprint = ConfigFingerprint(config);
  {
    absl::MutexLock lock(&mu_);
    for (auto it = entries_.begin(); it != entries_.end(); ++it) {
      if (it->fingerprint == fingerprint) {
        entries_.splice(entries_.begin(), entries_, it);
        return entries_.front().tensors;
      }
    }
  }
  // May read a weights file: not under the lock.
  absl::StatusOr<NamedTensors> loaded = LoadBaseState(config);
  if (!loaded.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("base weights not loadable on this worker: ",
                     loaded.status().message()));
  }
  auto tensors = std::make_shared<const NamedTensors>(*std::move(loaded));
  absl::MutexLock lock(&mu_);
  entries_.push_front({fingerprint, tensors});
  if (entries_.size() > capacity_) entries_.pop_back();
  return tensors;
}

}  // namespace oubli::ml
