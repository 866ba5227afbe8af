// Engine retraining after deletions: when a cut shard is due (IMMEDIATE,
// BATCHED, a shard left serving nothing), what a deletion landing inside a
// retrain costs, and when each deletion is RESTORED; always to the bits of
// training from scratch.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "coordinator/position_choice.h"
#include "coordinator/sharding_plan.h"
#include "tests/coordinator/engine_test_fixture.h"

namespace oubli::coordinator {
namespace {

// Under BATCHED, a deletion that leaves a shard serving nothing retrains it
// now rather than at the end of the window; a deletion that leaves it
// serving waits for the window as before.
TEST_F(EngineTest, AShardLeftUnservedDoesNotWaitForItsBatch) {
  ModelConfig config = TinyBatchedConfig(2, 100);  // a one-hour window
  config.sequences = 1;
  auto engine = OpenEngine("m", config);
  const auto samples = TinySamples(80, 2);
  ASSERT_TRUE(engine->Ingest(samples).ok());
  ASSERT_TRUE(engine->Train().ok());
  auto plan = ShardingPlan::Create(config);
  ASSERT_TRUE(plan.ok()) << plan.status();
  const std::vector<int>& order = plan->orders()[0];
  std::string in_last, in_first;  // of shard 0
  for (const Sample& s : samples) {
    const SliceRef where = plan->Assign(s);
    if (where.shard != 0) continue;
    if (where.slice == order.back() && in_last.empty()) in_last = s.id;
    if (where.slice == order.front() && in_first.empty()) in_first = s.id;
  }
  ASSERT_FALSE(in_last.empty());
  ASSERT_FALSE(in_first.empty());

  auto still_serving = engine->DeleteSamples({in_last});
  ASSERT_TRUE(still_serving.ok()) << still_serving.status();
  auto waited = engine->RunPendingRetrains(false);
  ASSERT_TRUE(waited.ok()) << waited.status();
  EXPECT_EQ(waited->positions_trained, 0);

  auto unserved = engine->DeleteSamples({in_first});
  ASSERT_TRUE(unserved.ok()) << unserved.status();
  auto retrained = engine->RunPendingRetrains(false);
  ASSERT_TRUE(retrained.ok()) << retrained.status();
  EXPECT_EQ(retrained->positions_trained, config.slices);
  EXPECT_EQ(engine->GetDeletion(unserved->deletion_id)->stage,
            DeletionStage::kRestored);
  EXPECT_EQ(engine->Fingerprint(),
            ScratchFingerprint(config, samples, {in_last, in_first}));
}

TEST_F(EngineTest, BatchedPolicyWaitsForCount) {
  const ModelConfig config = TinyBatchedConfig(4, 2);
  const auto samples = TinySamples(120, 4);
  auto engine = OpenEngine("m", config);
  ASSERT_TRUE(engine->Ingest(samples).ok());
  ASSERT_TRUE(engine->Train().ok());
  auto first = engine->DeleteSamples({"sample-1010"});
  ASSERT_TRUE(first.ok());
  auto none = engine->RunPendingRetrains(false);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->positions_trained, 0);  // window not over, count not met
  EXPECT_EQ(engine->GetDeletion(first->deletion_id)->stage,
            DeletionStage::kPurged);
  auto second = engine->DeleteSamples({"sample-1020"});
  ASSERT_TRUE(second.ok());
  ASSERT_TRUE(engine->RunPendingRetrains(false).ok());
  EXPECT_EQ(engine->GetDeletion(first->deletion_id)->stage,
            DeletionStage::kRestored);
  EXPECT_EQ(engine->GetDeletion(second->deletion_id)->stage,
            DeletionStage::kRestored);
}

// Says it has a worker and declines every position (Unavailable), so the
// engine trains them itself; once armed, it first runs the hook: a
// deterministic point inside a retrain.
class HookTrainer : public RemoteTrainer {
 public:
  // Runs `hook` once, at the next position (of `shard` only, if given)
  // after `skip` more such positions.
  void Arm(std::function<void()> hook, std::optional<int> shard = {},
           int skip = 0) {
    absl::MutexLock lock(&mu_);
    hook_ = std::move(hook);
    hook_shard_ = shard;
    hook_skip_ = skip;
  }
  int Capacity(const std::string&) override { return 1; }
  absl::StatusOr<RemoteResult> TrainPosition(
      const RemotePosition& position, const std::function<bool()>&) override {
    std::function<void()> hook;
    {
      absl::MutexLock lock(&mu_);
      if (!hook_shard_.has_value() || *hook_shard_ == position.shard) {
        if (hook_skip_ > 0) {
          --hook_skip_;
        } else {
          hook.swap(hook_);
        }
      }
    }
    if (hook) hook();
    return absl::UnavailableError("declined");
  }
  absl::Status DropStaleSlices(const std::string&,
                               const absl::flat_hash_set<std::string>&,
                               bool) override {
    return absl::OkStatus();  // holds none
  }

