#include "coordinator/ingest_budget.h"

#include <gtest/gtest.h>

#include <atomic>
#include <optional>
#include <thread>

#include "gmock/gmock.h"

namespace oubli::coordinator {
namespace {

using ::testing::HasSubstr;

const absl::Time kNoDeadline = absl::InfiniteFuture();
const auto kNeverCancelled = [] { return false; };

// Waits until `n` admissions wait in `budget` (no timing assumed: the
// waiting thread registers itself before it blocks).
void AwaitWaiting(const IngestBudget& budget, int n) {
  while (budget.waiting() != n) std::this_thread::yield();
}

TEST(IngestBudgetTest, AMessageWaitsUntilEarlierWorkIsDone) {
  IngestBudget budget(100);
  std::optional<absl::StatusOr<IngestBudget::Lease>> first =
      budget.Acquire(60, kNoDeadline, kNeverCancelled);
  ASSERT_TRUE(first->ok());
  std::atomic<bool> admitted{false};
  std::thread second([&] {
    auto lease = budget.Acquire(60, kNoDeadline, kNeverCancelled);
    EXPECT_TRUE(lease.ok()) << lease.status();
    admitted = true;
  });
  AwaitWaiting(budget, 1);
  EXPECT_FALSE(admitted.load());
  EXPECT_EQ(budget.in_use_bytes(), 60);
  first.reset();  // the earlier message's work is done
  second.join();
  EXPECT_TRUE(admitted.load());
  EXPECT_EQ(budget.in_use_bytes(), 0);
}

// Arrival order: a small message does not overtake a large one waiting.
TEST(IngestBudgetTest, WaitingMessagesAreAdmittedInArrivalOrder) {
  IngestBudget budget(100);
  std::optional<absl::StatusOr<IngestBudget::Lease>> held =
      budget.Acquire(50, kNoDeadline, kNeverCancelled);
  std::atomic<int> order{0};
  std::atomic<int> large_at{0}, small_at{0};
  std::thread large([&] {
    auto lease = budget.Acquire(100, kNoDeadline, kNeverCancelled);
    large_at = ++order;
  });
  AwaitWaiting(budget, 1);
  std::thread small([&] {
    auto lease = budget.Acquire(10, kNoDeadline, kNeverCancelled);
    small_at = ++order;
  });
  // 10 bytes would fit, yet it waits its turn (or, wrongly, overtakes).
  while (budget.waiting() != 2 && order.load() == 0) std::this_thread::yield();
  EXPECT_EQ(order.load(), 0);
  held.reset();
  large.join();
  small.join();
  EXPECT_EQ(large_at.load(), 1);
  EXPECT_EQ(small_at.load(), 2);
}

TEST(IngestBudgetTest, AMessageThatCanNeverFitIsRefusedAtOnce) {
  IngestBudget budget(100);
  auto lease = budget.Acquire(101, kNoDeadline, kNeverCancelled);
  EXPECT_EQ(lease.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(lease.status().message(), HasSubstr("smaller messages"));
  EXPECT_THAT(lease.status().message(), HasSubstr("100 bytes"));
}

TEST(IngestBudgetTest, AWaitEndsWithTheCallsDeadlineOrCancellation) {
  IngestBudget budget(100);
  auto held = budget.Acquire(100, kNoDeadline, kNeverCancelled);
  ASSERT_TRUE(held.ok());
  auto late = budget.Acquire(1, absl::Now(), kNeverCancelled);
  EXPECT_EQ(late.status().code(), absl::StatusCode::kDeadlineExceeded);
  auto cancelled = budget.Acquire(1, kNoDeadline, [] { return true; });
  EXPECT_EQ(cancelled.status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(budget.waiting(), 0);  // neither holds a place in the queue
  EXPECT_EQ(budget.in_use_bytes(), 100);
}

}  // namespace
}  // namespace oubli::coordinator
