// Engine deletions on tiny synthetic data: every stage of a receipt, and
// the central property: after a deletion is RESTORED, the served model is
// bitwise identical to a model trained from scratch, by an independent
// engine, on the retained data; for samples, owners, batches, placements
// and deletions racing each other.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "coordinator/sharding_plan.h"
#include "storage/lineage_store.h"
#include "tests/coordinator/engine_test_fixture.h"

namespace oubli::coordinator {
namespace {

using ::testing::Contains;
using ::testing::Not;
using ::testing::UnorderedElementsAreArray;

TEST_F(EngineTest, AStoredSampleOutsideThePlanIsDataLossNotACrash) {
  // Only corruption puts a stored sample in a shard the model does not
  // have; deleting it must not index that shard.
  const ModelConfig config = TinyConfig(3);
  {
    auto engine = OpenEngine("m", config);
    ASSERT_TRUE(engine->Ingest(TinySamples(10, 3)).ok());
  }
  {
    auto store = storage::LineageStore::Open(
        {(root_ / "m" / "lineage").string(), false});
    ASSERT_TRUE(store.ok()) << store.status();
    Sample stray = TinySamples(11, 3).back();
    stray.id = "stray";
    ASSERT_TRUE((*store)->Ingest({{stray, SliceRef{config.shards, 0}}}).ok());
  }
  auto engine = OpenEngine("m", config);
  ASSERT_NE(engine, nullptr);
  auto receipt = engine->DeleteSamples({"stray"});
  EXPECT_EQ(receipt.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(receipt.status().message(),
            "stored sample 'stray' names shard 2 slice 0, outside this "
            "model's 2 shards x 4 slices: the lineage store is corrupt");
  // The others are deleted as usual.
  EXPECT_TRUE(engine->DeleteSamples({"sample-1001"}).ok());
}

// Deletes one sample from slice at `position` of sequence 0 and checks every
// stage, then bitwise equality with an independent from-scratch model.
class DeletionExactnessTest
    : public EngineTest,
      public ::testing::WithParamInterface<std::tuple<uint64_t, int>> {};

TEST_P(DeletionExactnessTest, RestoredModelEqualsScratchBitwise) {
  const auto [seed, position] = GetParam();
  const ModelConfig config = TinyConfig(seed);
  const auto samples = TinySamples(120, seed);
  auto engine = OpenEngine("m", config);
  ASSERT_TRUE(engine->Ingest(samples).ok());
  ASSERT_TRUE(engine->Train().ok());
  const std::string before = engine->Fingerprint();

  auto plan = ShardingPlan::Create(config);
  ASSERT_TRUE(plan.ok());
  const int target_slice = plan->orders()[0][position];
  std::string victim;
  SliceRef where;
  for (const Sample& s : samples) {
    if (plan->Assign(s).slice == target_slice) {
      victim = s.id;
      where = plan->Assign(s);
      break;
    }
  }
  ASSERT_FALSE(victim.empty());

  auto receipt = engine->DeleteSamples({victim});
  ASSERT_TRUE(receipt.ok()) << receipt.status();
  // The reply comes at FORGOTTEN; the purge thread takes it from there.
  EXPECT_EQ(receipt->stage, DeletionStage::kForgotten);
  ASSERT_TRUE(engine
                  ->WaitForStage(receipt->deletion_id, DeletionStage::kPurged,
                                 absl::Seconds(60))
                  .ok());
  receipt = engine->GetDeletion(receipt->deletion_id);
  ASSERT_TRUE(receipt.ok()) << receipt.status();
  EXPECT_THAT(receipt->resolved_ids, UnorderedElementsAreArray({victim}));
  EXPECT_EQ(receipt->fingerprint_before, before);
  EXPECT_NE(receipt->fingerprint_forgotten, before);
  EXPECT_LE(receipt->accepted_at, receipt->forgotten_at);
  EXPECT_LE(receipt->forgotten_at, receipt->purged_at);
  EXPECT_EQ(receipt->affected_shards, std::vector<int>{where.shard});
  // Every sequence of the shard was cut before the affected slice.
  ASSERT_EQ(receipt->affected.size(), 2u);
  for (const AffectedPrefix& a : receipt->affected) {
    const auto& order = plan->orders()[a.sequence];
    const int cut = static_cast<int>(
        std::find(order.begin(), order.end(), where.slice) - order.begin());
    EXPECT_EQ(a.valid_length_before, 4);
    EXPECT_EQ(a.valid_length_after, cut);
  }
  // FORGOTTEN: the served prefix of that shard excludes the slice (so its
  // content excludes the deleted sample); other shards are untouched.
  const ModelStatus forgotten = engine->GetModelStatus();
  EXPECT_THAT(forgotten.shards[where.shard].served.prefix,
              Not(Contains(where.slice)));
  EXPECT_EQ(forgotten.shards[1 - where.shard].served.prefix.size(), 4u);

  auto retrain = engine->RunPendingRetrains(/*ignore_policy=*/false);
  ASSERT_TRUE(retrain.ok()) << retrain.status();
  // Only the cut prefixes are retrained; the ones before the slice are
  // reused (rotations share no prefixes, so each cut position is one train).
  int cut_positions = 0;
  for (const AffectedPrefix& a : receipt->affected) {
    cut_positions += config.slices - a.valid_length_after;
  }
  EXPECT_EQ(retrain->positions_trained, cut_positions);
  auto restored = engine->GetDeletion(receipt->deletion_id);
  ASSERT_TRUE(restored.ok());
  EXPECT_EQ(restored->stage, DeletionStage::kRestored);
  EXPECT_EQ(restored->fingerprint_restored, engine->Fingerprint());

  EXPECT_EQ(engine->Fingerprint(),
            ScratchFingerprint(config, samples, {victim}));
  // Not just the served prefixes: every checkpoint of every sequence is the
  // one training from scratch produces, byte for byte, and nothing else is
  // left on disk.
  EXPECT_EQ(CheckpointDigests(engine->checkpoint_dir()),
            last_scratch_checkpoints_);
  // ...and the comparison has teeth: keeping the victim gives other bits.
  EXPECT_NE(engine->Fingerprint(), ScratchFingerprint(config, samples, {}));
  auto verify = engine->Verify();
  ASSERT_TRUE(verify.ok()) << verify.status();
  EXPECT_TRUE(verify->restored);
  EXPECT_TRUE(verify->match);
  EXPECT_EQ(verify->scratch_fingerprint, verify->served_fingerprint);
}

// Seeds x first, middle and last slice of sequence 0.
INSTANTIATE_TEST_SUITE_P(SeedsAndPositions, DeletionExactnessTest,
                         ::testing::Combine(::testing::Values(1u, 7u),
                                            ::testing::Values(0, 2, 3)));

TEST_F(EngineTest, VitBackboneDeletionIsExact) {
  ModelConfig config = TinyConfig(13);
  config.backbone.kind = BackboneKind::kVit;
  config.backbone.vit_patch = 2;
  config.backbone.vit_dim = 8;
  config.backbone.vit_depth = 4;
  config.backbone.vit_heads = 2;
  config.backbone.vit_mlp_dim = 16;
  config.backbone.lora.dropout = 0.1;  // seeded dropout must stay exact
  const auto samples = TinySamples(80, 13);
  auto engine = OpenEngine("m", config);
  ASSERT_TRUE(engine->Ingest(samples).ok());
  ASSERT_TRUE(engine->Train().ok());
  auto receipt = engine->DeleteSamples({"sample-1033", "sample-1060"});
  ASSERT_TRUE(receipt.ok()) << receipt.status();
  ASSERT_TRUE(engine->RunPendingRetrains(false).ok());
  EXPECT_EQ(
      engine->Fingerprint(),
      ScratchFingerprint(config, samples, {"sample-1033", "sample-1060"}));
  auto verify = engine->Verify();
  ASSERT_TRUE(verify.ok()) << verify.status();
  EXPECT_TRUE(verify->match);
}

TEST_F(EngineTest, ConcurrentDeletionsAreGroupCommittedExactlyOnce) {
  const ModelConfig config = TinyConfig(12);
  const auto samples = TinySamples(160, 12);
  auto engine = OpenEngine("m", config);
  ASSERT_TRUE(engine->Ingest(samples).ok());
  ASSERT_TRUE(engine->Train().ok());

  // Overlapping requests race: thread t deletes samples [4t, 4t + 8) and
  // thread 15 forgets owner-3 (samples 15..19), so most ids are requested
  // twice. Each must be resolved by exactly one deletion.
  constexpr int kThreads = 16;
  std::vector<absl::StatusOr<DeletionReceipt>> receipts(
      kThreads, absl::UnknownError("not run"));
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      if (t == kThreads - 1) {
        receipts[t] = engine->ForgetOwner("owner-3");
        return;
      }
      std::vector<std::string> ids;
      for (int i = 4 * t; i < 4 * t + 8; ++i) ids.push_back(samples[i].id);
      receipts[t] = engine->DeleteSamples(ids);
    });
  }
  for (std::thread& t : threads) t.join();

