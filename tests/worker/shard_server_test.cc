#include "worker/shard_server.h"

#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <thread>
#include <vector>

#include "common/config.h"
#include "common/hash.h"
#include "tests/worker/ml/random_samples.h"
#include "worker/ml/determinism.h"
#include "worker/ml/s3t_trainer.h"
#include "worker/ml/shard_model.h"

namespace oubli::worker {
namespace {

// A trained checkpoint of `shard` (its adapters differ per seed).
std::string Checkpoint(const ModelConfig& config, int shard, uint64_t seed) {
  auto data = ml::MakePositionData(ml::RandomSamples(12, seed), 16);
  EXPECT_TRUE(data.ok()) << data.status();
  auto base = ml::LoadBaseState(config);
  EXPECT_TRUE(base.ok()) << base.status();
  auto trainer = ml::S3tTrainer::Create(config, *base);
  EXPECT_TRUE(trainer.ok()) << trainer.status();
  auto checkpoint = (*trainer)->TrainPosition(shard, {0}, "", *data, nullptr);
  EXPECT_TRUE(checkpoint.ok()) << checkpoint.status();
  return *checkpoint;
}

std::vector<float> Inputs(int rows) {
  std::vector<float> x(rows * 16);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i % 7) / 7;
  return x;
}

class ShardServerTest : public ::testing::Test {
 protected:
  ShardServerTest()
      : config_(ml::SmallMlpConfig()),
        text_(ConfigToText(config_)),
        env_(ml::NumericEnvironment()),
        first_(Checkpoint(config_, 0, 1)),
        second_(Checkpoint(config_, 0, 2)) {}

