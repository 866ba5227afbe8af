#include "tests/coordinator/engine_test_fixture.h"

#include <random>

#include "common/hash.h"
#include "coordinator/sharding_plan.h"

namespace oubli::coordinator {

ModelConfig TinyConfig(uint64_t seed, Placement placement) {
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

ModelConfig TinyBatchedConfig(uint64_t seed, int max_batch) {
  ModelConfig c = TinyConfig(seed);
  c.retrain.mode = RetrainMode::kBatched;
  c.retrain.window = absl::Hours(1);
  c.retrain.max_batch = max_batch;
  return c;
}

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

std::map<std::string, std::string> CheckpointDigests(const std::string& dir) {
  std::map<std::string, std::string> digests;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    digests[entry.path().filename().string()] =
        Sha256Hex(testing_util::ReadWholeFile(entry.path()));
  }
  return digests;
}
std::unique_ptr<Engine> EngineTest::OpenEngine(
    const std::string& name, const ModelConfig& config, bool background,
    std::shared_ptr<CheckpointReplicas> replicas) {
  Engine::Options options;
  options.background_retrain = background;
  options.replicas = std::move(replicas);
  return OpenEngineWith(name, config, std::move(options));
}

std::unique_ptr<Engine> EngineTest::OpenEngineWith(const std::string& name,
                                                   const ModelConfig& config,
                                                   Engine::Options options) {
  options.data_dir = (root_ / name).string();
  options.config = config;
  auto engine = Engine::Open(options);
  EXPECT_TRUE(engine.ok()) << engine.status();
  return engine.ok() ? *std::move(engine) : nullptr;
}

std::unique_ptr<Engine> EngineTest::OpenTrainedVia(
    std::shared_ptr<RemoteTrainer> trainer, const ModelConfig& config,
    const std::vector<Sample>& samples,
    std::shared_ptr<EngineMetrics> metrics) {
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

std::string EngineTest::ScratchFingerprint(
    const ModelConfig& config, const std::vector<Sample>& samples,
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

std::map<std::pair<int, int>, std::vector<std::string>> EngineTest::BySlice(
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

std::string EngineTest::DeleteThenClose(const std::string& name,
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

}  // namespace oubli::coordinator
