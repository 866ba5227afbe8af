// Engine purges: the deleted payload leaves every file and cache, stale
// checkpoints are destroyed, and a checkpoint holder that is down blocks
// exactly the deletions whose copies it held.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <random>
#include <set>
#include <string>
#include <string_view>

#include "absl/synchronization/mutex.h"
#include "coordinator/encoded_slice_cache.h"
#include "tests/coordinator/engine_test_fixture.h"

namespace oubli::coordinator {
namespace {

using testing_util::FilesContaining;

TEST_F(EngineTest, PurgeDestroysPayloadAndStaleCheckpoints) {
  const ModelConfig config = TinyConfig(5);
  auto samples = TinySamples(120, 5);
  // A payload with no repeated runs, so compression cannot hide it.
  std::mt19937_64 rng(99);
  for (char& byte : samples[17].features) {
    byte = static_cast<char>(rng() % 256);
  }
  const Sample victim = samples[17];
  auto engine = OpenEngine("m", config);
  ASSERT_TRUE(engine->Ingest(samples).ok());
  ASSERT_TRUE(engine->Train().ok());
  // An earlier purge flushes everything into SST files, so the victim's
  // purge has to rewrite sorted files, not just drop a memtable.
  ASSERT_TRUE(engine->DeleteSamples({samples[3].id}).ok());
  ASSERT_TRUE(engine->RunPendingRetrains(false).ok());
  const std::filesystem::path dir = root_ / "m";
  const auto before_files = FilesContaining(dir, victim.features);
  ASSERT_FALSE(before_files.empty())
      << "the check must be able to see the payload before purging";
  bool in_sst = false;
  for (const std::string& f : before_files) {
    in_sst = in_sst || std::string_view(f).ends_with(".sst");
  }
  EXPECT_TRUE(in_sst) << "the payload should sit in an SST before purging";

  const auto before = CheckpointDigests(engine->checkpoint_dir());
  auto receipt = engine->DeleteSamples({victim.id});
  ASSERT_TRUE(receipt.ok());
  ASSERT_TRUE(engine
                  ->WaitForStage(receipt->deletion_id, DeletionStage::kPurged,
                                 absl::Seconds(60))
                  .ok());
  EXPECT_THAT(FilesContaining(dir, victim.features), ::testing::IsEmpty());

  const auto after = CheckpointDigests(engine->checkpoint_dir());
  // Every sequence of the shard lost the prefixes containing the slice.
  int destroyed = 0;
  for (const auto& a : receipt->affected) {
    destroyed += a.valid_length_before - a.valid_length_after;
  }
  EXPECT_EQ(before.size() - after.size(), static_cast<size_t>(destroyed));
  for (const auto& [key, digest] : after) EXPECT_TRUE(before.contains(key));
}

// The coordinator's slice cache is scanned like the data dir: the
// deleted payload leaves it when the deletion is FORGOTTEN, and retraining
// does not bring it back.
TEST_F(EngineTest, DeletionDropsTheCachedSliceHoldingIt) {
  const ModelConfig config = TinyConfig(5);
  auto samples = TinySamples(120, 5);
  // No repeated runs: found only where this sample's bytes are.
  samples[17].features = testing_util::RandomBytes(kSide * kSide, 7);
  const Sample victim = samples[17];
  auto cache = std::make_shared<EncodedSliceCache>(int64_t{64} << 20);
  Engine::Options options;
  options.background_retrain = false;
  options.slice_cache = cache;
  auto engine = OpenEngineWith("m", config, options);
  ASSERT_NE(engine, nullptr);
  ASSERT_TRUE(engine->Ingest(samples).ok());
  ASSERT_TRUE(engine->Train().ok());
  ASSERT_TRUE(cache->HoldsBytes(victim.features))
      << "the check must be able to see the payload in the cache";

  auto receipt = engine->DeleteSamples({victim.id});
  ASSERT_TRUE(receipt.ok()) << receipt.status();
  EXPECT_FALSE(cache->HoldsBytes(victim.features));
  ASSERT_TRUE(engine->RunPendingRetrains(true).ok());
  EXPECT_GT(cache->slices(), 0);
  EXPECT_FALSE(cache->HoldsBytes(victim.features));
  EXPECT_TRUE(engine
                  ->WaitForStage(receipt->deletion_id, DeletionStage::kRestored,
                                 absl::Seconds(60))
                  .ok());
  EXPECT_FALSE(cache->HoldsBytes(victim.features));
}

// Checkpoint copies whose manifests name one "holder"; Forget fails for
// holders marked down. Enough to see which deletions a down holder blocks.
class FakeReplicas final : public CheckpointReplicas {
 public:
  absl::Status Protect(
      const std::string& key, absl::string_view, const ErasureCodeConfig&,
      const std::function<absl::Status(const std::string&)>& persist) override {
    absl::MutexLock lock(&mu_);
    return persist(holder_);
  }
  bool CanProtect(const ErasureCodeConfig&) override { return true; }
  absl::StatusOr<std::string> Restore(const std::string&,
                                      const std::string&) override {
    return absl::DataLossError("fake holds no bytes");
  }
  absl::StatusOr<int> Repair(
      const std::string&, const std::string&,
      const std::function<absl::Status(const std::string&)>&) override {
    return 0;
  }
  absl::Status Forget(const std::string&,
                      const std::string& manifest) override {
    absl::MutexLock lock(&mu_);
    if (down_.contains(manifest)) {
      return absl::UnavailableError(manifest + " is down");
    }
    return absl::OkStatus();
  }
  void Set(const std::string& holder, std::set<std::string> down) {
    absl::MutexLock lock(&mu_);
    holder_ = holder;
    down_ = std::move(down);
  }

