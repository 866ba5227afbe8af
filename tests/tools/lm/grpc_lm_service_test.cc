// The forgetting study's LmService over gRPC, against a real
// oubli-coordinator and oubli-worker started by it: each call does what
// the study relies on (training cost from the job and the coordinator's
// counters, FORGOTTEN and RESTORED watched, Verify), and the scorer answers
// Score and greedy Generate as the metrics expect (n-1 values per
// sequence; the stop token ends a generation and is not part of it).
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "common/types.h"
#include "gtest/gtest.h"
#include "tools/lm/grpc_lm_service.h"
#include "tools/lm/lm_workload.h"

namespace oubli::lm {
namespace {

constexpr int kVocab = 24;

// Counting texts: owner-k holds texts 2k and 2k+1, each six ids counting
// up from its own start.
std::vector<Sample> CountingSamples(int n) {
  std::vector<Sample> samples;
  for (int i = 0; i < n; ++i) {
    Sample& s = samples.emplace_back();
    s.id = absl::StrCat("text-", i);
    s.owner = absl::StrCat("owner-", i / 2);
    std::vector<uint32_t> ids;
    for (int t = 0; t < 6; ++t) ids.push_back(1 + (i + t) % (kVocab - 1));
    s.features = EncodeTokens(ids, &s.feature_type);
  }
  return samples;
}

// A seeded base (no file), S=2 x L=2 x B=1; retraining only on Train, as
// the study has it.
ModelConfig TinyConfig() {
  LmModelOptions options;
  options.dim = 16;
  options.layers = 2;
  options.heads = 2;
  options.context_length = 12;
  options.lora_rank = 2;
  options.shards = 2;
  options.slices = 2;
  options.sequences = 1;
  options.epochs = 2;
  options.batch_size = 4;
  ModelConfig config = LmModelConfig(options, kVocab);
  config.retrain.mode = RetrainMode::kBatched;
  config.retrain.window = absl::Hours(24);
  config.retrain.max_batch = 1000;
  return config;
}

class GrpcLmServiceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string((std::filesystem::temp_directory_path() /
                            absl::StrCat("grpc_lm_service_test-", getpid()))
                               .string());
    std::filesystem::create_directories(*dir_);
    bench::ClusterOptions cluster;
    cluster.dir = *dir_;
    cluster.workers = 1;
    cluster.training_threads = 1;
    cluster.coordinator_binary = OUBLI_COORDINATOR;
    cluster.worker_binary = OUBLI_WORKER;
    auto service = StartLocalLmService(cluster);
    ASSERT_TRUE(service.ok()) << service.status();
    service_ = service->release();
  }
  static void TearDownTestSuite() {
    delete service_;
    std::filesystem::remove_all(*dir_);
    delete dir_;
  }

  void SetUp() override { ASSERT_NE(service_, nullptr); }

  // Created, ingested and trained once for the suite.
  static void Trained(const std::string& model_id, TrainCost* cost) {
    ASSERT_TRUE(service_->CreateModel(model_id, TinyConfig()).ok());
    ASSERT_TRUE(service_->Ingest(model_id, CountingSamples(16)).ok());
    absl::StatusOr<TrainCost> trained = service_->Train(model_id);
    ASSERT_TRUE(trained.ok()) << trained.status();
    if (cost != nullptr) *cost = *trained;
  }

  static std::string* dir_;
  static LmService* service_;
};
std::string* GrpcLmServiceTest::dir_ = nullptr;
LmService* GrpcLmServiceTest::service_ = nullptr;

TEST_F(GrpcLmServiceTest, TrainsForgetsRestoresAndVerifies) {
  TrainCost full;
  ASSERT_NO_FATAL_FAILURE(Trained("cycle", &full));
  EXPECT_EQ(full.positions, 2 * 2 * 1);  // every prefix, once
  EXPECT_GT(full.sample_visits, 0);
  absl::StatusOr<std::string> before = service_->Fingerprint("cycle");
  ASSERT_TRUE(before.ok()) << before.status();
  EXPECT_FALSE(before->empty());

  absl::StatusOr<ForgetReceipt> receipt =
      service_->ForgetOwner("cycle", "owner-0");
  ASSERT_TRUE(receipt.ok()) << receipt.status();
  EXPECT_FALSE(receipt->deletion_id.empty());
  EXPECT_EQ(receipt->affected_shards.size(), 1u);  // placement by owner
  EXPECT_GE(receipt->to_forgotten, absl::ZeroDuration());
  absl::StatusOr<std::string> forgotten = service_->Fingerprint("cycle");
  ASSERT_TRUE(forgotten.ok());
  EXPECT_NE(*forgotten, *before);

  // Nothing retrains before Train: its job does the cut prefixes.
  absl::StatusOr<TrainCost> retrain = service_->Train("cycle");
  ASSERT_TRUE(retrain.ok()) << retrain.status();
  EXPECT_GE(retrain->positions, 1);
  EXPECT_LT(retrain->positions, full.positions);
  EXPECT_GT(retrain->sample_visits, 0);
  EXPECT_TRUE(
      service_->WaitForRestored(receipt->deletion_id, absl::Minutes(2)).ok());
  absl::StatusOr<VerifyResult> verify = service_->Verify("cycle");
  ASSERT_TRUE(verify.ok()) << verify.status();
  EXPECT_TRUE(verify->match);
  EXPECT_TRUE(verify->restored);

  // A sample the model refuses is an error, not a silent skip.
  Sample bad = CountingSamples(1).front();
  bad.id = "out-of-vocabulary";
  bad.features = EncodeTokens({1, kVocab}, &bad.feature_type);
  EXPECT_FALSE(service_->Ingest("cycle", absl::MakeConstSpan(&bad, 1)).ok());
}

TEST_F(GrpcLmServiceTest, ScorerAnswersScoreAndGreedyGenerate) {
  ASSERT_NO_FATAL_FAILURE(Trained("scored", nullptr));
  std::unique_ptr<LmScorer> scorer = service_->Scorer("scored");
  auto scores = scorer->Score({{1, 2, 3, 4}, {5, 6}});
  ASSERT_TRUE(scores.ok()) << scores.status();
  ASSERT_EQ(scores->size(), 2u);
  EXPECT_EQ((*scores)[0].size(), 3u);
  EXPECT_EQ((*scores)[1].size(), 1u);
  for (const auto& values : *scores) {
    for (float v : values) EXPECT_LE(v, 0.0f);
  }

  const std::vector<int32_t> prompt = {1, 2};
  auto free_run = scorer->Generate(prompt, 3, /*stop_token=*/-1);
  ASSERT_TRUE(free_run.ok()) << free_run.status();
  ASSERT_EQ(free_run->size(), 3u);
  // Greedy: the same again; stopping at its first token leaves nothing.
  EXPECT_EQ(*scorer->Generate(prompt, 3, -1), *free_run);
  auto stopped = scorer->Generate(prompt, 3, free_run->front());
  ASSERT_TRUE(stopped.ok()) << stopped.status();
  EXPECT_TRUE(stopped->empty());

  // An untrained model with base_fallback answers from its base.
  ASSERT_TRUE(service_->CreateModel("base-only", TinyConfig()).ok());
  auto base = service_->Scorer("base-only")->Score({{1, 2, 3}});
  ASSERT_TRUE(base.ok()) << base.status();
  EXPECT_EQ(base->front().size(), 2u);
  EXPECT_EQ(service_->Scorer("no-such-model")->Score({{1, 2}}).status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace oubli::lm
