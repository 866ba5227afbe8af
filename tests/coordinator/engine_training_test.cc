// Engine ingest, training and serving on tiny synthetic data: what is
// accepted, what trains (once per prefix, the same bits however the data
// arrived or was cached), what Predict answers, and the precise errors of
// bad requests.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "coordinator/encoded_slice_cache.h"
#include "coordinator/sharding_plan.h"
#include "coordinator/slice_data.h"
#include "tests/coordinator/engine_test_fixture.h"
#include "worker/ml/s3t_trainer.h"
#include "worker/ml/shard_model.h"

namespace oubli::coordinator {
namespace {

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

// Ingest batches join the in-memory slices without a read back from the
// store, and a batch the store partly refuses (or that repeats an id) is
// read back instead; either way the model trains to the bits of one batch
// of the surviving samples, and Verify (which reads the store) agrees.
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
  auto base_state = ml::LoadBaseState(config);
  ASSERT_TRUE(base_state.ok()) << base_state.status();
  auto base = ml::ShardModel::CreateBase(config, *base_state);
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

}  // namespace
}  // namespace oubli::coordinator