  std::map<std::string, std::string> resolved_by;  // sample -> deletion
  std::set<std::string> deletion_ids;
  // owner-3's samples are also in thread 2's and 3's ranges: if those win
  // the race, the owner has nothing left and says so.
  if (absl::IsNotFound(receipts.back().status())) receipts.pop_back();
  for (const auto& receipt : receipts) {
    ASSERT_TRUE(receipt.ok()) << receipt.status();
    EXPECT_GE(receipt->stage, DeletionStage::kForgotten);
    if (receipt->deletion_id.empty()) continue;
    EXPECT_TRUE(deletion_ids.insert(receipt->deletion_id).second);
    for (const std::string& id : receipt->resolved_ids) {
      EXPECT_TRUE(resolved_by.emplace(id, receipt->deletion_id).second)
          << id << " resolved twice";
    }
  }
  std::set<std::string> requested;
  for (int i = 0; i < 4 * (kThreads - 2) + 8; ++i) {
    requested.insert(samples[i].id);
  }
  for (int i = 15; i < 20; ++i) requested.insert(samples[i].id);
  EXPECT_EQ(resolved_by.size(), requested.size());
  for (const auto& receipt : receipts) {
    for (const auto& [id, by] : receipt->already_deleted) {
      EXPECT_EQ(resolved_by[id], by) << id;
    }
  }

