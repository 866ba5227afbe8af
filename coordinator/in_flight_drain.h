// Waits for the operations already running to finish without holding back
// the ones that start meanwhile: each operation enters an epoch, and
// WaitForEarlier opens a new epoch and waits until the older ones are
// empty. A reader-writer lock would do the waiting too, but a writer
// waiting for it blocks every new reader behind the slowest old one.
//
// The purge pass uses it against Predict: a Predict that read a checkpoint
// before the pass destroyed it may still hand it to a worker, so the pass
// waits for such Predicts before it syncs the workers' serving copies;
// later Predicts find the checkpoint gone.
#ifndef OUBLI_COORDINATOR_IN_FLIGHT_DRAIN_H_
#define OUBLI_COORDINATOR_IN_FLIGHT_DRAIN_H_

#include <cstdint>
#include <map>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace oubli::coordinator {

class InFlightDrain {
 public:
  // One operation, from construction to destruction.
  class Scope {
   public:
    explicit Scope(InFlightDrain* drain) : drain_(drain) {
      epoch_ = drain_->Enter();
    }
    ~Scope() { drain_->Exit(epoch_); }
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    InFlightDrain* const drain_;
    uint64_t epoch_;
  };

  // Returns once every operation that entered before the call has left.
  void WaitForEarlier() ABSL_LOCKS_EXCLUDED(mu_) { WaitBefore(OpenEpoch()); }

  // WaitForEarlier in two steps: operations that enter after OpenEpoch are
  // not waited for by WaitBefore(its result).
  uint64_t OpenEpoch() ABSL_LOCKS_EXCLUDED(mu_);
  void WaitBefore(uint64_t barrier) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  uint64_t Enter() ABSL_LOCKS_EXCLUDED(mu_);
  void Exit(uint64_t epoch) ABSL_LOCKS_EXCLUDED(mu_);

  absl::Mutex mu_;
  uint64_t epoch_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<uint64_t, int> running_ ABSL_GUARDED_BY(mu_);  // epoch -> count
};

}  // namespace oubli::coordinator

#endif  // OUBLI_COORDINATOR_IN_FLIGHT_DRAIN_H_
