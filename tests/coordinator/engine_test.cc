// Engine behaviour on tiny synthetic data. The central property: after a
// deletion is RESTORED, the served model is bitwise identical to a model
// trained from scratch, by an independent engine, on the retained data.
#include "coordinator/engine.h"

#include <dirent.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/hash.h"
#include "coordinator/encoded_slice_cache.h"
#include "coordinator/position_choice.h"
#include "coordinator/remote_training.h"
#include "coordinator/sharding_plan.h"
#include "coordinator/slice_data.h"
#include "oubli/internal/deletion.pb.h"
#include "storage/lineage_store.h"
#include "tests/testing/test_util.h"
#include "worker/ml/s3t_trainer.h"
#include "worker/ml/shard_model.h"

namespace oubli::coordinator {
namespace {

using ::testing::Contains;
using ::testing::Not;
using ::testing::UnorderedElementsAreArray;
using testing_util::FilesContaining;

constexpr int kSide = 4;  // 4x4 "images"
constexpr int kClasses = 3;

// Sample placement unless told otherwise: most tests below want one
// request to reach both shards; the owner-placement tests say so.
ModelConfig TinyConfig(uint64_t seed,
                       Placement placement = Placement::kSample) {
  ModelConfig c;
  c.model_id = "tiny";
  c.placement.by = placement;
  c.backbone.kind = BackboneKind::kMlp;
  c.backbone.input_height = kSide;
  c.backbone.input_width = kSide;
  c.backbone.num_classes = kClasses;
  c.backbone.mlp_hidden = {12, 12, 12, 12};
  c.backbone.lora.rank = 2;
  c.shards = 2;
  c.slices = 4;
  c.sequences = 2;
  c.seed = seed;
  c.train.epochs_per_position = 2;
  c.train.batch_size = 8;
  c.train.learning_rate = 1e-2;
  return c;
}

// TinyConfig retraining in BATCHED mode behind a one-hour window (so only
// max_batch, or ignoring the policy, starts it within a test).
ModelConfig TinyBatchedConfig(uint64_t seed, int max_batch) {
  ModelConfig c = TinyConfig(seed);
  c.retrain.mode = RetrainMode::kBatched;
  c.retrain.window = absl::Hours(1);
  c.retrain.max_batch = max_batch;
  return c;
}

// Learnable synthetic data: the label is which third of the image is
// brightest. Owners hold 5 samples each.
std::vector<Sample> TinySamples(int n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<Sample> samples;
  for (int i = 0; i < n; ++i) {
    Sample s;
    s.id = "sample-" + std::to_string(1000 + i);
    s.owner = "owner-" + std::to_string(i / 5);
    s.features.resize(kSide * kSide);
    for (char& byte : s.features) byte = static_cast<char>(rng() % 256);
    s.label = static_cast<int>(rng() % kClasses);
    for (int k = 0; k < kSide; ++k) {
      s.features[s.label * 5 + (k % 5)] = static_cast<char>(250);
    }
    samples.push_back(std::move(s));
  }
  return samples;
}

// name -> SHA-256 of every checkpoint file in `dir`.
std::map<std::string, std::string> CheckpointDigests(const std::string& dir) {
  std::map<std::string, std::string> digests;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    digests[entry.path().filename().string()] =
        Sha256Hex(testing_util::ReadWholeFile(entry.path()));
  }
  return digests;
}

class EngineTest : public ::testing::Test {
 protected:
  std::unique_ptr<Engine> OpenEngine(
      const std::string& name, const ModelConfig& config,
      bool background = false,
      std::shared_ptr<CheckpointReplicas> replicas = nullptr) {
    Engine::Options options;
    options.background_retrain = background;
    options.replicas = std::move(replicas);
    return OpenEngineWith(name, config, std::move(options));
  }

  // Opens model `name` with `config` and the rest of `options` as given;
  // null (and a failed expectation) if it does not open.
  std::unique_ptr<Engine> OpenEngineWith(const std::string& name,
                                         const ModelConfig& config,
                                         Engine::Options options) {
    options.data_dir = (root_ / name).string();
    options.config = config;
    auto engine = Engine::Open(options);
    EXPECT_TRUE(engine.ok()) << engine.status();
    return engine.ok() ? *std::move(engine) : nullptr;
  }