  auto retrained = engine->RunPendingRetrains(true);
  ASSERT_TRUE(retrained.ok()) << retrained.status();
  for (const std::string& id : deletion_ids) {
    auto receipt = engine->GetDeletion(id);
    ASSERT_TRUE(receipt.ok()) << receipt.status();
    EXPECT_EQ(receipt->stage, DeletionStage::kRestored) << id;
  }
  EXPECT_EQ(engine->Fingerprint(),
            ScratchFingerprint(config, samples, requested));
}

TEST_F(EngineTest, ForgetOwnerAndBatchesAreExact) {
  const ModelConfig config = TinyConfig(3);
  const auto samples = TinySamples(120, 3);
  auto engine = OpenEngine("m", config);
  ASSERT_TRUE(engine->Ingest(samples).ok());
  ASSERT_TRUE(engine->Train().ok());

  std::set<std::string> deleted;
  auto owner = engine->ForgetOwner("owner-4");
  ASSERT_TRUE(owner.ok()) << owner.status();
  EXPECT_EQ(owner->owner, "owner-4");
  EXPECT_EQ(owner->resolved_ids.size(), 5u);
  deleted.insert(owner->resolved_ids.begin(), owner->resolved_ids.end());

  // A batch across shards with an unknown id and a repeat mixed in.
  std::vector<std::string> batch = {
      "sample-1050",    "sample-1051", "sample-1099",
      "no-such-sample", "sample-1050", *owner->resolved_ids.begin()};
  auto receipt = engine->DeleteSamples(batch);
  ASSERT_TRUE(receipt.ok()) << receipt.status();
  EXPECT_THAT(
      receipt->resolved_ids,
      UnorderedElementsAreArray({"sample-1050", "sample-1051", "sample-1099"}));
  EXPECT_THAT(receipt->unknown_ids,
              UnorderedElementsAreArray({"no-such-sample"}));
  ASSERT_EQ(receipt->already_deleted.size(), 1u);
  EXPECT_EQ(receipt->already_deleted[0].second, owner->deletion_id);
  deleted.insert(receipt->resolved_ids.begin(), receipt->resolved_ids.end());

  // Repeats are idempotent, not errors, and report the earlier deletion's
  // stage honestly (retraining is still pending here).
  ASSERT_TRUE(engine
                  ->WaitForStage(receipt->deletion_id, DeletionStage::kPurged,
                                 absl::Seconds(60))
                  .ok());
  auto repeat = engine->DeleteSamples({"sample-1050"});
  ASSERT_TRUE(repeat.ok()) << repeat.status();
  EXPECT_TRUE(repeat->deletion_id.empty());
  EXPECT_TRUE(repeat->resolved_ids.empty());
  EXPECT_EQ(repeat->stage, DeletionStage::kPurged);
  auto repeat_owner = engine->ForgetOwner("owner-4");
  ASSERT_TRUE(repeat_owner.ok()) << repeat_owner.status();
  EXPECT_EQ(repeat_owner->deletion_id, owner->deletion_id);

  ASSERT_TRUE(engine->RunPendingRetrains(false).ok());
  EXPECT_EQ(engine->GetDeletion(owner->deletion_id)->stage,
            DeletionStage::kRestored);
  EXPECT_EQ(engine->GetDeletion(receipt->deletion_id)->stage,
            DeletionStage::kRestored);
  EXPECT_EQ(engine->Fingerprint(),
            ScratchFingerprint(config, samples, deleted));
  EXPECT_EQ(engine->GetModelStatus().active_samples, 120 - 8);
}

