#include "coordinator/retrain_queue.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

namespace oubli::coordinator {
namespace {

const absl::Time kStart = absl::FromUnixSeconds(1000);
absl::Time At(int seconds) { return kStart + absl::Seconds(seconds); }
bool NoneBusy(int) { return false; }

RetrainPolicy Batched(int window_seconds, int max_batch) {
  RetrainPolicy policy;
  policy.mode = RetrainMode::kBatched;
  policy.window = absl::Seconds(window_seconds);
  policy.max_batch = max_batch;
  return policy;
}

// One shard receives a deletion every second, another one once: a single
// training loop that takes a shard per second must still get to the
// second shard right after the first, not after the stream ends.
TEST(RetrainQueueTest, AShardUnderConstantDeletionsCannotStarveAnother) {
  RetrainQueue queue{RetrainPolicy{}};  // IMMEDIATE
  std::vector<int> trained;
  queue.AddDeletion({0}, At(0));
  queue.AddDeletion({3}, At(0) + absl::Milliseconds(1));
  for (int t = 1; t <= 6; ++t) {
    const std::optional<int> next = queue.NextDue(At(t), NoneBusy);
    ASSERT_TRUE(next.has_value()) << t;
    queue.Remove(*next);
    trained.push_back(*next);
    queue.AddDeletion({0}, At(t));  // shard 0 is cut again at once
  }
  EXPECT_EQ(trained[0], 0);
  EXPECT_EQ(trained[1], 3);  // lowest-numbered-first would say 0 forever
  EXPECT_EQ(std::count(trained.begin(), trained.end(), 3), 1);
}

TEST(RetrainQueueTest, LongestOwedGoesFirstAndBusyShardsWait) {
  RetrainQueue queue{RetrainPolicy{}};
  queue.Add(5, At(0), At(0));
  queue.Add(1, At(0), At(3));
  queue.Add(2, At(9), At(-5));  // owed longest, but not due yet
  EXPECT_EQ(queue.NextDue(At(1), NoneBusy), 5);
  EXPECT_EQ(queue.NextDue(At(1), [](int s) { return s == 5; }), 1);
  EXPECT_EQ(queue.NextDue(At(9), NoneBusy), 2);
  EXPECT_EQ(queue.NextDue(At(-1), NoneBusy), std::nullopt);
  EXPECT_EQ(queue.EarliestDue([](int s) { return s != 2; }), At(9));
  EXPECT_EQ(queue.Due(At(1), false), (std::vector<int>{5, 1}));
  EXPECT_EQ(queue.Due(At(1), true), (std::vector<int>{2, 5, 1}));
  // A repeat keeps the earlier due time and owed time.
  queue.Add(1, At(7), At(8));
  EXPECT_EQ(queue.Due(At(1), false), (std::vector<int>{5, 1}));
  // Remove hands back the owed time, for a retry after a failure.
  EXPECT_EQ(queue.Remove(1), At(3));
  EXPECT_EQ(queue.Remove(1), std::nullopt);
  EXPECT_FALSE(queue.Contains(1));
  EXPECT_EQ(queue.size(), 2);
}

TEST(RetrainQueueTest, BatchWaitsForItsWindow) {
  RetrainQueue queue(Batched(10, 100));
  queue.AddDeletion({0}, At(0));
  queue.AddDeletion({1}, At(4));
  EXPECT_EQ(queue.NextDue(At(9), NoneBusy), std::nullopt);
  // Both shards of the batch are due when its window (from its first
  // deletion) ends.
  EXPECT_EQ(queue.Due(At(10), false), (std::vector<int>{0, 1}));
  // A deletion after the window opens a new batch with a window of its own.
  queue.Remove(0);
  queue.Remove(1);
  queue.AddDeletion({2}, At(12));
  EXPECT_EQ(queue.Due(At(21), false), std::vector<int>{});
  EXPECT_EQ(queue.Due(At(22), false), std::vector<int>{2});
}

TEST(RetrainQueueTest, AFullBatchStartsAndTheNextOneWaitsAgain) {
  RetrainQueue queue(Batched(60, 3));
  queue.AddDeletion({0}, At(0));
  queue.AddDeletion({1}, At(1));
  EXPECT_EQ(queue.Due(At(2), false), std::vector<int>{});
  queue.AddDeletion({2}, At(2));  // third deletion: the batch is full
  EXPECT_EQ(queue.Due(At(2), false), (std::vector<int>{0, 1, 2}));
  queue.Remove(0);
  queue.Remove(1);
  queue.Remove(2);
  // Not IMMEDIATE from now on: the fourth deletion waits for a new window
  // (before, every later deletion was due at once while 3 were pending).
  queue.AddDeletion({3}, At(3));
  EXPECT_EQ(queue.Due(At(4), false), std::vector<int>{});
  EXPECT_EQ(queue.Due(At(63), false), std::vector<int>{3});
}

TEST(RetrainQueueTest, AGroupCommitCountsEachOfItsDeletions) {
  RetrainQueue queue(Batched(60, 3));
  queue.AddDeletion({0, 1}, At(0), /*deletions=*/3);
  EXPECT_EQ(queue.Due(At(0), false), (std::vector<int>{0, 1}));
}

TEST(RetrainQueueTest, AFullBatchDoesNotRequeueAShardTakenMeanwhile) {
  RetrainQueue queue(Batched(60, 2));
  queue.AddDeletion({0}, At(0));
  queue.Remove(0);  // a loop took it (e.g. a retrain ignoring the policy)
  queue.AddDeletion({1}, At(1));  // fills the batch
  EXPECT_FALSE(queue.Contains(0));
  EXPECT_EQ(queue.Due(At(1), false), std::vector<int>{1});
}

// A shard left serving nothing does not wait for its batch's window; the
// other shards of the batch still do, and an unqueued shard stays out.
TEST(RetrainQueueTest, AnUnservedShardSkipsTheWindow) {
  RetrainQueue queue{Batched(60, 100)};
  queue.AddDeletion({0, 1}, At(0));
  queue.Expedite(1, At(2));
  queue.Expedite(2, At(2));
  EXPECT_EQ(queue.Due(At(2), /*ignore_policy=*/false), std::vector<int>{1});
  EXPECT_FALSE(queue.Contains(2));
  EXPECT_EQ(queue.Due(At(60), false), (std::vector<int>{0, 1}));
}

// A shard that serves nothing goes before every other due shard, however
// long they have owed; among such shards, the longest owed first.
TEST(RetrainQueueTest, UnservedShardsGoFirst) {
  RetrainQueue queue{RetrainPolicy{}};  // IMMEDIATE
  queue.AddDeletion({0}, At(0));
  queue.AddDeletion({1}, At(1));
  queue.AddDeletion({2}, At(2));
  auto unserved = [](int shard) { return shard != 0; };
  EXPECT_EQ(queue.NextDue(At(3), NoneBusy), 0);
  EXPECT_EQ(queue.NextDue(At(3), NoneBusy, unserved), 1);
  auto one_busy = [](int shard) { return shard == 1; };
  EXPECT_EQ(queue.NextDue(At(3), one_busy, unserved), 2);
}

TEST(RetrainQueueTest, NewSamplesDoNotHurryABatch) {
  RetrainQueue queue(Batched(60, 100));
  queue.AddDeletion({0}, At(0));
  queue.AddUnlessQueued(0, At(1));  // ingest into a shard in the batch
  queue.AddUnlessQueued(2, At(1));  // and into one that owes nothing
  EXPECT_EQ(queue.Due(At(1), false), std::vector<int>{2});
  EXPECT_EQ(queue.Due(At(60), false), (std::vector<int>{0, 2}));
}

}  // namespace
}  // namespace oubli::coordinator