  ModelConfig config_;
  std::string text_, env_, first_, second_;
  ShardServer server_;
};

TEST_F(ShardServerTest, AnswersWithTheNamedCheckpointBitwiseLikeLocal) {
  ASSERT_TRUE(
      server_.Load("m", text_, env_, 0, Sha256Hex(first_), first_).ok());
  const std::vector<float> x = Inputs(5);
  const ShardCheckpointRef ref{0, Sha256Hex(first_)};
  auto answer = server_.Predict("m", text_, env_, {&ref, 1}, x, 5);
  ASSERT_TRUE(answer.ok()) << answer.status();
  EXPECT_EQ(answer->classes, 3);
  ASSERT_EQ(answer->shards.size(), 1u);
  ASSERT_TRUE(answer->shards[0].loaded);

  // Same bits as the coordinator's own computation.
  auto base = ml::LoadBaseState(config_);
  ASSERT_TRUE(base.ok());
  auto local = ml::ShardModel::Create(config_, *base, first_);
  ASSERT_TRUE(local.ok()) << local.status();
  torch::Tensor xt = torch::from_blob(const_cast<float*>(x.data()), {5, 16});
  auto p = (*local)->Probabilities(xt);
  ASSERT_TRUE(p.ok());
  torch::Tensor expected = p->contiguous();
  ASSERT_EQ(answer->shards[0].probabilities.size(), 15u);
  EXPECT_EQ(std::memcmp(answer->shards[0].probabilities.data(),
                        expected.data_ptr<float>(), 15 * sizeof(float)),
            0);
}

TEST_F(ShardServerTest, AnotherCheckpointNeverAnswersForTheNamedOne) {
  ASSERT_TRUE(
      server_.Load("m", text_, env_, 0, Sha256Hex(first_), first_).ok());
  const std::vector<float> x = Inputs(2);
  // The coordinator now serves `second_` (the first was cut): not loaded,
  // and the cut checkpoint is gone from memory.
  const ShardCheckpointRef ref{0, Sha256Hex(second_)};
  auto answer = server_.Predict("m", text_, env_, {&ref, 1}, x, 2);
  ASSERT_TRUE(answer.ok()) << answer.status();
  EXPECT_FALSE(answer->shards[0].loaded);
  EXPECT_TRUE(answer->shards[0].probabilities.empty());
  EXPECT_EQ(server_.loaded(), 0);
  // Loading it replaces the slot's previous checkpoint.
  ASSERT_TRUE(
      server_.Load("m", text_, env_, 0, Sha256Hex(second_), second_).ok());
  EXPECT_EQ(server_.loaded(), 1);
  answer = server_.Predict("m", text_, env_, {&ref, 1}, x, 2);
  ASSERT_TRUE(answer.ok());
  EXPECT_TRUE(answer->shards[0].loaded);
  // Models are kept apart: the same shard of another model is not loaded.
  answer = server_.Predict("other", text_, env_, {&ref, 1}, x, 2);
  ASSERT_TRUE(answer.ok());
  EXPECT_FALSE(answer->shards[0].loaded);
}

TEST_F(ShardServerTest, SlotsNotNamedAreDropped) {
  const std::string third = Checkpoint(config_, 2, 3);
  ASSERT_TRUE(
      server_.Load("m", text_, env_, 0, Sha256Hex(first_), first_).ok());
  ASSERT_TRUE(server_.Load("m", text_, env_, 2, Sha256Hex(third), third).ok());
  ASSERT_TRUE(
      server_.Load("n", text_, env_, 0, Sha256Hex(first_), first_).ok());
  EXPECT_EQ(server_.loaded(), 3);
  // Shard 0 of "m" is no longer served from here: a sync drops it and
  // leaves model "n" alone.
  const ShardCheckpointRef ref{2, Sha256Hex(third)};
  auto answer = server_.Predict("m", text_, env_, {&ref, 1}, {}, 0);
  ASSERT_TRUE(answer.ok()) << answer.status();
  EXPECT_TRUE(answer->shards[0].loaded);
  EXPECT_EQ(server_.loaded(), 2);
  answer = server_.Predict("m", text_, env_, {}, {}, 0);
  ASSERT_TRUE(answer.ok());
  EXPECT_EQ(server_.loaded(), 1);
  server_.DropAll();
  EXPECT_EQ(server_.loaded(), 0);
}

TEST_F(ShardServerTest, BadRequestsGetPreciseErrors) {
  // Bytes that do not hash to the name, or are not a checkpoint.
  EXPECT_TRUE(absl::IsInvalidArgument(
      server_.Load("m", text_, env_, 0, Sha256Hex(second_), first_)));
  EXPECT_TRUE(absl::IsInvalidArgument(
      server_.Load("m", text_, env_, 0, Sha256Hex("junk"), "junk")));
  EXPECT_TRUE(absl::IsInvalidArgument(
      server_.Load("m", text_, env_, 7, Sha256Hex(first_), first_)));
  EXPECT_TRUE(absl::IsFailedPrecondition(
      server_.Load("m", text_, "other-env", 0, Sha256Hex(first_), first_)));
  EXPECT_TRUE(absl::IsFailedPrecondition(
      server_.Load("m", "not a config", env_, 0, Sha256Hex(first_), first_)));
  EXPECT_EQ(server_.loaded(), 0);

  // A request that fails still drops what it does not name: a purge's
  // sync takes effect even on a worker that cannot parse the config.
  ASSERT_TRUE(
      server_.Load("m", text_, env_, 0, Sha256Hex(first_), first_).ok());
  EXPECT_FALSE(server_.Predict("m", "not a config", env_, {}, {}, 0).ok());
  EXPECT_EQ(server_.loaded(), 0);

  const std::vector<float> x = Inputs(2);
  const ShardCheckpointRef twice[] = {{0, "a"}, {0, "b"}};
  EXPECT_TRUE(absl::IsInvalidArgument(
      server_.Predict("m", text_, env_, twice, x, 2).status()));
  const ShardCheckpointRef outside{3, "a"};
  EXPECT_TRUE(absl::IsInvalidArgument(
      server_.Predict("m", text_, env_, {&outside, 1}, x, 2).status()));
  const ShardCheckpointRef ref{0, "a"};
  EXPECT_TRUE(absl::IsInvalidArgument(
      server_.Predict("m", text_, env_, {&ref, 1}, x, 3).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(
      server_.Predict("m", text_, env_, {&ref, 1}, x, -1).status()));
}

// Workers check it on every request from concurrent gRPC threads; an
// answer that flickers sends work elsewhere for no reason.
TEST(NumericEnvironmentTest, StableUnderConcurrentCalls) {
  const std::string expected = ml::NumericEnvironment();
  std::atomic<int> differing{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 300; ++i) {
        if (ml::NumericEnvironment() != expected) ++differing;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(differing.load(), 0);
}

}  // namespace
}  // namespace oubli::worker