// Owner placement: every sample of an owner lives in one (shard, slice),
// whichever ingest batch brought it, so forgetting an owner cuts one shard,
// moves no other sample and leaves the other shard at full length. Whole
// owners and single ids of an owner restore to the bits of training from
// scratch, which ingests everything in one batch.
class OwnerPlacementTest : public EngineTest,
                           public ::testing::WithParamInterface<uint64_t> {};

TEST_P(OwnerPlacementTest, OwnersStayWholeAndDeletionsAreExact) {
  const uint64_t seed = GetParam();
  const ModelConfig config = TinyConfig(seed, Placement::kOwner);
  const auto samples = TinySamples(160, seed);  // 32 owners of 5
  auto engine = OpenEngine("m", config);
  // Every owner's samples arrive in both batches.
  std::vector<Sample> even, odd;
  for (size_t i = 0; i < samples.size(); ++i) {
    (i % 2 == 0 ? even : odd).push_back(samples[i]);
  }
  ASSERT_TRUE(engine->Ingest(even).ok());
  ASSERT_TRUE(engine->Ingest(odd).ok());
  ASSERT_TRUE(engine->Train().ok());

  auto plan = ShardingPlan::Create(config);
  ASSERT_TRUE(plan.ok()) << plan.status();
  std::map<std::string, std::set<SliceRef>> cells_of_owner;
  std::map<std::string, std::vector<std::string>> ids_of_owner;
  for (const Sample& s : samples) {
    cells_of_owner[s.owner].insert(plan->Assign(s));
    ids_of_owner[s.owner].push_back(s.id);
  }
  for (const auto& [owner, cells] : cells_of_owner) {
    EXPECT_EQ(cells.size(), 1u) << owner;
  }
  const ModelStatus before = engine->GetModelStatus();
  int64_t counted = 0;
  for (const ShardStatus& shard : before.shards) {
    for (int64_t n : shard.slice_samples) counted += n;
  }
  EXPECT_EQ(counted, 160);
  EXPECT_GE(before.slice_imbalance, 1.0);

  const SliceRef cell = *cells_of_owner["owner-3"].begin();
  std::set<std::string> deleted;
  auto forgotten = engine->ForgetOwner("owner-3");
  ASSERT_TRUE(forgotten.ok()) << forgotten.status();
  deleted.insert(forgotten->resolved_ids.begin(),
                 forgotten->resolved_ids.end());
  EXPECT_EQ(forgotten->resolved_ids.size(), 5u);
  EXPECT_EQ(forgotten->affected_shards, std::vector<int>{cell.shard});
  const ModelStatus after = engine->GetModelStatus();
  EXPECT_EQ(after.shards[1 - cell.shard].served.prefix.size(), 4u);
  for (int shard = 0; shard < 2; ++shard) {
    for (int slice = 0; slice < 4; ++slice) {
      const int64_t gone =
          SliceRef{shard, slice} == cell ? 5 : 0;  // no one else moved
      EXPECT_EQ(after.shards[shard].slice_samples[slice],
                before.shards[shard].slice_samples[slice] - gone)
          << shard << "/" << slice;
    }
  }
  // Single ids of two other owners, one of them down to its last sample.
  const std::vector<std::string>& seven = ids_of_owner["owner-7"];
  std::vector<std::string> single = {ids_of_owner["owner-11"][2]};
  single.insert(single.end(), seven.begin(), seven.end() - 1);
  ASSERT_TRUE(engine->DeleteSamples(single).ok());
  deleted.insert(single.begin(), single.end());

  ASSERT_TRUE(engine->RunPendingRetrains(false).ok());
  EXPECT_EQ(engine->GetDeletion(forgotten->deletion_id)->stage,
            DeletionStage::kRestored);
  EXPECT_EQ(engine->Fingerprint(),
            ScratchFingerprint(config, samples, deleted));
  EXPECT_EQ(CheckpointDigests(engine->checkpoint_dir()),
            last_scratch_checkpoints_);
  auto verify = engine->Verify();
  ASSERT_TRUE(verify.ok()) << verify.status();
  EXPECT_TRUE(verify->match);
}