  // Model "m" on `samples`, trained, whose positions go first to `trainer`
  // (a test double that may run a hook, then declines), with retraining
  // only when the test asks; null (and a failed expectation) on failure.
  std::unique_ptr<Engine> OpenTrainedVia(
      std::shared_ptr<RemoteTrainer> trainer, const ModelConfig& config,
      const std::vector<Sample>& samples,
      std::shared_ptr<EngineMetrics> metrics = nullptr) {
    Engine::Options options;
    options.background_retrain = false;
    options.metrics = std::move(metrics);
    options.remote_trainer = std::move(trainer);
    auto engine = OpenEngineWith("m", config, std::move(options));
    if (engine == nullptr) return nullptr;
    const bool trained =
        engine->Ingest(samples).ok() && engine->Train().ok();
    EXPECT_TRUE(trained);
    return trained ? std::move(engine) : nullptr;
  }

  // Fingerprint of a fresh engine trained from scratch on `samples` minus
  // `deleted`.
  std::string ScratchFingerprint(const ModelConfig& config,
                                 const std::vector<Sample>& samples,
                                 const std::set<std::string>& deleted) {
    std::vector<Sample> retained;
    for (const Sample& s : samples) {
      if (!deleted.contains(s.id)) retained.push_back(s);
    }
    auto engine =
        OpenEngine("scratch-" + std::to_string(scratch_count_++), config);
    EXPECT_TRUE(engine->Ingest(retained).ok());
    EXPECT_TRUE(engine->Train().ok());
    last_scratch_checkpoints_ = CheckpointDigests(engine->checkpoint_dir());
    return engine->Fingerprint();
  }

  // Sample ids by (shard, slice) under `config`'s sharding plan.
  static std::map<std::pair<int, int>, std::vector<std::string>> BySlice(
      const ModelConfig& config, const std::vector<Sample>& samples) {
    std::map<std::pair<int, int>, std::vector<std::string>> by_slice;
    auto plan = ShardingPlan::Create(config);
    EXPECT_TRUE(plan.ok()) << plan.status();
    if (!plan.ok()) return by_slice;
    for (const Sample& sample : samples) {
      const SliceRef where = plan->Assign(sample);
      by_slice[{where.shard, where.slice}].push_back(sample.id);
    }
    return by_slice;
  }

  // Opens model `name`, ingests and trains `samples`, deletes `sample_id`
  // and closes the engine (before retraining, maybe before the purge);
  // returns the deletion id.
  std::string DeleteThenClose(const std::string& name,
                              const ModelConfig& config,
                              const std::vector<Sample>& samples,
                              const std::string& sample_id) {
    auto engine = OpenEngine(name, config);
    EXPECT_TRUE(engine->Ingest(samples).ok());
    EXPECT_TRUE(engine->Train().ok());
    auto receipt = engine->DeleteSamples({sample_id});
    EXPECT_TRUE(receipt.ok()) << receipt.status();
    if (!receipt.ok()) return "";
    EXPECT_EQ(receipt->stage, DeletionStage::kForgotten);
    return receipt->deletion_id;
  }

  // Every checkpoint of the last ScratchFingerprint engine, by name.
  std::map<std::string, std::string> last_scratch_checkpoints_;

  testing_util::ScopedTempDir temp_dir_;
  const std::filesystem::path root_ = temp_dir_.path();
  int scratch_count_ = 0;
};

// Ingest batches join the in-memory slices without a read back from the
// store, and a batch the store partly refuses (or that repeats an id) is
// read back instead; either way the model trains to the bits of one batch
// of the surviving samples, and Verify (which reads the store) agrees.
TEST_F(EngineTest, TokenSamplesAreRefusedByImageModels) {
  // (Language models take them: engine_lm_test.)
  auto engine = OpenEngine("pixels", TinyConfig(3));
  ASSERT_NE(engine, nullptr);
  std::vector<Sample> samples = TinySamples(2, 3);
  // As many token ids as the model has features: still not features.
  std::vector<uint32_t> ids(samples[1].features.size(), 7);
  samples[1].features = EncodeTokens(ids, &samples[1].feature_type);
  ASSERT_EQ(samples[1].NumFeatures(), samples[0].NumFeatures());
  auto result = engine->Ingest(samples);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->accepted, 1);
  ASSERT_EQ(result->rejected.size(), 1u);
  EXPECT_EQ(result->rejected[0].second,
            "holds tokens; model 'tiny' takes image features");
}

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