 private:
  absl::Mutex mu_;
  std::function<void()> hook_ ABSL_GUARDED_BY(mu_);
  std::optional<int> hook_shard_ ABSL_GUARDED_BY(mu_);
  int hook_skip_ ABSL_GUARDED_BY(mu_) = 0;
};

// A deletion that lands while its shard retrains: the position in flight
// is thrown away and counted as wasted, the retrain goes on without the
// new deletion's data (so the new deletion's batch finds nothing left and
// does not hold RESTORED back), and the result has the bits of training
// from scratch.
// The prefix the first position of a retrain trains once `deleted` (slices
// of one shard) are cut (the engine's choice, ChooseNextPosition).
std::vector<int> FirstRetrainedPrefix(const ShardingPlan& plan,
                                      const std::set<int>& deleted) {
  std::vector<int> valid, first;
  for (const std::vector<int>& order : plan.orders()) {
    first.push_back(order.front());
    int length = 0;
    while (length < static_cast<int>(order.size()) &&
           !deleted.contains(order[length])) {
      ++length;
    }
    valid.push_back(length);
  }
  const std::optional<NextPosition> next = ChooseNextPosition(
      valid, first, static_cast<int>(plan.orders()[0].size()));
  const std::vector<int>& order = plan.orders()[next->sequence];
  return std::vector<int>(order.begin(), order.begin() + next->length);
}

// A deletion that lands while a retrain's first position trains cancels
// that position only if it cuts a slice of the position's own prefix; one
// elsewhere in the shard leaves it exact and it is kept. Either way the
// result is the model trained from scratch without all three.
class LateDeletionTest : public EngineTest,
                         public ::testing::WithParamInterface<bool> {};

TEST_P(LateDeletionTest, WastesThePositionInFlightOnlyIfItCutsItsPrefix) {
  const bool inside = GetParam();
  const ModelConfig config = TinyBatchedConfig(15, 2);
  const auto samples = TinySamples(160, 15);
  auto plan = ShardingPlan::Create(config);
  ASSERT_TRUE(plan.ok()) << plan.status();
  std::map<int, std::vector<std::string>> shard0_by_slice;
  for (const Sample& s : samples) {
    const SliceRef where = plan->Assign(s);
    if (where.shard == 0) shard0_by_slice[where.slice].push_back(s.id);
  }
  // The batch cuts the slice whose latest position over the orders is
  // earliest, among those first in no order (every sequence keeps serving):
  // the first retrained prefix then has slices besides it, and leaves some
  // out.
  int cut = -1;
  size_t cut_latest = 0;
  for (int slice = 0; slice < config.slices; ++slice) {
    size_t latest = 0, earliest = config.slices;
    for (const std::vector<int>& order : plan->orders()) {
      const size_t at =
          std::find(order.begin(), order.end(), slice) - order.begin();
      latest = std::max(latest, at);
      earliest = std::min(earliest, at);
    }
    if (earliest >= 1 && (cut < 0 || latest < cut_latest)) {
      cut = slice;
      cut_latest = latest;
    }
  }
  ASSERT_GE(cut, 0);
  ASSERT_GE(shard0_by_slice[cut].size(), 2u);
  const std::vector<int> first = FirstRetrainedPrefix(*plan, {cut});
  std::string late_id;
  for (const auto& [slice, ids] : shard0_by_slice) {
    const bool in_prefix =
        std::find(first.begin(), first.end(), slice) != first.end();
    if (slice != cut && in_prefix == inside && !ids.empty()) {
      late_id = ids[0];
      break;
    }
  }
  ASSERT_FALSE(late_id.empty()) << "no slice " << (inside ? "in" : "outside")
                                << " the first retrained prefix";

  auto metrics = std::make_shared<CountingMetrics>();
  auto trainer = std::make_shared<HookTrainer>();
  auto opened = OpenTrainedVia(trainer, config, samples, metrics);
  ASSERT_NE(opened, nullptr);
  Engine& engine = *opened;
  EXPECT_EQ(metrics->wasted.load(), 0);

  // Two deletions fill the batch: shard 0 is due now.
  std::vector<std::string> ids;
  for (int i = 0; i < 2; ++i) {
    auto receipt = engine.DeleteSamples({shard0_by_slice[cut][i]});
    ASSERT_TRUE(receipt.ok()) << receipt.status();
    ids.push_back(receipt->deletion_id);
  }
  // A third lands inside the retrain's first position.
  std::string late;
  trainer->Arm([&] {
    auto receipt = engine.DeleteSamples({late_id});
    EXPECT_TRUE(receipt.ok()) << receipt.status();
    if (receipt.ok()) late = receipt->deletion_id;
  });
  auto retrain = engine.RunPendingRetrains(false);
  ASSERT_TRUE(retrain.ok()) << retrain.status();
  ASSERT_FALSE(late.empty());
  EXPECT_EQ(metrics->wasted.load(), inside ? 1 : 0);
  EXPECT_GT(retrain->positions_trained, 0);
  const ModelStatus status = engine.GetModelStatus();
  EXPECT_EQ(status.missing_prefixes, 0);
  EXPECT_EQ(status.retrain_queue_shards, 0);
  ids.push_back(late);
  for (const std::string& id : ids) {
    // The late one is RESTORED once the purge thread has purged it.
    EXPECT_TRUE(
        engine.WaitForStage(id, DeletionStage::kRestored, absl::Seconds(60))
            .ok())
        << id;
  }
  EXPECT_EQ(engine.Fingerprint(),
            ScratchFingerprint(config, samples,
                               {shard0_by_slice[cut][0],
                                shard0_by_slice[cut][1], late_id}));
  auto rest = engine.RunPendingRetrains(true);
  ASSERT_TRUE(rest.ok()) << rest.status();
  EXPECT_EQ(rest->positions_trained, 0);
  EXPECT_EQ(metrics->wasted.load(), inside ? 1 : 0);
}

INSTANTIATE_TEST_SUITE_P(InsideOrOutsideItsPrefix, LateDeletionTest,
                         ::testing::Bool());

// A deletion is RESTORED once each shard it cut has been complete at some
// moment after it, not only when all of them are complete at once: here
// shard 0 is cut again while shard 1 still retrains for the first
// deletion, which is RESTORED all the same; the second follows when shard 0
// completes again, and the model is the one trained from scratch.
TEST_F(EngineTest, ADeletionIsRestoredShardByShardUnderFurtherDeletions) {
  const ModelConfig config = TinyConfig(21);
  const auto samples = TinySamples(120, 21);
  auto plan = ShardingPlan::Create(config);
  ASSERT_TRUE(plan.ok()) << plan.status();
  std::vector<std::string> by_shard[2];
  for (const Sample& s : samples) {
    by_shard[plan->Assign(s).shard].push_back(s.id);
  }
  ASSERT_GE(by_shard[0].size(), 2u);
  ASSERT_GE(by_shard[1].size(), 1u);
  auto trainer = std::make_shared<HookTrainer>();
  auto opened = OpenTrainedVia(trainer, config, samples);
  ASSERT_NE(opened, nullptr);
  Engine& engine = *opened;

  auto first = engine.DeleteSamples({by_shard[0][0], by_shard[1][0]});
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_EQ(first->affected_shards.size(), 2u);
  // Shards retrain one after the other (one training loop), shard 0
  // first; the second deletion lands in shard 0 once shard 1 retrains.
  std::string second;
  trainer->Arm(
      [&] {
        auto receipt = engine.DeleteSamples({by_shard[0][1]});
        EXPECT_TRUE(receipt.ok()) << receipt.status();
        if (receipt.ok()) second = receipt->deletion_id;
      },
      /*shard=*/1);
  ASSERT_TRUE(engine.RunPendingRetrains(false).ok());
  ASSERT_FALSE(second.empty());
  EXPECT_EQ(engine.GetDeletion(first->deletion_id)->stage,
            DeletionStage::kRestored);
  EXPECT_LT(engine.GetDeletion(second)->stage, DeletionStage::kRestored);
  EXPECT_GT(engine.GetModelStatus().missing_prefixes, 0);

  ASSERT_TRUE(engine.RunPendingRetrains(false).ok());
  EXPECT_TRUE(
      engine.WaitForStage(second, DeletionStage::kRestored, absl::Seconds(60))
          .ok());
  EXPECT_EQ(engine.GetModelStatus().missing_prefixes, 0);
  EXPECT_EQ(engine.Fingerprint(),
            ScratchFingerprint(config, samples,
                               {by_shard[0][0], by_shard[1][0],
                                by_shard[0][1]}));
}

int PositionIn(const std::vector<int>& order, int slice) {
  return static_cast<int>(std::find(order.begin(), order.end(), slice) -
                          order.begin());
}

// Within a shard too: a deletion is RESTORED once each sequence it cut has
// been retrained whole after it, though a later deletion cut the first
// sequence again before the second was done. One shard, two sequences:
// the first deletion cuts slice x; the retrain completes sequence `first`,
// then, as sequence `second` starts, a second deletion cuts slice y out of
// its way; when `second` is whole the first deletion is RESTORED while
// `first` still misses prefixes.
TEST_F(EngineTest, ADeletionIsRestoredSequenceBySequence) {
  ModelConfig config = TinyConfig(23);
  config.shards = 1;
  const auto samples = TinySamples(120, 23);
  auto plan = ShardingPlan::Create(config);
  ASSERT_TRUE(plan.ok()) << plan.status();
  const auto& orders = plan->orders();
  ASSERT_EQ(orders.size(), 2u);
  // x: cut by the first deletion; the retrain takes sequence `first` (the
  // longer valid prefix) whole, then `second`. y: cut by the second
  // deletion, after the prefix `second` is training then, and early
  // enough in `first` that `second` stays the longer valid prefix.
  int x = -1, y = -1, first = -1, second = -1;
  for (int cx = 0; cx < config.slices && x < 0; ++cx) {
    const int p0 = PositionIn(orders[0], cx), p1 = PositionIn(orders[1], cx);
    const int f = p1 > p0 ? 1 : 0, g = 1 - f;
    for (int cy = 0; cy < config.slices; ++cy) {
      if (cy == cx) continue;
      if (PositionIn(orders[g], cy) > PositionIn(orders[g], cx) &&
          PositionIn(orders[f], cy) < PositionIn(orders[g], cx)) {
        x = cx, y = cy, first = f, second = g;
        break;
      }
    }
  }
  ASSERT_GE(x, 0) << "no slices fit; pick another seed";
  std::string in_x, in_y;
  for (const Sample& s : samples) {
    const int slice = plan->Assign(s).slice;
    if (slice == x && in_x.empty()) in_x = s.id;
    if (slice == y && in_y.empty()) in_y = s.id;
  }
  auto trainer = std::make_shared<HookTrainer>();
  auto opened = OpenTrainedVia(trainer, config, samples);
  ASSERT_NE(opened, nullptr);
  Engine& engine = *opened;

  auto d1 = engine.DeleteSamples({in_x});
  ASSERT_TRUE(d1.ok()) << d1.status();
  std::string d2;
  // Seen at each position after the second deletion: the first deletion's
  // stage and the missing prefixes.
  std::vector<std::pair<DeletionStage, int>> seen;
  std::function<void()> observe = [&] {
    seen.emplace_back(engine.GetDeletion(d1->deletion_id)->stage,
                      engine.GetModelStatus().missing_prefixes);
    trainer->Arm(observe);
  };
  trainer->Arm(
      [&] {
        auto receipt = engine.DeleteSamples({in_y});
        EXPECT_TRUE(receipt.ok()) << receipt.status();
        if (receipt.ok()) d2 = receipt->deletion_id;
        trainer->Arm(observe);
      },
      /*shard=*/0,
      /*skip=*/config.slices - PositionIn(orders[first], x));
  ASSERT_TRUE(engine.RunPendingRetrains(false).ok());
  trainer->Arm([] {});
  ASSERT_FALSE(d2.empty());
  bool restored_while_cut = false;
  for (const auto& [stage, missing] : seen) {
    restored_while_cut = restored_while_cut ||
                         (stage == DeletionStage::kRestored && missing > 0);
  }
  EXPECT_TRUE(restored_while_cut);
  EXPECT_TRUE(
      engine.WaitForStage(d2, DeletionStage::kRestored, absl::Seconds(60))
          .ok());
  EXPECT_EQ(engine.GetModelStatus().missing_prefixes, 0);
  EXPECT_EQ(engine.Fingerprint(),
            ScratchFingerprint(config, samples, {in_x, in_y}));
}

TEST_F(EngineTest, BackgroundRetrainAndConcurrentDeletionsStayExact) {
  const ModelConfig config = TinyConfig(11);
  const auto samples = TinySamples(160, 11);
  Engine::Options options;
  options.background_retrain = true;
  options.training_threads = 2;  // parallel trainers must stay exact too
  auto opened = OpenEngineWith("m", config, options);
  ASSERT_NE(opened, nullptr);
  Engine& engine = *opened;
  ASSERT_TRUE(engine.Ingest(samples).ok());
  // Deletions race with initial training and with each other's retraining.
  std::thread trainer([&] { EXPECT_TRUE(engine.Train().ok()); });
  std::vector<std::string> ids;
  std::set<std::string> deleted;
  for (int i = 0; i < 6; ++i) {
    const std::string id = "sample-" + std::to_string(1003 + 17 * i);
    auto receipt = engine.DeleteSamples({id});
    EXPECT_TRUE(receipt.ok()) << receipt.status();
    if (receipt.ok()) ids.push_back(receipt->deletion_id);
    deleted.insert(id);
  }
  trainer.join();
  for (const std::string& id : ids) {
    ASSERT_TRUE(engine.WaitForRestored(id, absl::Minutes(5)).ok()) << id;
  }
  EXPECT_EQ(engine.GetModelStatus().missing_prefixes, 0);
  EXPECT_EQ(engine.Fingerprint(), ScratchFingerprint(config, samples, deleted));
}

}  // namespace
}  // namespace oubli::coordinator
