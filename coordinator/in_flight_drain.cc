#include "coordinator/in_flight_drain.h"

namespace oubli::coordinator {

uint64_t InFlightDrain::Enter() {
  absl::MutexLock lock(&mu_);
  ++running_[epoch_];
  return epoch_;
}

void InFlightDrain::Exit(uint64_t epoch) {
  absl::MutexLock lock(&mu_);
  auto it = running_.find(epoch);
  if (--it->second == 0) running_.erase(it);
}

uint64_t InFlightDrain::OpenEpoch() {
  absl::MutexLock lock(&mu_);
  return ++epoch_;
}

void InFlightDrain::WaitBefore(uint64_t barrier) {
  absl::MutexLock lock(&mu_);
  auto drained = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return running_.empty() || running_.begin()->first >= barrier;
  };
  mu_.Await(absl::Condition(&drained));
}

}  // namespace oubli::coordinator