TEST_F(EngineTest, IngestInBatchesTrainsLikeOneBatch) {
  const ModelConfig config = TinyConfig(3);
  std::vector<Sample> samples = TinySamples(120, 3);
  // A float-encoded sample in a uint8 slice: the slice travels as floats.
  samples[7].feature_type = FeatureType::kF32;
  std::string floats;
  for (unsigned char byte : samples[7].features) {
    const float value = static_cast<float>(byte) / 255.0f;
    floats.append(reinterpret_cast<const char*>(&value), sizeof(value));
  }
  samples[7].features = floats;
  auto engine = OpenEngine("batches", config);
  const absl::Span<const Sample> all(samples);
  ASSERT_TRUE(engine->Ingest(all.subspan(0, 40)).ok());
  ASSERT_TRUE(engine->Train().ok());
  // Merged in memory, with duplicates of stored samples.
  auto second = engine->Ingest(all.subspan(30, 50));
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->accepted, 40);
  EXPECT_EQ(second->duplicates, 10);
  // Read back: one id twice in the batch, and one refused (same id, other
  // content).
  std::vector<Sample> third(samples.begin() + 80, samples.end());
  third.push_back(samples[85]);
  Sample changed = samples[3];
  changed.label = (changed.label + 1) % 10;
  third.push_back(changed);
  auto last = engine->Ingest(third);
  ASSERT_TRUE(last.ok()) << last.status();
  EXPECT_EQ(last->accepted, 40);
  EXPECT_EQ(last->rejected.size(), 1u);
  ASSERT_TRUE(engine->Train().ok());
  EXPECT_EQ(engine->GetModelStatus().active_samples, 120);

  EXPECT_EQ(engine->Fingerprint(), ScratchFingerprint(config, samples, {}));
  auto verify = engine->Verify();
  ASSERT_TRUE(verify.ok()) << verify.status();
  EXPECT_TRUE(verify->match);
}

TEST_F(EngineTest, TrainsEveryPrefixAndServesFullLength) {
  const ModelConfig config = TinyConfig(1);
  auto engine = OpenEngine("m", config);
  const auto samples = TinySamples(120, 1);
  auto ingest = engine->Ingest(samples);
  ASSERT_TRUE(ingest.ok()) << ingest.status();
  EXPECT_EQ(ingest->accepted, 120);
  auto summary = engine->Train();
  ASSERT_TRUE(summary.ok()) << summary.status();
  // 2 shards x 2 rotations x 4 positions, no shared prefixes for rotations.
  EXPECT_EQ(summary->positions_trained, 16);

  const ModelStatus status = engine->GetModelStatus();
  EXPECT_EQ(status.missing_prefixes, 0);
  EXPECT_EQ(status.active_samples, 120);
  for (const ShardStatus& shard : status.shards) {
    EXPECT_TRUE(shard.served.served);
    EXPECT_EQ(shard.served.prefix.size(), 4u);
    for (const SequenceStatus& seq : shard.sequences) {
      EXPECT_EQ(seq.valid_length, 4);
    }
  }
  // Train is idempotent: everything is reused.
  auto again = engine->Train();
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->positions_trained, 0);

  std::vector<float> inputs(3 * kSide * kSide, 0.5f);
  auto prediction = engine->Predict(inputs, 3);
  ASSERT_TRUE(prediction.ok()) << prediction.status();
  ASSERT_EQ(prediction->probabilities.size(), 3u * kClasses);
  for (int r = 0; r < 3; ++r) {
    float sum = 0;
    for (int k = 0; k < kClasses; ++k) {
      sum += prediction->probabilities[r * kClasses + k];
    }
    EXPECT_NEAR(sum, 1.0f, 1e-5);
  }
  EXPECT_EQ(prediction->fingerprint, engine->Fingerprint());
  EXPECT_EQ(prediction->served.size(), 2u);
}