 private:
  absl::Mutex mu_;
  std::string holder_ ABSL_GUARDED_BY(mu_) = "a";
  std::set<std::string> down_ ABSL_GUARDED_BY(mu_);
};

TEST_F(EngineTest, ADownHolderBlocksOnlyTheDeletionsWhoseCheckpointsItHeld) {
  const ModelConfig config = TinyConfig(12);
  auto replicas = std::make_shared<FakeReplicas>();
  auto opened = OpenEngine("m", config, /*background=*/false, replicas);
  ASSERT_NE(opened, nullptr);
  Engine& engine = *opened;
  const std::vector<Sample> samples = TinySamples(80, 12);
  ASSERT_TRUE(engine.Ingest(samples).ok());
  ASSERT_TRUE(engine.Train().ok());

  // Two samples of one slice (z, y) and one of another shard (x).
  const auto by_slice = BySlice(config, samples);
  std::string z, y, x;
  int z_shard = -1;
  for (const auto& [where, ids] : by_slice) {
    if (ids.size() >= 2) {
      z = ids[0];
      y = ids[1];
      z_shard = where.first;
      break;
    }
  }
  for (const auto& [where, ids] : by_slice) {
    if (where.first != z_shard) x = ids[0];
  }
  ASSERT_FALSE(z.empty() || x.empty());

  // Deleting z retrains its cut prefixes, now coded on holder "b".
  replicas->Set("b", {});
  auto first = engine.DeleteSamples({z});
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(engine.RunPendingRetrains(true).ok());
  ASSERT_EQ(engine.GetDeletion(first->deletion_id)->stage,
            DeletionStage::kRestored);

  // Holder "a" (every other checkpoint) goes down: x's deletion cannot be
  // purged, its shard's cut checkpoints have chunks there.
  replicas->Set("b", {"a"});
  auto blocked = engine.DeleteSamples({x});
  ASSERT_TRUE(blocked.ok()) << blocked.status();
  ASSERT_TRUE(engine.RunPendingRetrains(true).ok());
  EXPECT_EQ(engine.GetDeletion(blocked->deletion_id)->stage,
            DeletionStage::kForgotten);

  // y's deletion cuts only checkpoints trained after z's, all on "b", in a
  // shard with nothing left on "a": it is purged (and restored) while "a"
  // is still down.
  auto free = engine.DeleteSamples({y});
  ASSERT_TRUE(free.ok()) << free.status();
  ASSERT_TRUE(engine.RunPendingRetrains(true).ok());
  EXPECT_EQ(engine.GetDeletion(free->deletion_id)->stage,
            DeletionStage::kRestored);
  auto still = engine.GetDeletion(blocked->deletion_id);
  EXPECT_EQ(still->stage, DeletionStage::kForgotten);
  EXPECT_THAT(still->note, ::testing::HasSubstr("a is down"));

  // "a" is back: x's deletion completes too.
  replicas->Set("b", {});
  ASSERT_TRUE(engine.RunPendingRetrains(true).ok());
  EXPECT_EQ(engine.GetDeletion(blocked->deletion_id)->stage,
            DeletionStage::kRestored);
}

// A deletion in the same shard as one whose checkpoints are stuck on a
// down holder waits too: those checkpoints hold its samples as well.
TEST_F(EngineTest, ADownHolderBlocksLaterDeletionsOfTheSameShard) {
  const ModelConfig config = TinyConfig(13);
  auto replicas = std::make_shared<FakeReplicas>();
  auto opened = OpenEngine("m", config, /*background=*/false, replicas);
  ASSERT_NE(opened, nullptr);
  Engine& engine = *opened;
  const std::vector<Sample> samples = TinySamples(80, 13);
  ASSERT_TRUE(engine.Ingest(samples).ok());
  ASSERT_TRUE(engine.Train().ok());
  std::vector<std::string> two;
  for (const auto& [where, ids] : BySlice(config, samples)) {
    if (ids.size() >= 2) two = {ids[0], ids[1]};
  }
  ASSERT_EQ(two.size(), 2u);

  replicas->Set("b", {"a"});
  auto first = engine.DeleteSamples({two[0]});
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(engine.RunPendingRetrains(true).ok());
  // The second sample is in checkpoints still on "a" (stale since the
  // first deletion), although its own cut ones are on "b".
  auto second = engine.DeleteSamples({two[1]});
  ASSERT_TRUE(second.ok()) << second.status();
  ASSERT_TRUE(engine.RunPendingRetrains(true).ok());
  EXPECT_EQ(engine.GetDeletion(first->deletion_id)->stage,
            DeletionStage::kForgotten);
  EXPECT_EQ(engine.GetDeletion(second->deletion_id)->stage,
            DeletionStage::kForgotten);
  replicas->Set("b", {});
  ASSERT_TRUE(engine.RunPendingRetrains(true).ok());
  EXPECT_EQ(engine.GetDeletion(second->deletion_id)->stage,
            DeletionStage::kRestored);
}

}  // namespace
}  // namespace oubli::coordinator
