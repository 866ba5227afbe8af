#include "coordinator/ingest_budget.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace oubli::coordinator {
namespace {

// How often a waiting admission looks at its call's cancellation.
constexpr absl::Duration kPoll = absl::Milliseconds(100);

}  // namespace

IngestBudget::Lease& IngestBudget::Lease::operator=(Lease&& other) noexcept {
  if (this != &other) {
    if (budget_ != nullptr) budget_->Release(bytes_);
    budget_ = std::exchange(other.budget_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

IngestBudget::Lease::~Lease() {
  if (budget_ != nullptr) budget_->Release(bytes_);
}

IngestBudget::IngestBudget(int64_t capacity_bytes)
    : capacity_(std::max<int64_t>(1, capacity_bytes)) {}

int64_t IngestBudget::in_use_bytes() const {
  absl::MutexLock lock(&mu_);
  return in_use_;
}

int IngestBudget::waiting() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(waiting_.size());
}

void IngestBudget::Release(int64_t bytes) {
  absl::MutexLock lock(&mu_);
  in_use_ -= bytes;
}

absl::StatusOr<IngestBudget::Lease> IngestBudget::Acquire(
    int64_t bytes, absl::Time deadline,
    const std::function<bool()>& cancelled) {
  if (bytes > capacity_) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "samples: a message of ", bytes,
        " bytes is larger than the coordinator's ingest budget of ", capacity_,
        " bytes (--ingest_memory_bytes); send the samples in smaller "
        "messages"));
  }
  const absl::Time give_up = std::min(deadline, absl::Now() + kMaxWait);
  absl::MutexLock lock(&mu_);
  const uint64_t ticket = next_ticket_++;
  waiting_.insert(ticket);
  auto admitted = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return *waiting_.begin() == ticket && in_use_ + bytes <= capacity_;
  };
  while (!admitted()) {
    const absl::Time now = absl::Now();
    if (now >= give_up || (cancelled && cancelled())) {
      waiting_.erase(ticket);
      if (cancelled && cancelled()) {
        return absl::CancelledError("samples: the stream was cancelled");
      }
      if (give_up == deadline) {
        return absl::DeadlineExceededError(
            "samples: the deadline passed while the message waited for "
            "room in the ingest budget");
      }
      return absl::ResourceExhaustedError(absl::StrCat(
          "samples: the coordinator is busy ingesting (", in_use_, " of ",
          capacity_, " bytes of ingest work in progress for ",
          absl::FormatDuration(kMaxWait),
          "); what this stream stored before is kept: retry the rest in a "
          "few seconds"));
    }
    mu_.AwaitWithDeadline(absl::Condition(&admitted),
                          std::min(give_up, now + kPoll));
  }
  waiting_.erase(ticket);
  in_use_ += bytes;
  return Lease(this, bytes);
}

}  // namespace oubli::coordinator
