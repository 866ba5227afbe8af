#include "common/serving_gate.h"

#include <gtest/gtest.h>

#include <atomic>
#include <optional>
#include <thread>
#include <utility>

namespace oubli {
namespace {

TEST(ServingGateTest, TrainingGoesOnWhenNothingIsServed) {
  ServingGate gate;
  EXPECT_EQ(gate.YieldToServing(absl::InfiniteDuration()),
            absl::ZeroDuration());
  EXPECT_EQ(gate.yields(), 0);
}

TEST(ServingGateTest, ScopesCountRequestsInService) {
  ServingGate gate;
  {
    ServingGate::Serving first = gate.Serve();
    ServingGate::Serving second = gate.Serve();
    EXPECT_EQ(gate.in_service(), 2);
    ServingGate::Serving moved(std::move(second));
    EXPECT_EQ(gate.in_service(), 2);
  }
  EXPECT_EQ(gate.in_service(), 0);
}

// Training waits while a request is in service and goes on once it ends:
// the waiting thread can only see `released` false if it did not wait.
TEST(ServingGateTest, TrainingWaitsUntilTheRequestEnds) {
  ServingGate gate;
  std::optional<ServingGate::Serving> request(gate.Serve());
  std::atomic<bool> released{false};
  std::atomic<bool> saw_released{false};
  std::thread training([&] {
    gate.YieldToServing(absl::InfiniteDuration());
    saw_released = released.load();
  });
  while (gate.yields() == 0) std::this_thread::yield();
  released = true;
  request.reset();
  training.join();
  EXPECT_TRUE(saw_released);
  EXPECT_EQ(gate.yields(), 1);
}

// A request that never ends delays each batch by at most max_wait; it does
// not stop training (this test would hang otherwise).
TEST(ServingGateTest, TrainingIsNeverStoppedForGood) {
  ServingGate gate;
  ServingGate::Serving endless = gate.Serve();
  for (int batch = 0; batch < 3; ++batch) {
    gate.YieldToServing(absl::Milliseconds(1));
  }
  EXPECT_EQ(gate.yields(), 3);
  EXPECT_EQ(gate.in_service(), 1);
}

TEST(ServingGateTest, ADisabledGateNeverHoldsTrainingBack) {
  ServingGate gate;
  gate.set_enabled(false);
  ServingGate::Serving request = gate.Serve();
  EXPECT_EQ(gate.YieldToServing(absl::InfiniteDuration()),
            absl::ZeroDuration());
  EXPECT_EQ(gate.yields(), 0);
}

TEST(ServingGateTest, OneGatePerProcess) {
  EXPECT_EQ(&ServingGate::Process(), &ServingGate::Process());
}

}  // namespace
}  // namespace oubli
