#include "coordinator/in_flight_drain.h"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <thread>

#include "absl/time/clock.h"

namespace oubli::coordinator {
namespace {

TEST(InFlightDrainTest, WaitsForAnOperationThatEnteredEarlier) {
  InFlightDrain drain;
  auto earlier = std::make_unique<InFlightDrain::Scope>(&drain);
  std::atomic<bool> waited{false};
  std::thread waiter([&] {
    drain.WaitForEarlier();
    waited = true;
  });
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_FALSE(waited.load()) << "returned while an earlier operation ran";
  earlier.reset();
  waiter.join();
  EXPECT_TRUE(waited.load());
}

TEST(InFlightDrainTest, DoesNotWaitForOperationsThatEnterLater) {
  InFlightDrain drain;
  auto earlier = std::make_unique<InFlightDrain::Scope>(&drain);
  const uint64_t barrier = drain.OpenEpoch();
  // Still running during the wait below, which must not wait for it.
  auto later = std::make_unique<InFlightDrain::Scope>(&drain);
  earlier.reset();
  drain.WaitBefore(barrier);
  // A wait that starts now does wait for it.
  std::atomic<bool> waited{false};
  std::thread waiter([&] {
    drain.WaitForEarlier();
    waited = true;
  });
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_FALSE(waited.load());
  later.reset();
  waiter.join();
  EXPECT_TRUE(waited.load());
}

}  // namespace
}  // namespace oubli::coordinator