TEST_F(EngineTest, SharedPrefixesAreTrainedOnce) {
  ModelConfig config = TinyConfig(1);
  config.sequences = 6;  // 4 rotations + 2 that keep a length-1 prefix
  auto engine = OpenEngine("m", config);
  ASSERT_TRUE(engine->Ingest(TinySamples(60, 1)).ok());
  auto summary = engine->Train();
  ASSERT_TRUE(summary.ok()) << summary.status();
  // Per shard: 4 rotations x 4 positions + 2 x 3 (their first slice shared).
  EXPECT_EQ(summary->positions_trained, 2 * (16 + 6));
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

// Verify compares each shard with what it served when its data was read:
// deletions landing while it retrains never read as a mismatch.
TEST_F(EngineTest, VerifyDuringDeletionsNeverReportsAFalseMismatch) {
  const ModelConfig config = TinyConfig(21);
  const auto samples = TinySamples(160, 21);
  auto engine = OpenEngine("m", config);
  ASSERT_TRUE(engine->Ingest(samples).ok());
  ASSERT_TRUE(engine->Train().ok());
  for (int round = 0; round < 3; ++round) {
    std::atomic<bool> done{false};
    absl::StatusOr<VerifyReport> verify = absl::UnknownError("not run");
    std::thread verifier([&] {
      verify = engine->Verify();
      done = true;
    });
    // A few deletions spread over the run, in both shards.
    for (int i = 0; i < 4 && !done; ++i) {
      const std::string id =
          "sample-" + std::to_string(1000 + 40 * round + 7 * i);
      // Not ASSERT: the verifier thread must be joined.
      EXPECT_TRUE(engine->DeleteSamples({id}).ok()) << id;
      std::this_thread::sleep_for(std::chrono::milliseconds(40));
    }
    verifier.join();
    ASSERT_TRUE(verify.ok()) << verify.status();
    EXPECT_TRUE(verify->match) << "round " << round;
    EXPECT_EQ(verify->scratch_fingerprint, verify->served_fingerprint);
  }
}

// Deterministically: a deletion lands in each shard right after Verify has
// captured what the shard serves and before it reads the shard's data. The
// shard is captured again, so the report still matches (without the
// check, the old checkpoint would be compared with the new data).
TEST_F(EngineTest, ADeletionBetweenVerifysCaptureAndReadIsNotAMismatch) {
  const ModelConfig config = TinyConfig(22);
  const auto samples = TinySamples(160, 22);
  absl::StatusOr<ShardingPlan> plan = ShardingPlan::Create(config);
  ASSERT_TRUE(plan.ok()) << plan.status();
  Engine* engine = nullptr;
  std::set<int> hit;
  Engine::Options options;
  options.data_dir = (root_ / "m").string();
  options.config = config;
  options.background_retrain = false;
  options.verify_before_unlocked_read = [&](int shard) {
    if (!hit.insert(shard).second) return;  // once per shard
    for (const Sample& sample : samples) {
      if (plan->Assign(sample).shard != shard) continue;
      EXPECT_TRUE(engine->DeleteSamples({sample.id}).ok()) << sample.id;
      return;
    }
  };
  absl::StatusOr<std::unique_ptr<Engine>> opened = Engine::Open(options);
  ASSERT_TRUE(opened.ok()) << opened.status();
  engine = opened->get();
  ASSERT_TRUE(engine->Ingest(samples).ok());
  ASSERT_TRUE(engine->Train().ok());
  const std::string before = engine->Fingerprint();

  absl::StatusOr<VerifyReport> verify = engine->Verify();
  ASSERT_TRUE(verify.ok()) << verify.status();
  EXPECT_EQ(hit.size(), static_cast<size_t>(config.shards));
  EXPECT_TRUE(verify->match);
  EXPECT_FALSE(verify->restored);  // every shard was just cut
  // It verified what is served now, not what was served before.
  EXPECT_EQ(verify->served_fingerprint, engine->Fingerprint());
  EXPECT_NE(verify->served_fingerprint, before);
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

TEST_F(EngineTest, BadRequestsGetPreciseErrors) {
  const ModelConfig config = TinyConfig(1);
  auto engine = OpenEngine("m", config);
  EXPECT_EQ(engine->Train().status().code(),
            absl::StatusCode::kFailedPrecondition);  // no samples
  EXPECT_EQ(engine->Predict(std::vector<float>(16, 0.f), 1).status().code(),
            absl::StatusCode::kFailedPrecondition);  // not trained
  EXPECT_EQ(engine->DeleteSamples({}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(engine->DeleteSamples({"bad\xff"}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(engine->DeleteSamples({"nobody"}).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(engine->ForgetOwner("nobody").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(engine->GetDeletion("del-999").status().code(),
            absl::StatusCode::kNotFound);

  auto samples = TinySamples(40, 1);
  samples[0].features.resize(5);  // wrong feature count
  samples[1].label = kClasses;    // label out of range
  auto ingest = engine->Ingest(samples);
  ASSERT_TRUE(ingest.ok());
  EXPECT_EQ(ingest->accepted, 38);
  EXPECT_EQ(ingest->rejected.size(), 2u);

  // Deleting before training is allowed (erasure cannot wait for a model)
  // and completes at once with a note.
  auto early = engine->DeleteSamples({"sample-1005"});
  ASSERT_TRUE(early.ok()) << early.status();
  ASSERT_TRUE(engine
                  ->WaitForStage(early->deletion_id, DeletionStage::kRestored,
                                 absl::Seconds(60))
                  .ok());
  early = engine->GetDeletion(early->deletion_id);
  ASSERT_TRUE(early.ok()) << early.status();
  EXPECT_EQ(early->stage, DeletionStage::kRestored);
  EXPECT_FALSE(early->note.empty());

  ASSERT_TRUE(engine->Train().ok());
  EXPECT_EQ(engine->Predict(std::vector<float>(15, 0.f), 1).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(engine->Predict(std::vector<float>(16, 0.f), 0).status().code(),
            absl::StatusCode::kInvalidArgument);
  // Re-ingesting a deleted id is refused: ids are never reused.
  auto reingest = engine->Ingest({TinySamples(40, 1)[5]});
  ASSERT_TRUE(reingest.ok());
  EXPECT_EQ(reingest->accepted, 0);
  EXPECT_EQ(reingest->rejected.size(), 1u);
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

// serving.base_fallback: while no shard serves (before training, and when
// deletions cut every shard), the public base model answers and the
// prediction says so; the bits are the base model's own. Without it, the
// same requests fail with FAILED_PRECONDITION.
TEST_F(EngineTest, BaseFallbackAnswersWhileNoShardServes) {
  ModelConfig config = TinyConfig(2);
  config.sequences = 1;
  config.serving.base_fallback = true;
  const auto samples = TinySamples(80, 2);
  auto engine = OpenEngine("m", config);
  ASSERT_NE(engine, nullptr);
  const std::vector<float> rows = {
      0.1f, 0.9f, 0.3f, 0.5f, 0.2f, 0.0f, 1.0f, 0.7f,
      0.6f, 0.4f, 0.8f, 0.1f, 0.3f, 0.2f, 0.9f, 0.5f};
  auto base_state = worker::LoadBaseState(config);
  ASSERT_TRUE(base_state.ok()) << base_state.status();
  auto base = worker::ShardModel::CreateBase(config, *base_state);
  ASSERT_TRUE(base.ok()) << base.status();
  auto expected = (*base)->Probabilities(
      torch::tensor(rows, torch::kFloat32).reshape({1, 16}));
  ASSERT_TRUE(expected.ok()) << expected.status();

  auto untrained = engine->Predict(rows, 1);
  ASSERT_TRUE(untrained.ok()) << untrained.status();
  EXPECT_TRUE(untrained->from_base);
  ASSERT_EQ(untrained->probabilities.size(), 3u);
  for (int c = 0; c < 3; ++c) {
    EXPECT_EQ(untrained->probabilities[c], (*expected)[0][c].item<float>());
  }

  ASSERT_TRUE(engine->Ingest(samples).ok());
  ASSERT_TRUE(engine->Train().ok());
  auto trained = engine->Predict(rows, 1);
  ASSERT_TRUE(trained.ok()) << trained.status();
  EXPECT_FALSE(trained->from_base);
  // Cut both shards at their first slice: nothing serves.
  auto plan = ShardingPlan::Create(config);
  ASSERT_TRUE(plan.ok()) << plan.status();
  std::vector<std::string> victims;
  std::set<int> hit;
  for (const Sample& s : samples) {
    const SliceRef where = plan->Assign(s);
    if (where.slice == plan->orders()[0][0] && hit.insert(where.shard).second) {
      victims.push_back(s.id);
    }
  }
  ASSERT_TRUE(engine->DeleteSamples(victims).ok());
  auto cut = engine->Predict(rows, 1);
  ASSERT_TRUE(cut.ok()) << cut.status();
  EXPECT_TRUE(cut->from_base);
  EXPECT_EQ(cut->probabilities, untrained->probabilities);

  // Without the option: FAILED_PRECONDITION naming it.
  engine.reset();
  config.serving.base_fallback = false;  // weight-neutral: may change
  engine = OpenEngine("m", config);
  ASSERT_NE(engine, nullptr);
  auto refused = engine->Predict(rows, 1);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.status().message(),
              ::testing::HasSubstr("serving.base_fallback"));
}

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

// Memory for slice bytes is the cache's budget: with none at all, every
// position reads its slices from the lineage store, and the model is the
// same, bit for bit.
TEST_F(EngineTest, TrainingWithoutACachedSliceIsTheSameModel) {
  const ModelConfig config = TinyConfig(8);
  const auto samples = TinySamples(120, 8);
  std::string fingerprints[2];
  for (int budget : {0, 1}) {
    auto cache = std::make_shared<EncodedSliceCache>(
        budget == 0 ? 0 : EncodedSliceCache::kDefaultBytes);
    Engine::Options options;
    options.background_retrain = false;
    options.slice_cache = cache;
    auto engine =
        OpenEngineWith(budget == 0 ? "uncached" : "cached", config, options);
    ASSERT_NE(engine, nullptr);
    ASSERT_TRUE(engine->Ingest(samples).ok());
    ASSERT_TRUE(engine->Train().ok());
    ASSERT_TRUE(engine->DeleteSamples({samples[3].id, samples[60].id}).ok());
    ASSERT_TRUE(engine->RunPendingRetrains(true).ok());
    EXPECT_EQ(cache->bytes() == 0, budget == 0);
    auto verify = engine->Verify();
    ASSERT_TRUE(verify.ok()) << verify.status();
    EXPECT_TRUE(verify->match);
    fingerprints[budget] = engine->Fingerprint();
  }
  EXPECT_EQ(fingerprints[0], fingerprints[1]);
}

// A slice would outgrow the limit: the batch is refused whole, naming the
// slice and the limit, before anything is stored (not later, when the
// slice is encoded for training).
TEST_F(EngineTest, IngestRefusesABatchThatOverfillsASlice) {
  const ModelConfig config = TinyConfig(9);
  const auto samples = TinySamples(120, 9);
  Engine::Options options;
  options.background_retrain = false;
  // Room for 40 of these samples per slice; 120 over 8 slices is 15 on
  // average, 400 more is 50.
  options.max_slice_bytes = 40 * EncodedSampleBytes(samples[0]);
  auto engine = OpenEngineWith("m", config, options);
  ASSERT_NE(engine, nullptr);
  ASSERT_TRUE(engine->Ingest(absl::MakeConstSpan(samples).subspan(0, 60)).ok());
  const auto more = TinySamples(400, 10);
  std::vector<Sample> renamed;
  for (Sample s : more) {
    s.id = "more-" + s.id;
    renamed.push_back(std::move(s));
  }
  auto refused = engine->Ingest(renamed);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(refused.status().message()),
              ::testing::ContainsRegex("slice [0-3] of shard [01]"));
  EXPECT_THAT(refused.status().message(),
              ::testing::HasSubstr(absl::StrCat(
                  "limit of ", options.max_slice_bytes, " bytes")));
  EXPECT_EQ(engine->GetModelStatus().active_samples, 60);
  // Below the limit, the rest goes in (and trains: every slice encodes).
  ASSERT_TRUE(engine->Ingest(absl::MakeConstSpan(samples).subspan(60)).ok());
  EXPECT_EQ(engine->GetModelStatus().active_samples, 120);
  EXPECT_TRUE(engine->Train().ok());
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

// Counts what the engine reports through EngineMetrics.
class CountingMetrics : public EngineMetrics {
 public:
  void DeletionAccepted(int64_t samples) override {
    ++accepted;
    deleted_samples += samples;
  }
  void DeletionForgotten(absl::Duration since_request) override {
    ++forgotten;
    EXPECT_GE(since_request, absl::ZeroDuration());
  }
  void DeletionPurged(absl::Duration) override { ++purged; }
  void DeletionRestored(absl::Duration) override { ++restored; }
  void PositionTrained(int64_t sample_visits, int64_t steps,
                       int64_t checkpoint_bytes) override {
    ++positions;
    samples += sample_visits;
    this->steps += steps;
    bytes += checkpoint_bytes;
  }
  void PositionWasted(int64_t) override { ++wasted; }
  std::atomic<int> accepted{0}, forgotten{0}, purged{0}, restored{0},
      wasted{0};
  std::atomic<int64_t> deleted_samples{0}, positions{0}, samples{0}, steps{0},
      bytes{0};
};

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
