// BackoffRetry, the retry loop of a model deletion's steps: what it waits,
// what it reports, and when it gives up.
#include "coordinator/backoff_retry.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace oubli::coordinator {
namespace {

using ::testing::ElementsAre;

// Records the waits asked for and the failures noted; the pause at index
// `stop_at` (if any) says the caller is stopping.
struct Recorder {
  std::vector<absl::Duration> waits;
  std::vector<std::string> notes;
  int stop_at = -1;

  BackoffRetry Retry() {
    return BackoffRetry(
        [this](absl::Duration wait) {
          waits.push_back(wait);
          return static_cast<int>(waits.size()) - 1 != stop_at;
        },
        [this](const absl::Status& why) {
          notes.push_back(std::string(why.message()));
        });
  }
};

// A step that fails with "failure i" for i < failures, then succeeds.
struct FlakyStep {
  int failures = 0;
  int calls = 0;
  absl::Status operator()() {
    const int call = calls++;
    if (call < failures) {
      return absl::UnavailableError("failure " + std::to_string(call));
    }
    return absl::OkStatus();
  }
};

TEST(BackoffRetryTest, AStepThatSucceedsRunsOnceWithoutWaiting) {
  Recorder recorder;
  BackoffRetry retry = recorder.Retry();
  FlakyStep step;
  EXPECT_TRUE(retry.Until([&] { return step(); }));
  EXPECT_EQ(step.calls, 1);
  EXPECT_TRUE(recorder.waits.empty());
  EXPECT_TRUE(recorder.notes.empty());
}

TEST(BackoffRetryTest, EachFailureIsNotedThenWaitedOutLongerEachTime) {
  Recorder recorder;
  BackoffRetry retry = recorder.Retry();
  FlakyStep step{.failures = 3};
  EXPECT_TRUE(retry.Until([&] { return step(); }));
  EXPECT_EQ(step.calls, 4);
  EXPECT_THAT(recorder.notes,
              ElementsAre("failure 0", "failure 1", "failure 2"));
  EXPECT_THAT(recorder.waits, ElementsAre(absl::Seconds(1), absl::Seconds(2),
                                          absl::Seconds(4)));
}

TEST(BackoffRetryTest, TheWaitStopsGrowingAtItsCap) {
  Recorder recorder;
  BackoffRetry retry = recorder.Retry();
  FlakyStep step{.failures = 7};
  EXPECT_TRUE(retry.Until([&] { return step(); }));
  EXPECT_THAT(recorder.waits,
              ElementsAre(absl::Seconds(1), absl::Seconds(2), absl::Seconds(4),
                          absl::Seconds(8), absl::Seconds(16),
                          absl::Seconds(30), absl::Seconds(30)));
}

// The registry stopping refuses further attempts: the step that just
// failed is not run again, and Until says so.
TEST(BackoffRetryTest, StoppingDuringAWaitEndsTheRetries) {
  Recorder recorder;
  recorder.stop_at = 1;  // the second pause
  BackoffRetry retry = recorder.Retry();
  FlakyStep step{.failures = 5};
  EXPECT_FALSE(retry.Until([&] { return step(); }));
  EXPECT_EQ(step.calls, 2);
  EXPECT_THAT(recorder.notes, ElementsAre("failure 0", "failure 1"));
  EXPECT_EQ(recorder.waits.size(), 2u);
}

// A later step of the same deletion starts from the wait the earlier one
// reached, not from the first wait.
TEST(BackoffRetryTest, TheWaitCarriesOverToTheNextStep) {
  Recorder recorder;
  BackoffRetry retry = recorder.Retry();
  FlakyStep first{.failures = 2};
  ASSERT_TRUE(retry.Until([&] { return first(); }));
  EXPECT_EQ(retry.next_wait(), absl::Seconds(4));
  FlakyStep second{.failures = 1};
  ASSERT_TRUE(retry.Until([&] { return second(); }));
  EXPECT_THAT(recorder.waits, ElementsAre(absl::Seconds(1), absl::Seconds(2),
                                          absl::Seconds(4)));
}

}  // namespace
}  // namespace oubli::coordinator
