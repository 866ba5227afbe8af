// Engine restarts: deletions a crash interrupted are finished, retrain
// windows survive, a corrupt checkpoint is retrained, and a data dir
// reopened with another config is refused.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "coordinator/sharding_plan.h"
#include "oubli/internal/deletion.pb.h"
#include "storage/lineage_store.h"
#include "tests/coordinator/engine_test_fixture.h"

namespace oubli::coordinator {
namespace {

using testing_util::FilesContaining;

// And after a restart: the replayed deletion leaves the shard serving
// nothing, so it is due at once, not at the end of the replayed window.
TEST_F(EngineTest, AShardLeftUnservedIsDueAtOnceAfterARestart) {
  ModelConfig config = TinyBatchedConfig(2, 100);  // a one-hour window
  config.sequences = 1;
  const auto samples = TinySamples(80, 2);
  auto plan = ShardingPlan::Create(config);
  ASSERT_TRUE(plan.ok()) << plan.status();
  std::string in_first;  // of shard 0's first slice
  for (const Sample& s : samples) {
    const SliceRef where = plan->Assign(s);
    if (where.shard == 0 && where.slice == plan->orders()[0].front()) {
      in_first = s.id;
      break;
    }
  }
  ASSERT_FALSE(in_first.empty());
  const std::string deletion_id =
      DeleteThenClose("m", config, samples, in_first);
  ASSERT_FALSE(deletion_id.empty());
  auto engine = OpenEngine("m", config);
  ASSERT_NE(engine, nullptr);
  auto retrained = engine->RunPendingRetrains(/*ignore_policy=*/false);
  ASSERT_TRUE(retrained.ok()) << retrained.status();
  EXPECT_EQ(retrained->positions_trained, config.slices);
  EXPECT_EQ(engine->GetDeletion(deletion_id)->stage, DeletionStage::kRestored);
  EXPECT_EQ(engine->Fingerprint(),
            ScratchFingerprint(config, samples, {in_first}));
}

TEST_F(EngineTest, CorruptCheckpointIsRetrainedNotFatal) {
  const ModelConfig config = TinyConfig(6);
  const auto samples = TinySamples(100, 6);
  std::string damaged;
  {
    auto engine = OpenEngine("m", config);
    ASSERT_TRUE(engine->Ingest(samples).ok());
    ASSERT_TRUE(engine->Train().ok());
    // Damage the served checkpoint of shard 0.
    damaged = engine->GetModelStatus().shards[0].served.key;
    testing_util::WriteWholeFile(
        std::filesystem::path(engine->checkpoint_dir()) / damaged,
        "not a checkpoint");
  }
  auto engine = OpenEngine("m", config);
  ASSERT_NE(engine, nullptr);
  // Shard 0 falls back to its other full-length sequence; the damaged
  // prefix is the one missing.
  const ModelStatus reopened = engine->GetModelStatus();
  EXPECT_NE(reopened.shards[0].served.key, damaged);
  EXPECT_EQ(reopened.shards[0].served.sequence, 1);
  EXPECT_EQ(reopened.missing_prefixes, 1);
  ASSERT_TRUE(engine->RunPendingRetrains(false).ok());
  EXPECT_EQ(engine->GetModelStatus().shards[0].served.key, damaged);
  EXPECT_EQ(engine->GetModelStatus().missing_prefixes, 0);
  EXPECT_EQ(engine->Fingerprint(), ScratchFingerprint(config, samples, {}));
}

TEST_F(EngineTest, RestartFinishesPendingDeletion) {
  const ModelConfig config = TinyConfig(9);
  const auto samples = TinySamples(120, 9);
  const std::string deletion_id =
      DeleteThenClose("m", config, samples, "sample-1042");
  ASSERT_FALSE(deletion_id.empty());
  auto reopened = OpenEngine("m", config);
  auto pending = reopened->GetDeletion(deletion_id);
  ASSERT_TRUE(pending.ok()) << pending.status();
  EXPECT_EQ(pending->stage, DeletionStage::kPurged);
  ASSERT_TRUE(reopened->RunPendingRetrains(false).ok());
  EXPECT_EQ(reopened->GetDeletion(deletion_id)->stage,
            DeletionStage::kRestored);
  EXPECT_EQ(reopened->Fingerprint(),
            ScratchFingerprint(config, samples, {"sample-1042"}));
  // New deletion ids continue after the recovered ones.
  auto next = reopened->DeleteSamples({"sample-1043"});
  ASSERT_TRUE(next.ok());
  EXPECT_GT(next->deletion_id, deletion_id);
}

TEST_F(EngineTest, RestartFinishesDeletionInterruptedAfterAccepted) {
  const ModelConfig config = TinyConfig(10);
  const auto samples = TinySamples(120, 10);
  {
    auto engine = OpenEngine("m", config);
    ASSERT_TRUE(engine->Ingest(samples).ok());
    ASSERT_TRUE(engine->Train().ok());
  }
  // A crash right after the ACCEPTED batch: only the durable record exists.
  {
    auto store = storage::LineageStore::Open(
        {(root_ / "m" / "lineage").string(), false});
    ASSERT_TRUE(store.ok()) << store.status();
    internal::DeletionRecord record;
    record.set_deletion_id("del-000000000007");
    record.add_resolved_ids("sample-1021");
    auto plan = ShardingPlan::Create(config);
    ASSERT_EQ(samples[21].id, "sample-1021");
    record.add_affected_shards(plan->Assign(samples[21]).shard);
    record.set_accepted_unix_nanos(absl::ToUnixNanos(absl::Now()));
    ASSERT_TRUE((*store)
                    ->RecordDeletion("del-000000000007",
                                     record.SerializeAsString(),
                                     {"sample-1021"})
                    .ok());
  }
  auto engine = OpenEngine("m", config);
  ASSERT_NE(engine, nullptr);
  auto receipt = engine->GetDeletion("del-000000000007");
  ASSERT_TRUE(receipt.ok()) << receipt.status();
  EXPECT_EQ(receipt->stage, DeletionStage::kPurged);
  EXPECT_THAT(FilesContaining(root_ / "m", samples[21].features),
              ::testing::IsEmpty());
  ASSERT_TRUE(engine->RunPendingRetrains(false).ok());
  EXPECT_EQ(engine->GetDeletion("del-000000000007")->stage,
            DeletionStage::kRestored);
  EXPECT_EQ(engine->Fingerprint(),
            ScratchFingerprint(config, samples, {"sample-1021"}));
  auto next = engine->DeleteSamples({"sample-1022"});
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(next->deletion_id, "del-000000000008");
}

TEST_F(EngineTest, ReopenWithDifferentConfigIsRefused) {
  {
    auto engine = OpenEngine("m", TinyConfig(1));
    ASSERT_NE(engine, nullptr);
  }
  Engine::Options options;
  options.data_dir = (root_ / "m").string();
  options.config = TinyConfig(2);
  EXPECT_EQ(Engine::Open(options).status().code(),
            absl::StatusCode::kFailedPrecondition);
  options.config.reset();  // the stored config is used
  auto engine = Engine::Open(options);
  ASSERT_TRUE(engine.ok()) << engine.status();
  EXPECT_EQ((*engine)->config().seed, 1u);
}

// A restart does not turn a BATCHED window into an immediate retrain: the
// shard cut before it stays queued until the window (from the deletion's
// ACCEPTED time) ends, and then restores exactly.
TEST_F(EngineTest, BatchedWindowSurvivesARestart) {
  const ModelConfig config = TinyBatchedConfig(12, 100);
  const auto samples = TinySamples(120, 12);
  const std::string deletion_id =
      DeleteThenClose("m", config, samples, "sample-1030");
  ASSERT_FALSE(deletion_id.empty());
  auto engine = OpenEngine("m", config);
  ASSERT_NE(engine, nullptr);
  EXPECT_EQ(engine->GetModelStatus().retrain_queue_shards, 1);
  auto within_window = engine->RunPendingRetrains(/*ignore_policy=*/false);
  ASSERT_TRUE(within_window.ok()) << within_window.status();
  EXPECT_EQ(within_window->positions_trained, 0);
  EXPECT_EQ(engine->GetDeletion(deletion_id)->stage, DeletionStage::kPurged);
  ASSERT_TRUE(engine->RunPendingRetrains(/*ignore_policy=*/true).ok());
  EXPECT_EQ(engine->GetDeletion(deletion_id)->stage,
            DeletionStage::kRestored);
  EXPECT_EQ(engine->Fingerprint(),
            ScratchFingerprint(config, samples, {"sample-1030"}));
}

// The batch open at a restart is the batch after it: a deletion after the
// restart joins it, and reaching max_batch makes both shards due.
TEST_F(EngineTest, BatchOpenAtARestartFillsAfterIt) {
  const ModelConfig config = TinyBatchedConfig(13, 2);
  const auto samples = TinySamples(120, 13);
  const std::string first =
      DeleteThenClose("m", config, samples, "sample-1040");
  ASSERT_FALSE(first.empty());
  auto engine = OpenEngine("m", config);
  ASSERT_NE(engine, nullptr);
  auto second = engine->DeleteSamples({"sample-1041"});
  ASSERT_TRUE(second.ok()) << second.status();
  ASSERT_TRUE(engine->RunPendingRetrains(/*ignore_policy=*/false).ok());
  EXPECT_EQ(engine->GetDeletion(first)->stage, DeletionStage::kRestored);
  EXPECT_EQ(engine->GetDeletion(second->deletion_id)->stage,
            DeletionStage::kRestored);
}

}  // namespace
}  // namespace oubli::coordinator
