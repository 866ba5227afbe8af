// Engine::Verify while deletions land: it compares each shard with what
// it served when its data was read, so a deletion never reads as a
// mismatch.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <set>
#include <string>
#include <thread>

#include "coordinator/sharding_plan.h"
#include "tests/coordinator/engine_test_fixture.h"

namespace oubli::coordinator {
namespace {

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

}  // namespace
}  // namespace oubli::coordinator