INSTANTIATE_TEST_SUITE_P(Seeds, OwnerPlacementTest,
                         ::testing::Values(1u, 7u, 19u));

// With a risk profile, hinted owners go to the slice every sequence trains
// last: forgetting one cuts each sequence by one position only and
// retrains exactly those positions, with the bits of training from scratch.
TEST_F(EngineTest, RiskAwarePlacementCutsOnlyTheLastPositions) {
  ModelConfig config = TinyConfig(31, Placement::kOwner);
  config.placement.risk.slices = 1;
  auto samples = TinySamples(160, 31);
  for (size_t i = 0; i < samples.size(); ++i) {
    if ((i / 5) % 4 == 0) samples[i].deletion_risk = 0.9f;  // owner-0, 4, ...
  }
  auto engine = OpenEngine("m", config);
  ASSERT_TRUE(engine->Ingest(samples).ok());
  ASSERT_TRUE(engine->Train().ok());
  auto plan = ShardingPlan::Create(config);
  ASSERT_TRUE(plan.ok()) << plan.status();
  for (const auto& order : plan->orders()) EXPECT_EQ(order.back(), 3);
  for (const Sample& s : samples) {
    EXPECT_EQ(plan->Assign(s).slice == 3, s.deletion_risk > 0) << s.id;
  }

  auto receipt = engine->ForgetOwner("owner-4");
  ASSERT_TRUE(receipt.ok()) << receipt.status();
  ASSERT_EQ(receipt->affected.size(), 2u);
  for (const AffectedPrefix& a : receipt->affected) {
    EXPECT_EQ(a.valid_length_after, 3);
  }
  const int shard = receipt->affected_shards.at(0);
  const ModelStatus cut = engine->GetModelStatus();
  EXPECT_EQ(cut.shards[shard].served.prefix.size(), 3u);
  auto retrain = engine->RunPendingRetrains(false);
  ASSERT_TRUE(retrain.ok()) << retrain.status();
  EXPECT_EQ(retrain->positions_trained, config.sequences);
  // The backlog said what the retrain then cost: the two last positions,
  // each the whole shard.
  EXPECT_EQ(cut.retrain_backlog_sample_visits, retrain->samples);
  EXPECT_EQ(cut.retrain_backlog_sample_visits,
            config.sequences * config.train.epochs_per_position *
                cut.shards[shard].served.samples);
  EXPECT_EQ(engine->GetModelStatus().retrain_backlog_sample_visits, 0);
  std::set<std::string> deleted(receipt->resolved_ids.begin(),
                                receipt->resolved_ids.end());
  EXPECT_EQ(engine->Fingerprint(),
            ScratchFingerprint(config, samples, deleted));
}

