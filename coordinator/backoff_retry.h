// Retrying one step until it succeeds, waiting longer after each failure:
// how a model deletion (coordinator/model_registry) gets past a worker that
// is down or a disk that refuses a write, without giving up and without
// spinning. Pure logic: how to wait and how to report a failure are given,
// so the registry can cut a wait short (RetryPurgesNow) or stop it.
#ifndef OUBLI_COORDINATOR_BACKOFF_RETRY_H_
#define OUBLI_COORDINATOR_BACKOFF_RETRY_H_

#include <functional>
#include <utility>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace oubli::coordinator {

class BackoffRetry {
 public:
  // Waits `wait`; false when the caller is stopping (no further attempt).
  using Pause = std::function<bool(absl::Duration wait)>;
  // Reports a failed attempt, which will be retried.
  using Note = std::function<void(const absl::Status& why)>;

  static constexpr absl::Duration kFirstWait = absl::Seconds(1);
  static constexpr absl::Duration kMaxWait = absl::Seconds(30);

  BackoffRetry(Pause pause, Note note)
      : pause_(std::move(pause)), note_(std::move(note)) {}

  // Runs `step` until it returns OK: after each failure, notes it and
  // pauses, the wait doubling from kFirstWait up to kMaxWait. The wait
  // carries over from one Until to the next, so a later step of the same
  // deletion does not hammer what just failed. True once `step` succeeded;
  // false when a pause says the caller is stopping (`step` then failed
  // last and is not run again).
  bool Until(const std::function<absl::Status()>& step);

  // The wait after the next failure.
  absl::Duration next_wait() const { return wait_; }

 private:
  const Pause pause_;
  const Note note_;
  absl::Duration wait_ = kFirstWait;
};

}  // namespace oubli::coordinator

#endif  // OUBLI_COORDINATOR_BACKOFF_RETRY_H_
