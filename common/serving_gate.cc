#include "common/serving_gate.h"

#include "absl/time/clock.h"

namespace oubli {

ServingGate& ServingGate::Process() {
  static ServingGate* const gate = new ServingGate();
  return *gate;
}

ServingGate::Serving::Serving(ServingGate* gate) : gate_(gate) {
  if (gate_ != nullptr) gate_->Enter();
}

ServingGate::Serving::Serving(Serving&& other) noexcept : gate_(other.gate_) {
  other.gate_ = nullptr;
}

ServingGate::Serving::~Serving() {
  if (gate_ != nullptr) gate_->Leave();
}

void ServingGate::Enter() {
  absl::MutexLock lock(&mu_);
  in_service_.fetch_add(1);
}

void ServingGate::Leave() {
  absl::MutexLock lock(&mu_);
  in_service_.fetch_sub(1);
}

absl::Duration ServingGate::YieldToServing(absl::Duration max_wait) {
  if (!enabled_.load() || in_service_.load() == 0) {
    return absl::ZeroDuration();
  }
  const absl::Time start = absl::Now();
  yields_.fetch_add(1);
  absl::MutexLock lock(&mu_);
  auto idle = [this] { return in_service_.load() == 0; };
  mu_.AwaitWithTimeout(absl::Condition(&idle), max_wait);
  return absl::Now() - start;
}

}  // namespace oubli