// With risk.shards = 1 every hinted owner lives in shard 0's last slice:
// forgetting several of them cuts that shard alone, by one position, and
// one retrain of its last positions covers them all. Shard 1's last slice
// holds unhinted owners and behaves the same. Exact either way.
TEST_F(EngineTest, RiskShardsConfineHintedOwnersToTheirShard) {
  ModelConfig config = TinyConfig(37, Placement::kOwner);
  config.placement.risk.slices = 1;
  config.placement.risk.shards = 1;
  auto samples = TinySamples(200, 37);
  for (size_t i = 0; i < samples.size(); ++i) {
    if ((i / 5) % 8 == 0) samples[i].deletion_risk = 0.9f;  // owner-0, 8, ...
  }
  auto plan = ShardingPlan::Create(config);
  ASSERT_TRUE(plan.ok()) << plan.status();
  std::string unhinted_in_last_slice;
  for (const Sample& s : samples) {
    const SliceRef cell = plan->Assign(s);
    if (s.deletion_risk > 0) {
      EXPECT_EQ(cell, (SliceRef{0, 3})) << s.id;
    } else {
      EXPECT_FALSE(cell.shard == 0 && cell.slice == 3) << s.id;
      if (cell == SliceRef{1, 3}) unhinted_in_last_slice = s.owner;
    }
  }
  ASSERT_FALSE(unhinted_in_last_slice.empty());
  auto engine = OpenEngine("m", config);
  ASSERT_TRUE(engine->Ingest(samples).ok());
  ASSERT_TRUE(engine->Train().ok());

  std::set<std::string> deleted;
  for (const std::string& owner : std::vector<std::string>{
           "owner-0", "owner-8", "owner-16", unhinted_in_last_slice}) {
    auto receipt = engine->ForgetOwner(owner);
    ASSERT_TRUE(receipt.ok()) << receipt.status();
    ASSERT_EQ(receipt->affected_shards.size(), 1u) << owner;
    EXPECT_EQ(receipt->affected_shards[0],
              owner == unhinted_in_last_slice ? 1 : 0);
    for (const AffectedPrefix& a : receipt->affected) {
      EXPECT_EQ(a.valid_length_after, 3) << owner;
    }
    deleted.insert(receipt->resolved_ids.begin(), receipt->resolved_ids.end());
  }
  const ModelStatus cut = engine->GetModelStatus();
  for (const ShardStatus& shard : cut.shards) {
    EXPECT_EQ(shard.served.prefix.size(), 3u);
  }
  auto retrain = engine->RunPendingRetrains(false);
  ASSERT_TRUE(retrain.ok()) << retrain.status();
  // The last position of each sequence of each shard, once.
  EXPECT_EQ(retrain->positions_trained, config.shards * config.sequences);
  EXPECT_EQ(engine->Fingerprint(),
            ScratchFingerprint(config, samples, deleted));
}

