// The workload on a real (tiny) decoder, without the engine: the base
// pretrains deterministically into a file the model config can name, and a
// model fine-tuned on some owners tells them from the holdout (the metrics
// have power) while the base, which saw none of them, cannot.
#include <cstdio>
#include <filesystem>

#include "common/file_util.h"
#include "common/hash.h"
#include "gtest/gtest.h"
#include "tools/lm/decoder_scorer.h"
#include "tools/lm/forget_report.h"
#include "tools/lm/lm_workload.h"
#include "worker/ml/s3t_trainer.h"

namespace oubli::lm {
namespace {

std::vector<const OwnerData*> Pointers(const std::vector<OwnerData>& owners) {
  std::vector<const OwnerData*> out;
  for (const OwnerData& o : owners) out.push_back(&o);
  return out;
}

class LmModelTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    WorkloadOptions options;
    options.profiles = {.seed = 4, .public_profiles = 60, .user_profiles = 16,
                        .holdout_profiles = 16};
    options.vocab_size = 320;
    auto workload = BuildWorkload(options);
    ASSERT_TRUE(workload.ok()) << workload.status();
    workload_ = new Workload(std::move(*workload));
  }
  static void TearDownTestSuite() { delete workload_; }

  ModelConfig TinyConfig() {
    LmModelOptions model;
    model.dim = 32;
    model.layers = 2;
    model.heads = 2;
    model.context_length = 64;
    model.slices = 1;
    model.shards = 1;
    model.epochs = 12;
    return LmModelConfig(model, workload_->tokenizer->vocab_size());
  }

  std::string TempPath(const std::string& name) {
    return (std::filesystem::temp_directory_path() /
            ("lm_model_test-" + std::to_string(getpid()) + "-" + name))
        .string();
  }

  static Workload* workload_;
};
Workload* LmModelTest::workload_ = nullptr;

TEST_F(LmModelTest, WorkloadFitsTheContext) {
  EXPECT_LE(workload_->longest_text, 64);
  EXPECT_EQ(workload_->users.size(), 16u);
  const OwnerData& owner = workload_->users.front();
  EXPECT_EQ(owner.samples.size(), 13u);  // 6 statements, 7 QA pairs
  EXPECT_EQ(owner.samples.front().owner, owner.owner);
  EXPECT_GT(owner.samples.back().prompt_tokens, 1);
  EXPECT_TRUE(ValidateSample(owner.samples.back()).ok());
}

TEST_F(LmModelTest, PretrainedBaseIsDeterministicAndLoads) {
  const PretrainOptions pretrain{.epochs = 2, .batch_size = 32,
                                 .learning_rate = 3e-3};
  ModelConfig a = TinyConfig(), b = TinyConfig();
  const std::string path_a = TempPath("a.safetensors");
  const std::string path_b = TempPath("b.safetensors");
  ml::TrainStats stats;
  ASSERT_TRUE(PretrainLmBaseToFile(workload_->public_set, pretrain, path_a, &a,
                                   &stats)
                  .ok());
  ASSERT_TRUE(
      PretrainLmBaseToFile(workload_->public_set, pretrain, path_b, &b, nullptr)
          .ok());
  EXPECT_EQ(a.base.sha256, b.base.sha256);
  EXPECT_GT(stats.tokens, 0);
  auto bytes = ReadFile(path_a);
  ASSERT_TRUE(bytes.ok());
  EXPECT_EQ(Sha256Hex(*bytes), a.base.sha256);
  // The model config naming the file loads it (digest checked).
  auto base = ml::LoadBaseState(a);
  EXPECT_TRUE(base.ok()) << base.status();
  std::filesystem::remove(path_a);
  std::filesystem::remove(path_b);
}

TEST_F(LmModelTest, FineTunedOwnersAreMembersAndTheBaseKnowsNone) {
  ModelConfig config = TinyConfig();
  const std::string path = TempPath("base.safetensors");
  ASSERT_TRUE(PretrainLmBaseToFile(workload_->public_set,
                                   {.epochs = 6, .batch_size = 32,
                                    .learning_rate = 3e-3},
                                   path, &config, nullptr)
                  .ok());
  auto base = ml::LoadBaseState(config);
  ASSERT_TRUE(base.ok()) << base.status();
  std::filesystem::remove(path);

  // Members: the first half of the users; the second half never trained.
  const std::vector<const OwnerData*> users = Pointers(workload_->users);
  const std::vector<const OwnerData*> members(users.begin(), users.begin() + 8);
  const std::vector<const OwnerData*> unseen(users.begin() + 8, users.end());
  std::vector<OwnerData> member_data(workload_->users.begin(),
                                     workload_->users.begin() + 8);
  auto data =
      ml::MakeTokenPositionData(TokenRows(member_data), config.backbone);
  ASSERT_TRUE(data.ok()) << data.status();
  auto trainer = ml::S3tTrainer::Create(config, *base);
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  const std::vector<int> order = {0};
  auto checkpoint = (*trainer)->TrainPosition(0, order, "", *data, nullptr);
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();

  const MeasureOptions measure{.max_owners = 16, .verbatim_owners = 4,
                               .stop_token = workload_->tokenizer->eos_id()};
  const std::vector<const OwnerData*> holdout = Pointers(workload_->holdout);
  auto tuned = DecoderScorer::Create(config, *base, {*checkpoint});
  ASSERT_TRUE(tuned.ok()) << tuned.status();
  auto after = MeasureFigures(**tuned, members, unseen, holdout, measure);
  ASSERT_TRUE(after.ok()) << after.status();
  auto plain = DecoderScorer::Create(config, *base, {});
  ASSERT_TRUE(plain.ok()) << plain.status();
  auto before = MeasureFigures(**plain, members, unseen, holdout, measure);
  ASSERT_TRUE(before.ok()) << before.status();
  std::printf("base:       %s\nfine-tuned: %s\n", FiguresText(*before).c_str(),
              FiguresText(*after).c_str());
  EXPECT_GT(after->mia_auc_forget, 0.65);
  EXPECT_LT(after->forget.mean_loss, after->holdout.mean_loss);
  // Neither model saw the unseen users: they look like the holdout.
  EXPECT_NEAR(after->mia_auc_retained, 0.5, 0.15);
  EXPECT_NEAR(before->mia_auc_forget, 0.5, 0.15);
}

}  // namespace
}  // namespace oubli::lm
