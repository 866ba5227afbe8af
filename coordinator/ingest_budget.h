// Backpressure on ingest beyond gRPC's flow control: the bytes of received
// samples the coordinator works on at once, across every IngestSamples
// stream and model, stay within a budget. A stream whose next message does
// not fit waits (reading nothing more, so gRPC's flow control stops its
// client) until earlier work finishes; streams are admitted in arrival
// order, so a large message is not overtaken for ever by small ones.
// Waiting is bounded: past kMaxWait, or when the message could never fit,
// the caller is told to retry (ResourceExhausted).
//
// No gRPC here: the service polls its call's cancellation through
// `cancelled`. Thread-safe.
#ifndef OUBLI_COORDINATOR_INGEST_BUDGET_H_
#define OUBLI_COORDINATOR_INGEST_BUDGET_H_

#include <cstdint>
#include <functional>
#include <set>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace oubli::coordinator {

class IngestBudget {
 public:
  // 256 MiB: four messages of the default 64 MiB gRPC limit.
  static constexpr int64_t kDefaultBytes = int64_t{256} << 20;
  // The longest a message waits for room before its stream is told to
  // retry: ingest work that takes longer means the coordinator is
  // overloaded, and the client is better told so.
  static constexpr absl::Duration kMaxWait = absl::Seconds(60);

  // `capacity_bytes` >= 1.
  explicit IngestBudget(int64_t capacity_bytes);
  IngestBudget(const IngestBudget&) = delete;
  IngestBudget& operator=(const IngestBudget&) = delete;

  // Room for `bytes` until destroyed (movable).
  class Lease {
   public:
    Lease() = default;
    Lease(Lease&& other) noexcept { *this = std::move(other); }
    Lease& operator=(Lease&& other) noexcept;
    ~Lease();

   private:
    friend class IngestBudget;
    Lease(IngestBudget* budget, int64_t bytes)
        : budget_(budget), bytes_(bytes) {}
    IngestBudget* budget_ = nullptr;
    int64_t bytes_ = 0;
  };

  // Waits until `bytes` fit beside what earlier admissions hold.
  // ResourceExhausted: more bytes than the whole budget (at once), or no
  // room within kMaxWait (the message says to retry); DeadlineExceeded: no
  // room by `deadline`; Cancelled: `cancelled` turned true (polled).
  absl::StatusOr<Lease> Acquire(int64_t bytes, absl::Time deadline,
                                const std::function<bool()>& cancelled)
      ABSL_LOCKS_EXCLUDED(mu_);

  int64_t capacity_bytes() const { return capacity_; }
  int64_t in_use_bytes() const ABSL_LOCKS_EXCLUDED(mu_);
  // Admissions waiting now.
  int waiting() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void Release(int64_t bytes) ABSL_LOCKS_EXCLUDED(mu_);

  const int64_t capacity_;
  mutable absl::Mutex mu_;
  int64_t in_use_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t next_ticket_ ABSL_GUARDED_BY(mu_) = 0;
  std::set<uint64_t> waiting_ ABSL_GUARDED_BY(mu_);  // tickets, oldest first
};

}  // namespace oubli::coordinator

#endif  // OUBLI_COORDINATOR_INGEST_BUDGET_H_