TEST_F(EngineTest, ShardWithEveryPrefixCutIsDroppedNotFatal) {
  ModelConfig config = TinyConfig(2);
  config.sequences = 1;
  auto engine = OpenEngine("m", config);
  const auto samples = TinySamples(80, 2);
  ASSERT_TRUE(engine->Ingest(samples).ok());
  ASSERT_TRUE(engine->Train().ok());
  auto plan = ShardingPlan::Create(config);
  // Delete a sample from each shard's first slice: every shard is cut to 0.
  std::vector<std::string> victims;
  std::set<int> shards_hit;
  for (const Sample& s : samples) {
    const SliceRef where = plan->Assign(s);
    if (where.slice == plan->orders()[0][0] &&
        shards_hit.insert(where.shard).second) {
      victims.push_back(s.id);
    }
  }
  ASSERT_EQ(victims.size(), 2u);
  auto receipt = engine->DeleteSamples({victims[0]});
  ASSERT_TRUE(receipt.ok()) << receipt.status();
  // One shard still serves.
  EXPECT_TRUE(engine->Predict(std::vector<float>(16, 0.f), 1).ok());
  ASSERT_TRUE(engine->DeleteSamples({victims[1]}).ok());
  auto none = engine->Predict(std::vector<float>(16, 0.f), 1);
  EXPECT_EQ(none.status().code(), absl::StatusCode::kFailedPrecondition);
  // A further deletion in a cut shard is still fine.
  std::string another;
  for (const Sample& s : samples) {
    if (s.id != victims[0] && s.id != victims[1] &&
        plan->Assign(s).shard == 0) {
      another = s.id;
      break;
    }
  }
  ASSERT_TRUE(engine->DeleteSamples({another}).ok());
  ASSERT_TRUE(engine->RunPendingRetrains(false).ok());
  EXPECT_TRUE(engine->Predict(std::vector<float>(16, 0.f), 1).ok());
  EXPECT_EQ(
      engine->Fingerprint(),
      ScratchFingerprint(config, samples, {victims[0], victims[1], another}));
}

TEST_F(EngineTest, MetricsSeeEachStageOncePerDeletionAndEveryPosition) {
  const ModelConfig config = TinyConfig(11);
  auto metrics = std::make_shared<CountingMetrics>();
  Engine::Options options;
  options.background_retrain = false;
  options.metrics = metrics;
  auto opened = OpenEngineWith("m", config, options);
  ASSERT_NE(opened, nullptr);
  Engine& engine = *opened;
  ASSERT_TRUE(engine.Ingest(TinySamples(60, 11)).ok());
  auto trained = engine.Train();
  ASSERT_TRUE(trained.ok()) << trained.status();
  EXPECT_EQ(metrics->positions, trained->positions_trained);
  EXPECT_EQ(metrics->samples, trained->samples);
  EXPECT_EQ(metrics->steps, trained->steps);
  EXPECT_GT(metrics->bytes, 0);

  auto receipt = engine.DeleteSamples({"sample-1001", "sample-1002"});
  ASSERT_TRUE(receipt.ok()) << receipt.status();
  EXPECT_EQ(metrics->accepted, 1);
  EXPECT_EQ(metrics->forgotten, 1);
  EXPECT_EQ(metrics->deleted_samples, 2);
  ModelStatus status = engine.GetModelStatus();
  EXPECT_EQ(status.pending_accepted, 0);
  EXPECT_EQ(status.pending_forgotten + status.pending_purged, 1);
  EXPECT_EQ(status.oldest_pending_accepted_at, receipt->accepted_at);
  EXPECT_EQ(status.retrain_queue_shards,
            static_cast<int>(receipt->affected_shards.size()));

  // A repeat resolves nothing new: no new deletion, nothing counted.
  ASSERT_TRUE(engine.DeleteSamples({"sample-1001"}).ok());
  ASSERT_TRUE(engine.RunPendingRetrains(true).ok());
  ASSERT_EQ(engine.GetDeletion(receipt->deletion_id)->stage,
            DeletionStage::kRestored);
  EXPECT_EQ(metrics->accepted, 1);
  EXPECT_EQ(metrics->forgotten, 1);
  EXPECT_EQ(metrics->purged, 1);
  EXPECT_EQ(metrics->restored, 1);
  EXPECT_GT(metrics->positions, trained->positions_trained);
  status = engine.GetModelStatus();
  EXPECT_EQ(status.pending_deletions, 0);
  EXPECT_EQ(status.pending_forgotten + status.pending_purged, 0);
  EXPECT_EQ(status.oldest_pending_accepted_at, absl::InfinitePast());
  EXPECT_EQ(status.retrain_queue_shards, 0);

  auto storage = engine.GetStorageStats();
  ASSERT_TRUE(storage.ok()) << storage.status();
  EXPECT_GT(storage->lineage_db_bytes, 0);
  EXPECT_GT(storage->checkpoint_bytes, 0);
}

}  // namespace
}  // namespace oubli::coordinator
