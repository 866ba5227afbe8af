#include "coordinator/backoff_retry.h"

#include <algorithm>

namespace oubli::coordinator {

bool BackoffRetry::Until(const std::function<absl::Status()>& step) {
  while (true) {
    const absl::Status status = step();
    if (status.ok()) return true;
    note_(status);
    if (!pause_(wait_)) return false;
    wait_ = std::min(wait_ * 2, kMaxWait);
  }
}

}  // namespace oubli::coordinator
