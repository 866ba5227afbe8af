// Serving ahead of training on a machine with few cores.
//
// A Predict competes for the same cores as the training loops, and on a
// 2-core machine three runnable threads cost a request a third of its CPU
// and a scheduler slice of queueing: its p99 doubles under retraining. The
// gate lets requests go first: a request being answered holds a Serving
// scope; training calls YieldToServing between batches and waits while any
// scope is held, but at most `max_wait` per batch, so a steady stream of
// requests slows training and never stops it. Training's results do not
// depend on when it runs, so the gate changes timing only, never bits.
//
// One gate per process (cores are per process): Process(). Thread-safe.
#ifndef OUBLI_COMMON_SERVING_GATE_H_
#define OUBLI_COMMON_SERVING_GATE_H_

#include <atomic>
#include <cstdint>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace oubli {

class ServingGate {
 public:
  // How long one batch of training waits at most for requests to finish:
  // long enough for a Predict of the served ensemble on this machine (a
  // few ms), short enough that training under constant load keeps about
  // one batch per wait.
  static constexpr absl::Duration kDefaultMaxWait = absl::Milliseconds(20);

  ServingGate() = default;
  ServingGate(const ServingGate&) = delete;
  ServingGate& operator=(const ServingGate&) = delete;

  // The gate shared by everything in this process.
  static ServingGate& Process();

  // Marks one request in service for its lifetime. Movable, not copyable.
  class Serving {
   public:
    explicit Serving(ServingGate* gate);
    Serving(Serving&& other) noexcept;
    Serving& operator=(Serving&&) = delete;
    Serving(const Serving&) = delete;
    Serving& operator=(const Serving&) = delete;
    ~Serving();

   private:
    ServingGate* gate_;
  };
  Serving Serve() { return Serving(this); }

  // Returns at once when no request is in service; otherwise when none is,
  // or after `max_wait`. Returns how long it waited.
  absl::Duration YieldToServing(absl::Duration max_wait = kDefaultMaxWait);

  // Off: YieldToServing never waits (operators may prefer training
  // throughput; benchmarks compare both in one build). On by default.
  void set_enabled(bool enabled) { enabled_.store(enabled); }
  bool enabled() const { return enabled_.load(); }

  int64_t in_service() const { return in_service_.load(); }
  // Calls that found a request in service (and so waited): for tests.
  int64_t yields() const { return yields_.load(); }

 private:
  void Enter();
  void Leave();

  // Read without the mutex on the training side's fast path; changed under
  // it so that waiters see every change.
  std::atomic<int64_t> in_service_{0};
  std::atomic<int64_t> yields_{0};
  std::atomic<bool> enabled_{true};
  absl::Mutex mu_;
};

}  // namespace oubli

#endif  // OUBLI_COMMON_SERVING_GATE_H_
