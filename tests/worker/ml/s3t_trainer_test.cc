#include "worker/ml/s3t_trainer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>

#include "common/hash.h"
#include "tests/worker/ml/random_samples.h"
#include "worker/ml/safetensors.h"

namespace oubli::ml {
namespace {

ModelConfig SmallConfig() {
  ModelConfig c;
  c.backbone.kind = BackboneKind::kMlp;
  c.backbone.input_height = 4;
  c.backbone.input_width = 4;
  c.backbone.num_classes = 3;
  c.backbone.mlp_hidden = {10, 10, 10, 10};
  c.backbone.lora.rank = 2;
  c.slices = 4;
  c.train.epochs_per_position = 2;
  c.train.batch_size = 4;
  c.train.learning_rate = 1e-2;
  return c;
}

PositionData RandomData(int n, uint64_t seed) {
  return *MakePositionData(RandomSamples(n, seed), 16);
}

std::map<std::string, torch::Tensor> Parse(const std::string& bytes) {
  auto parsed = ParseSafetensors(bytes);
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  return std::map<std::string, torch::Tensor>(parsed->begin(), parsed->end());
}

std::unique_ptr<S3tTrainer> MakeTrainer(const ModelConfig& config) {
  auto base = LoadBaseState(config);
  EXPECT_TRUE(base.ok()) << base.status();
  auto trainer = S3tTrainer::Create(config, *base);
  EXPECT_TRUE(trainer.ok()) << trainer.status();
  return *std::move(trainer);
}

TEST(SeededPermutationTest, IsAReproduciblePermutation) {
  const auto a = SeededPermutation(100, 5);
  EXPECT_EQ(a, SeededPermutation(100, 5));
  EXPECT_NE(a, SeededPermutation(100, 6));
  std::set<int64_t> values(a.begin(), a.end());
  EXPECT_EQ(values.size(), 100u);
  EXPECT_EQ(*values.begin(), 0);
  EXPECT_EQ(*values.rbegin(), 99);
  EXPECT_TRUE(SeededPermutation(0, 1).empty());
}

TEST(PositionSeedTest, SeparatesShardPrefixEpochAndPurpose) {
  const std::vector<int> p = {0, 1};
  const uint64_t seed = PositionSeed(1, "order", 0, p, 0);
  EXPECT_NE(seed, PositionSeed(1, "order", 1, p, 0));
  EXPECT_NE(seed, PositionSeed(1, "order", 0, std::vector<int>{1, 0}, 0));
  EXPECT_NE(seed, PositionSeed(1, "order", 0, p, 1));
  EXPECT_NE(seed, PositionSeed(1, "dropout", 0, p, 0));
}

TEST(S3tTrainerTest, TwoTrainersProduceIdenticalBytes) {
  ModelConfig config = SmallConfig();
  config.backbone.lora.dropout = 0.1;  // randomness must be seeded too
  const PositionData data = RandomData(40, 1);
  auto first = MakeTrainer(config);
  auto second = MakeTrainer(config);
  const std::vector<int> p1 = {2};
  auto a = first->TrainPosition(0, p1, "", data, nullptr);
  auto b = second->TrainPosition(0, p1, "", data, nullptr);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(Sha256Hex(*a), Sha256Hex(*b));
  // The same trainer again (module reuse must not leak state).
  auto c = first->TrainPosition(0, p1, "", data, nullptr);
  EXPECT_EQ(Sha256Hex(*a), Sha256Hex(*c));
  // Other data -> other bytes.
  auto d = first->TrainPosition(0, p1, "", RandomData(40, 2), nullptr);
  EXPECT_NE(Sha256Hex(*a), Sha256Hex(*d));
  // Another shard -> other seeded adapters -> other bytes.
  auto e = first->TrainPosition(1, p1, "", data, nullptr);
  EXPECT_NE(Sha256Hex(*a), Sha256Hex(*e));
  // After other work the reused module still reproduces a fresh trainer.
  auto f = first->TrainPosition(0, p1, "", data, nullptr);
  EXPECT_EQ(Sha256Hex(*f), Sha256Hex(*b));
  // Dropout really acts: without it the bytes differ.
  ModelConfig no_dropout = config;
  no_dropout.backbone.lora.dropout = 0;
  auto g = MakeTrainer(no_dropout)->TrainPosition(0, p1, "", data, nullptr);
  ASSERT_TRUE(g.ok());
  EXPECT_NE(Sha256Hex(*a), Sha256Hex(*g));
}

TEST(S3tTrainerTest, PositionTrainsOnlyItsGroupAndTheHead) {
  const ModelConfig config = SmallConfig();
  auto trainer = MakeTrainer(config);
  const PositionData data = RandomData(40, 3);
  const std::vector<int> p1 = {0}, p2 = {0, 1};
  auto parent = trainer->TrainPosition(0, p1, "", data, nullptr);
  ASSERT_TRUE(parent.ok());
  auto child = trainer->TrainPosition(0, p2, *parent, data, nullptr);
  ASSERT_TRUE(child.ok());
  const auto before = Parse(*parent);
  const auto after = Parse(*child);
  ASSERT_EQ(before.size(), after.size());
  // MLP layer_from_top 1 is hidden layer index 2 of 0..3 ("layers.2.").
  std::set<std::string> changed;
  for (const auto& [name, tensor] : before) {
    if (!torch::equal(tensor, after.at(name))) changed.insert(name);
  }
  EXPECT_TRUE(changed.contains("layers.2.lora_b"));
  EXPECT_TRUE(changed.contains("head.weight"));
  for (const std::string& name : changed) {
    EXPECT_TRUE(name.rfind("head.", 0) == 0 ||
                name.find(".2.") != std::string::npos ||
                name.rfind("layers.2", 0) == 0)
        << name << " changed at position 1";
  }
}

TEST(S3tTrainerTest, RejectsInconsistentRequests) {
  const ModelConfig config = SmallConfig();
  auto trainer = MakeTrainer(config);
  const PositionData data = RandomData(8, 1);
  const std::vector<int> p2 = {0, 1}, p1 = {0}, p5 = {0, 1, 2, 3, 0};
  EXPECT_EQ(trainer->TrainPosition(0, p2, "", data, nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(trainer->TrainPosition(0, p1, "x", data, nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(trainer->TrainPosition(0, p5, "", data, nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(trainer->TrainPosition(0, p2, "garbage", data, nullptr).ok());
  PositionData bad = data;
  bad.labels = bad.labels + 5;  // out of range
  EXPECT_EQ(trainer->TrainPosition(0, p1, "", bad, nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(S3tTrainerTest, CancelledTrainingReturnsCancelled) {
  auto trainer = MakeTrainer(SmallConfig());
  const std::vector<int> p1 = {0};
  auto result = trainer->TrainPosition(0, p1, "", RandomData(20, 1), nullptr,
                                       [] { return true; });
  EXPECT_EQ(result.status().code(), absl::StatusCode::kCancelled);
}

TEST(S3tTrainerTest, EmptyUnionReturnsStartingState) {
  auto trainer = MakeTrainer(SmallConfig());
  const std::vector<int> p1 = {0};
  auto empty = trainer->TrainPosition(0, p1, "", PositionData(), nullptr);
  ASSERT_TRUE(empty.ok()) << empty.status();
  auto trained = trainer->TrainPosition(0, p1, "", RandomData(20, 1), nullptr);
  ASSERT_TRUE(trained.ok());
  EXPECT_NE(Sha256Hex(*empty), Sha256Hex(*trained));
  // Starting state: B of every adapter is zero.
  for (const auto& [name, tensor] : Parse(*empty)) {
    if (name.find("lora_b") != std::string::npos) {
      EXPECT_EQ(tensor.abs().sum().item<float>(), 0.0f) << name;
    }
  }
}

TEST(MakePositionDataTest, DecodesAndChecksWidth) {
  Sample s{"a", "o", 2, FeatureType::kU8, std::string("\x00\xff", 2)};
  auto data = MakePositionData({s}, 2);
  ASSERT_TRUE(data.ok());
  EXPECT_EQ(data->features[0][1].item<float>(), 1.0f);
  EXPECT_EQ(data->labels[0].item<int64_t>(), 2);
  EXPECT_EQ(MakePositionData({s}, 3).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// Slices hold ids in ascending order each; a position trains on their
// union in ascending id order, whichever slices hold which rows.
TEST(PositionDataFromSlicesTest, IsTheUnionInIdOrderDecodedLikeSamples) {
  std::vector<Sample> all = RandomSamples(30, 4);
  std::sort(all.begin(), all.end(),
            [](const Sample& a, const Sample& b) { return a.id < b.id; });
  std::vector<Sample> odd, even;
  for (size_t i = 0; i < all.size(); ++i) {
    (i % 3 == 0 ? odd : even).push_back(all[i]);
  }
  auto first = storage::EncodedSlice::FromSamples(odd, 16);
  auto second = storage::EncodedSlice::FromSamples(even, 16);
  ASSERT_TRUE(first.ok() && second.ok());
  auto merged = PositionDataFromSlices({*second, *first}, 16);
  ASSERT_TRUE(merged.ok()) << merged.status();
  auto direct = MakePositionData(all, 16);
  ASSERT_TRUE(direct.ok());
  EXPECT_TRUE(torch::equal(merged->features, direct->features));
  EXPECT_TRUE(torch::equal(merged->labels, direct->labels));

  EXPECT_EQ(PositionDataFromSlices({*first, *first}, 16).status().code(),
            absl::StatusCode::kInvalidArgument);  // a sample twice
  EXPECT_EQ(PositionDataFromSlices({*first}, 8).status().code(),
            absl::StatusCode::kInvalidArgument);  // another width
  auto empty = PositionDataFromSlices({storage::EncodedSlice::Empty(16)}, 16);
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->size(), 0);
}

TEST(LoadBaseStateTest, SeededIsDeterministicAndFileIsChecked) {
  ModelConfig config = SmallConfig();
  auto a = LoadBaseState(config);
  auto b = LoadBaseState(config);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(*SerializeSafetensors(*a), *SerializeSafetensors(*b));

  const std::string path = ::testing::TempDir() + "/base.safetensors";
  ASSERT_TRUE(WriteSafetensorsFile(path, *a).ok());
  config.base.source = path;
  config.base.sha256 = std::string(64, '0');
  EXPECT_EQ(LoadBaseState(config).status().code(), absl::StatusCode::kDataLoss);
  config.base.sha256.clear();
  auto loaded = LoadBaseState(config);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(*SerializeSafetensors(*loaded), *SerializeSafetensors(*a));
  ASSERT_TRUE(RecordBaseWeightsDigest(&config).ok());
  EXPECT_EQ(config.base.sha256, Sha256Hex(*SerializeSafetensors(*a)));
  config.base.source = "/nonexistent/base.safetensors";
  EXPECT_EQ(LoadBaseState(config).status().code(), absl::StatusCode::kNotFound);
}

// --- Decoder language models through the same trainer ------------------------

ModelConfig DecoderConfigFor(DecoderLayout layout, DecoderObjective objective) {
  ModelConfig c;
  c.backbone.kind = BackboneKind::kDecoder;
  c.backbone.num_classes = 3;
  DecoderConfig& d = c.backbone.decoder;
  d.layout = layout;
  d.objective = objective;
  d.vocab_size = 40;
  d.context_length = 12;
  d.dim = 16;
  d.layers = 4;
  d.heads = 2;
  d.kv_heads = layout == DecoderLayout::kLlama ? 1 : 2;
  d.mlp_dim = 24;
  d.lora_targets = {LoraTarget::kQ, LoraTarget::kV, LoraTarget::kDown};
  c.backbone.lora.rank = 2;
  c.backbone.lora.dropout = 0.1;  // seeded like everything else
  c.slices = 2;
  c.train.epochs_per_position = 2;
  c.train.batch_size = 4;
  c.train.learning_rate = 1e-2;
  return c;
}

// Rows of varied length (1..12 tokens), a prompt of a third, a label each.
std::vector<TokenSequence> RandomTokenRows(int n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<TokenSequence> rows(n);
  for (TokenSequence& row : rows) {
    const int length = 1 + static_cast<int>(rng() % 12);
    for (int t = 0; t < length; ++t) {
      row.tokens.push_back(static_cast<int32_t>(rng() % 40));
    }
    row.prompt_tokens = length / 3;
    row.label = static_cast<int32_t>(rng() % 3);
  }
  return rows;
}

TEST(DecoderTrainingTest, PositionsAreBitwiseRepeatableAndTrainTheirGroup) {
  for (DecoderLayout layout : {DecoderLayout::kGpt2, DecoderLayout::kLlama}) {
    for (DecoderObjective objective :
         {DecoderObjective::kCausalLm, DecoderObjective::kClassify}) {
      const ModelConfig config = DecoderConfigFor(layout, objective);
      auto data = MakeTokenPositionData(RandomTokenRows(30, 4), config.backbone);
      ASSERT_TRUE(data.ok()) << data.status();
      auto first = MakeTrainer(config);
      auto second = MakeTrainer(config);
      ASSERT_TRUE(first && second);
      const std::vector<int> p1 = {1}, p2 = {1, 0};
      TrainStats stats;
      auto a = first->TrainPosition(0, p1, "", *data, &stats);
      ASSERT_TRUE(a.ok()) << a.status();
      EXPECT_EQ(stats.samples, 60);  // 30 rows, 2 epochs
      EXPECT_EQ(stats.tokens, 2 * data->attention_mask.sum().item<int64_t>());
      auto b = second->TrainPosition(0, p1, "", *data, nullptr);
      ASSERT_TRUE(b.ok());
      EXPECT_EQ(Sha256Hex(*a), Sha256Hex(*b)) << DecoderLayoutName(layout);

      auto child = first->TrainPosition(0, p2, *a, *data, nullptr);
      ASSERT_TRUE(child.ok()) << child.status();
      // 4 blocks over 2 groups: position 1 trains blocks 1 and 0 (from the
      // top: layers 2 and 3), and the head when there is one.
      const auto before = Parse(*a);
      const auto after = Parse(*child);
      std::set<std::string> changed;
      for (const auto& [name, tensor] : before) {
        if (!torch::equal(tensor, after.at(name))) changed.insert(name);
      }
      EXPECT_TRUE(changed.contains("blocks.0.attn.q.lora_a"));
      EXPECT_EQ(changed.contains("head.weight"),
                objective == DecoderObjective::kClassify);
      for (const std::string& name : changed) {
        EXPECT_TRUE(name.rfind("blocks.0.", 0) == 0 ||
                    name.rfind("blocks.1.", 0) == 0 ||
                    name.rfind("head.", 0) == 0)
            << name << " changed at position 1";
      }
    }
  }
}

TEST(DecoderTrainingTest, TrainingDependsOnlyOnTheRows) {
  // Padding is per batch: the same rows give the same bits whatever the
  // longest row of the whole position is (a retrain after a deletion may
  // lose the longest row).
  const ModelConfig config =
      DecoderConfigFor(DecoderLayout::kLlama, DecoderObjective::kCausalLm);
  std::vector<TokenSequence> rows = RandomTokenRows(8, 5);
  for (TokenSequence& row : rows) row.tokens.resize(std::min<size_t>(row.tokens.size(), 5));
  for (TokenSequence& row : rows) row.prompt_tokens = std::min<int32_t>(row.prompt_tokens, static_cast<int32_t>(row.tokens.size()));
  auto narrow = MakeTokenPositionData(rows, config.backbone);
  ASSERT_TRUE(narrow.ok());
  PositionData wide = *narrow;
  const int64_t pad = 12 - wide.tokens.size(1);
  wide.tokens = torch::constant_pad_nd(wide.tokens, {0, pad}, 0);
  wide.attention_mask = torch::constant_pad_nd(wide.attention_mask, {0, pad}, 0);
  wide.loss_mask = torch::constant_pad_nd(wide.loss_mask, {0, pad}, 0);
  auto trainer = MakeTrainer(config);
  const std::vector<int> p1 = {0};
  auto a = trainer->TrainPosition(0, p1, "", *narrow, nullptr);
  auto b = trainer->TrainPosition(0, p1, "", wide, nullptr);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(Sha256Hex(*a), Sha256Hex(*b));
}

TEST(DecoderTrainingTest, BadRowsAreRefusedNamingTheRow) {
  const ModelConfig config =
      DecoderConfigFor(DecoderLayout::kGpt2, DecoderObjective::kClassify);
  auto error = [&](TokenSequence row) {
    std::vector<TokenSequence> rows = RandomTokenRows(2, 1);
    rows.push_back(std::move(row));
    auto data = MakeTokenPositionData(rows, config.backbone);
    EXPECT_EQ(data.status().code(), absl::StatusCode::kInvalidArgument);
    return std::string(data.status().message());
  };
  EXPECT_EQ(error({{}, 0, 0}), "token row 2: no tokens");
  EXPECT_EQ(error({std::vector<int32_t>(13, 1), 0, 0}),
            "token row 2: 13 tokens; the context holds 12");
  EXPECT_EQ(error({{1, 40}, 0, 0}),
            "token row 2: token 1 (id 40) is outside the vocabulary [0, 40)");
  EXPECT_EQ(error({{1, 2}, 3, 0}),
            "token row 2: prompt_tokens 3 is outside [0, 2]");
  EXPECT_EQ(error({{1, 2}, 0, 3}), "token row 2: label 3 is outside [0, 3)");
  // Features for a decoder, tokens for a classifier: refused by the trainer.
  auto trainer = MakeTrainer(config);
  const std::vector<int> p1 = {0};
  EXPECT_EQ(trainer->TrainPosition(0, p1, "", RandomData(4, 1), nullptr)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  auto tokens = MakeTokenPositionData(RandomTokenRows(4, 1), config.backbone);
  EXPECT_EQ(MakeTrainer(SmallConfig())
                ->TrainPosition(0, p1, "", *tokens, nullptr)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(DecoderTrainingTest, MalformedTokenTensorsAreRefused) {
  const ModelConfig config =
      DecoderConfigFor(DecoderLayout::kLlama, DecoderObjective::kClassify);
  auto trainer = MakeTrainer(config);
  const std::vector<int> p1 = {0};
  auto refused = [&](auto mutate) {
    auto data = MakeTokenPositionData(RandomTokenRows(6, 2), config.backbone);
    EXPECT_TRUE(data.ok());
    mutate(*data);
    return trainer->TrainPosition(0, p1, "", *data, nullptr).status();
  };
  // A real token after padding would be cut off by the batch trimming.
  absl::Status left = refused([](PositionData& d) {
    d.attention_mask[0][0] = 0;
    d.attention_mask[0][1] = 1;
  });
  EXPECT_EQ(left.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(left.message().find("right padding"), std::string::npos) << left;
  EXPECT_EQ(refused([](PositionData& d) { d.loss_mask[1][0] = 2; }).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(refused([](PositionData& d) { d.labels[2] = 3; }).message(),
            "labels must be in [0, 3)");
  // A token id the embedding has no row for, worded as at ingest.
  EXPECT_EQ(refused([](PositionData& d) { d.tokens[1][0] = 40; }).message(),
            "token row 1: token 0 (id 40) is outside the vocabulary [0, 40)");
  EXPECT_EQ(refused([](PositionData& d) { d.tokens[0][0] = -1; }).message(),
            "token row 0: token 0 (id -1) is outside the vocabulary [0, 40)");
  EXPECT_EQ(refused([](PositionData& d) {
              d.tokens = d.tokens.to(torch::kInt32);
            }).code(),
            absl::StatusCode::kInvalidArgument);
  // Features beside tokens: refused, not guessed.
  EXPECT_EQ(refused([](PositionData& d) {
              d.features = torch::zeros({d.size(), 16});
            }).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(DecoderTrainingTest, TokenSlicesBecomeTheUnionInIdOrder) {
  const ModelConfig config =
      DecoderConfigFor(DecoderLayout::kLlama, DecoderObjective::kClassify);
  auto sample = [](std::string id, std::vector<uint32_t> tokens, int prompt,
                   int label) {
    Sample s;
    s.id = std::move(id);
    s.features = EncodeTokens(tokens, &s.feature_type);
    s.prompt_tokens = prompt;
    s.label = label;
    return s;
  };
  auto first = storage::EncodedSlice::FromTokenSamples(
      {sample("a", {1, 2, 3}, 1, 0), sample("c", {4}, 0, 2)});
  auto second = storage::EncodedSlice::FromTokenSamples(
      {sample("b", {5, 6}, 2, 1)});
  ASSERT_TRUE(first.ok() && second.ok());
  auto data = PositionDataFromSlices({*first, *second}, config.backbone);
  ASSERT_TRUE(data.ok()) << data.status();
  auto expected = MakeTokenPositionData(
      {{{1, 2, 3}, 1, 0}, {{5, 6}, 2, 1}, {{4}, 0, 2}}, config.backbone);
  ASSERT_TRUE(expected.ok());
  EXPECT_TRUE(torch::equal(data->tokens, expected->tokens));
  EXPECT_TRUE(torch::equal(data->attention_mask, expected->attention_mask));
  EXPECT_TRUE(torch::equal(data->loss_mask, expected->loss_mask));
  EXPECT_TRUE(torch::equal(data->labels, expected->labels));
  // A token beyond this model's vocabulary is refused when decoded.
  auto big = storage::EncodedSlice::FromTokenSamples({sample("d", {40}, 0, 0)});
  EXPECT_EQ(PositionDataFromSlices({*big}, config.backbone).status().message(),
            "token row 0: token 0 (id 40) is outside the vocabulary [0, 40)");
  // Feature slices for a decoder, token slices for a classifier: refused.
  auto pixels = PositionDataFromSlices(
      {*storage::EncodedSlice::FromSamples(RandomSamples(2, 1), 16)},
      config.backbone);
  EXPECT_EQ(pixels.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(PositionDataFromSlices({*first}, 16).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(DecoderTrainingTest, BaseFileMayBeAHuggingFaceCheckpoint) {
  ModelConfig config =
      DecoderConfigFor(DecoderLayout::kGpt2, DecoderObjective::kCausalLm);
  config.backbone.decoder.layers = 2;
  // A GPT-2 checkpoint by Hugging Face names, values from our seeded base.
  auto ours = LoadBaseState(config);
  ASSERT_TRUE(ours.ok()) << ours.status();
  std::map<std::string, torch::Tensor> base(ours->begin(), ours->end());
  NamedTensors hf = {{"wte.weight", base["embed.weight"].to(torch::kFloat16)},
                     {"wpe.weight", base["pos_embed.weight"]},
                     {"ln_f.weight", base["norm.weight"]},
                     {"ln_f.bias", base["norm.bias"]}};
  for (int i = 0; i < 2; ++i) {
    const std::string h = "h." + std::to_string(i) + ".";
    const std::string b = "blocks." + std::to_string(i) + ".";
    hf.emplace_back(h + "ln_1.weight", base[b + "attn_norm.weight"]);
    hf.emplace_back(h + "ln_1.bias", base[b + "attn_norm.bias"]);
    hf.emplace_back(h + "ln_2.weight", base[b + "mlp_norm.weight"]);
    hf.emplace_back(h + "ln_2.bias", base[b + "mlp_norm.bias"]);
    hf.emplace_back(h + "attn.c_attn.weight",
                    torch::cat({base[b + "attn.q.weight"].t(),
                                base[b + "attn.k.weight"].t(),
                                base[b + "attn.v.weight"].t()}, 1));
    hf.emplace_back(h + "attn.c_attn.bias",
                    torch::cat({base[b + "attn.q.bias"], base[b + "attn.k.bias"],
                                base[b + "attn.v.bias"]}));
    hf.emplace_back(h + "attn.c_proj.weight", base[b + "attn.o.weight"].t());
    hf.emplace_back(h + "attn.c_proj.bias", base[b + "attn.o.bias"]);
    hf.emplace_back(h + "mlp.c_fc.weight", base[b + "mlp.up.weight"].t());
    hf.emplace_back(h + "mlp.c_fc.bias", base[b + "mlp.up.bias"]);
    hf.emplace_back(h + "mlp.c_proj.weight", base[b + "mlp.down.weight"].t());
    hf.emplace_back(h + "mlp.c_proj.bias", base[b + "mlp.down.bias"]);
  }
  const std::string path = ::testing::TempDir() + "/gpt2-hf.safetensors";
  ASSERT_TRUE(WriteSafetensorsFile(path, hf).ok());
  config.base.source = path;
  auto loaded = LoadBaseState(config);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ASSERT_EQ(loaded->size(), ours->size());
  for (size_t i = 0; i < ours->size(); ++i) {
    const auto& [name, tensor] = (*loaded)[i];
    // The embedding went through float16; everything else is exact.
    const torch::Tensor expected =
        name == "embed.weight"
            ? base[name].to(torch::kFloat16).to(torch::kFloat32)
            : base[name];
    EXPECT_TRUE(torch::equal(tensor, expected)) << name;
  }
}

}  // namespace
}  // namespace oubli::ml
