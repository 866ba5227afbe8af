// Language models through the engine: token samples are ingested, trained
// with S3T, served (Score, Generate, Predict of token rows), forgotten and
// restored to the bits of training from scratch; and every call that does
// not fit the model is refused with a precise error.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include "coordinator/engine.h"
#include "coordinator/lm_ensemble.h"
#include "coordinator/model_base.h"
#include "tests/testing/test_util.h"
#include "worker/ml/shard_model.h"

namespace oubli::coordinator {
namespace {

using ::testing::HasSubstr;

constexpr int kVocab = 24;
constexpr int kContext = 10;

ModelConfig TinyLmConfig(DecoderObjective objective) {
  ModelConfig c;
  c.model_id = "lm";
  c.placement.by = Placement::kOwner;
  c.backbone.kind = BackboneKind::kDecoder;
  c.backbone.num_classes = 3;
  DecoderConfig& d = c.backbone.decoder;
  d.layout = DecoderLayout::kLlama;
  d.objective = objective;
  d.vocab_size = kVocab;
  d.context_length = kContext;
  d.dim = 16;
  d.layers = 2;
  d.heads = 2;
  d.kv_heads = 1;
  d.mlp_dim = 24;
  d.lora_targets = {LoraTarget::kQ, LoraTarget::kV, LoraTarget::kDown};
  c.backbone.lora.rank = 2;
  c.shards = 2;
  c.slices = 2;
  c.sequences = 2;
  c.seed = 7;
  c.train.epochs_per_position = 2;
  c.train.batch_size = 4;
  c.train.learning_rate = 1e-2;
  return c;
}

// Owner k's samples repeat a pattern of their own (so the model has
// something to learn), with a two-token prompt and a class of k % 3.
std::vector<Sample> TokenSamples(int owners, int per_owner) {
  std::vector<Sample> samples;
  for (int k = 0; k < owners; ++k) {
    for (int i = 0; i < per_owner; ++i) {
      Sample s;
      s.id = "s-" + std::to_string(k) + "-" + std::to_string(i);
      s.owner = "person-" + std::to_string(k);
      std::vector<uint32_t> tokens;
      const int length = 4 + (k + i) % (kContext - 4);
      for (int t = 0; t < length; ++t) {
        tokens.push_back(static_cast<uint32_t>((k * 5 + t * (k % 4 + 1) + i) %
                                               kVocab));
      }
      s.features = EncodeTokens(tokens, &s.feature_type);
      s.prompt_tokens = 2;
      s.label = k % 3;
      samples.push_back(std::move(s));
    }
  }
  return samples;
}

std::vector<int32_t> TokensOf(const Sample& sample) {
  return DecodeTokens(sample.feature_type, sample.features);
}

class EngineLmTest : public ::testing::Test {
 protected:
  std::unique_ptr<Engine> Open(const std::string& name,
                               const ModelConfig& config) {
    Engine::Options options;
    options.data_dir = (root_ / name).string();
    options.config = config;
    options.background_retrain = false;
    auto engine = Engine::Open(options);
    EXPECT_TRUE(engine.ok()) << engine.status();
    return engine.ok() ? *std::move(engine) : nullptr;
  }

  std::string ScratchFingerprint(const ModelConfig& config,
                                 const std::vector<Sample>& samples,
                                 const std::string& forgotten_owner) {
    std::vector<Sample> retained;
    for (const Sample& s : samples) {
      if (s.owner != forgotten_owner) retained.push_back(s);
    }
    auto engine = Open("scratch-" + std::to_string(scratch_++), config);
    EXPECT_TRUE(engine->Ingest(retained).ok());
    EXPECT_TRUE(engine->Train().ok());
    return engine->Fingerprint();
  }

  testing_util::ScopedTempDir temp_dir_;
  const std::filesystem::path root_ = temp_dir_.path();
  int scratch_ = 0;
};

TEST_F(EngineLmTest, CausalLmTrainsServesAndForgetsAnOwnerExactly) {
  const ModelConfig config = TinyLmConfig(DecoderObjective::kCausalLm);
  const std::vector<Sample> samples = TokenSamples(12, 4);
  auto engine = Open("m", config);
  ASSERT_NE(engine, nullptr);
  auto ingested = engine->Ingest(samples);
  ASSERT_TRUE(ingested.ok()) << ingested.status();
  EXPECT_EQ(ingested->accepted, 48);
  EXPECT_TRUE(ingested->rejected.empty());
  ASSERT_TRUE(engine->Train().ok());

  const std::vector<int32_t> probe = TokensOf(samples[0]);
  auto scores = engine->Score({probe});
  ASSERT_TRUE(scores.ok()) << scores.status();
  ASSERT_EQ(scores->token_log_probs.size(), 1u);
  ASSERT_EQ(scores->token_log_probs[0].size(), probe.size() - 1);
  for (float lp : scores->token_log_probs[0]) {
    EXPECT_TRUE(std::isfinite(lp));
    EXPECT_LT(lp, 0.0f);
  }
  EXPECT_EQ(scores->fingerprint, engine->Fingerprint());
  EXPECT_FALSE(scores->from_base);
  ASSERT_EQ(scores->served.size(), 2u);

  GenerateOptions greedy;
  greedy.prompt = {probe[0], probe[1]};
  greedy.max_tokens = 5;
  auto first = engine->Generate(greedy);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->tokens.size(), 5u);
  EXPECT_EQ(first->token_log_probs.size(), 5u);
  EXPECT_EQ(first->finish_reason, FinishReason::kMaxTokens);
  // Greedy generation scores as the tokens it picked.
  std::vector<int32_t> continued = greedy.prompt;
  continued.insert(continued.end(), first->tokens.begin(), first->tokens.end());
  auto rescored = engine->Score({continued});
  ASSERT_TRUE(rescored.ok());
  for (size_t i = 0; i < first->tokens.size(); ++i) {
    EXPECT_NEAR(rescored->token_log_probs[0][1 + i], first->token_log_probs[i],
                1e-4);
  }
  GenerateOptions sampled = greedy;
  sampled.temperature = 1.5;
  sampled.seed = 99;
  sampled.max_tokens = 20;  // more than the context leaves
  auto a = engine->Generate(sampled);
  auto b = engine->Generate(sampled);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->tokens, b->tokens);
  EXPECT_EQ(a->finish_reason, FinishReason::kContext);
  EXPECT_EQ(a->tokens.size(), static_cast<size_t>(kContext - 2));
  sampled.stop_tokens = {a->tokens[0]};
  auto stopped = engine->Generate(sampled);
  ASSERT_TRUE(stopped.ok());
  EXPECT_EQ(stopped->tokens, std::vector<int32_t>{a->tokens[0]});
  EXPECT_EQ(stopped->finish_reason, FinishReason::kStopToken);

  const std::string before = engine->Fingerprint();
  auto receipt = engine->ForgetOwner("person-3");
  ASSERT_TRUE(receipt.ok()) << receipt.status();
  EXPECT_EQ(receipt->stage, DeletionStage::kForgotten);
  EXPECT_EQ(receipt->resolved_ids.size(), 4u);
  // Owner placement: one person's deletion cuts one shard.
  EXPECT_EQ(receipt->affected_shards.size(), 1u);
  EXPECT_NE(engine->Fingerprint(), before);
  auto retrained = engine->RunPendingRetrains(/*ignore_policy=*/true);
  ASSERT_TRUE(retrained.ok()) << retrained.status();
  EXPECT_GT(retrained->positions_trained, 0);
  ASSERT_TRUE(engine
                  ->WaitForRestored(receipt->deletion_id, absl::Seconds(60))
                  .ok());
  EXPECT_EQ(engine->Fingerprint(),
            ScratchFingerprint(config, samples, "person-3"));
  EXPECT_NE(engine->Fingerprint(), ScratchFingerprint(config, samples, ""));
  auto verify = engine->Verify();
  ASSERT_TRUE(verify.ok()) << verify.status();
  EXPECT_TRUE(verify->restored);
  EXPECT_TRUE(verify->match);
}

TEST_F(EngineLmTest, ClassifyingDecoderPredictsTokenRowsAndForgetsExactly) {
  const ModelConfig config = TinyLmConfig(DecoderObjective::kClassify);
  const std::vector<Sample> samples = TokenSamples(9, 4);
  auto engine = Open("m", config);
  ASSERT_NE(engine, nullptr);
  ASSERT_TRUE(engine->Ingest(samples).ok());
  ASSERT_TRUE(engine->Train().ok());
  auto prediction =
      engine->PredictTokens({TokensOf(samples[0]), TokensOf(samples[5])});
  ASSERT_TRUE(prediction.ok()) << prediction.status();
  EXPECT_EQ(prediction->rows, 2);
  EXPECT_EQ(prediction->classes, 3);
  ASSERT_EQ(prediction->probabilities.size(), 6u);
  for (int row = 0; row < 2; ++row) {
    double sum = 0;
    for (int c = 0; c < 3; ++c) sum += prediction->probabilities[row * 3 + c];
    EXPECT_NEAR(sum, 1.0, 1e-5);
  }
  EXPECT_EQ(prediction->fingerprint, engine->Fingerprint());

  auto receipt = engine->DeleteSamples({"s-4-1", "s-7-0"});
  ASSERT_TRUE(receipt.ok()) << receipt.status();
  ASSERT_TRUE(engine->RunPendingRetrains(/*ignore_policy=*/true).ok());
  std::vector<Sample> retained;
  for (const Sample& s : samples) {
    if (s.id != "s-4-1" && s.id != "s-7-0") retained.push_back(s);
  }
  auto scratch = Open("scratch", config);
  ASSERT_TRUE(scratch->Ingest(retained).ok());
  ASSERT_TRUE(scratch->Train().ok());
  EXPECT_EQ(engine->Fingerprint(), scratch->Fingerprint());
  auto verify = engine->Verify();
  ASSERT_TRUE(verify.ok());
  EXPECT_TRUE(verify->match);
}

TEST_F(EngineLmTest, TokenSamplesThatDoNotFitAreRejectedEach) {
  auto engine = Open("m", TinyLmConfig(DecoderObjective::kCausalLm));
  ASSERT_NE(engine, nullptr);
  auto token_sample = [](const std::string& id,
                         const std::vector<uint32_t>& tokens, int prompt) {
    Sample s;
    s.id = id;
    s.owner = "o";
    s.features = EncodeTokens(tokens, &s.feature_type);
    s.prompt_tokens = prompt;
    return s;
  };
  std::vector<Sample> batch;
  batch.push_back(token_sample("good", {1, 2, 3}, 1));
  Sample pixels;
  pixels.id = "pixels";
  pixels.owner = "o";
  pixels.features = std::string(16, '\x01');
  batch.push_back(pixels);
  batch.push_back(token_sample("long", std::vector<uint32_t>(kContext + 1, 3), 0));
  batch.push_back(token_sample("vocab", {1, kVocab, 2}, 0));
  batch.push_back(token_sample("one", {5}, 0));
  batch.push_back(token_sample("all-prompt", {1, 2, 3}, 3));
  auto result = engine->Ingest(batch);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->accepted, 1);
  std::map<std::string, std::string> reasons(result->rejected.begin(),
                                             result->rejected.end());
  EXPECT_EQ(reasons["pixels"],
            "holds features; model 'lm' is a language model and takes tokens");
  EXPECT_EQ(reasons["long"], "has 11 tokens; model 'lm' has a context of 10");
  EXPECT_EQ(reasons["vocab"],
            "token 1 (id 24) is outside the vocabulary [0, 24)");
  EXPECT_EQ(reasons["one"],
            "has 1 token; a language model learns from 2 or more");
  // ValidateSample or the model's own check: either way it is refused.
  EXPECT_THAT(reasons["all-prompt"], HasSubstr("prompt_tokens 3"));
  EXPECT_EQ(reasons.size(), 5u);

  // A classifying decoder reads labels.
  auto classify = Open("c", TinyLmConfig(DecoderObjective::kClassify));
  Sample labelled = token_sample("x", {1, 2}, 0);
  labelled.label = 3;
  auto refused = classify->Ingest({labelled});
  ASSERT_TRUE(refused.ok());
  ASSERT_EQ(refused->rejected.size(), 1u);
  EXPECT_EQ(refused->rejected[0].second, "label 3 is outside [0, 3)");
}

TEST_F(EngineLmTest, CallsOfAnotherKindOrOutOfRangeAreRefused) {
  auto lm = Open("lm", TinyLmConfig(DecoderObjective::kCausalLm));
  auto classify = Open("c", TinyLmConfig(DecoderObjective::kClassify));
  ModelConfig image = TinyLmConfig(DecoderObjective::kCausalLm);
  image.backbone = BackboneConfig();
  image.backbone.input_height = 4;
  image.backbone.input_width = 4;
  image.backbone.num_classes = 3;
  image.backbone.mlp_hidden = {8, 8};
  auto pixels = Open("img", image);
  ASSERT_TRUE(lm && classify && pixels);
  ASSERT_TRUE(lm->Ingest(TokenSamples(4, 2)).ok());
  ASSERT_TRUE(lm->Train().ok());

  auto message = [](const absl::Status& status) {
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
    return std::string(status.message());
  };
  const std::vector<float> features(16, 0.5f);
  EXPECT_EQ(message(lm->Predict(features, 1).status()),
            "model 'lm' is a language model: it takes token sequences "
            "(Score, Generate), not features");
  EXPECT_EQ(message(classify->Predict(features, 1).status()),
            "model 'lm' is a language model: it takes token rows (Predict "
            "with sequences), not features");
  EXPECT_EQ(message(pixels->Score({{1, 2}}).status()),
            "scoring needs a causal language model; model 'lm' is an image "
            "classifier (Predict)");
  EXPECT_EQ(message(classify->Generate({}).status()),
            "generating needs a causal language model; model 'lm' is a "
            "classifying decoder (Predict with token rows)");
  EXPECT_EQ(message(lm->PredictTokens({{1, 2}}).status()),
            "predicting classes of token rows needs a classifying decoder; "
            "model 'lm' is a causal language model (Score, Generate)");
  EXPECT_EQ(message(classify->PredictTokens({}).status()),
            "predict takes 1..4096 token rows, got 0");

  EXPECT_EQ(message(lm->Score({}).status()),
            "score takes 1..256 sequences, got 0");
  EXPECT_EQ(message(lm->Score(std::vector<std::vector<int32_t>>(257, {1, 2}))
                        .status()),
            "score takes 1..256 sequences, got 257");
  EXPECT_EQ(message(lm->Score({{1, 2}, {3}}).status()),
            "sequence 1 has 1 tokens; scoring needs 2 or more (the first is "
            "context)");
  EXPECT_EQ(message(lm->Score({{1, kVocab}}).status()),
            "token row 0: token 1 (id 24) is outside the vocabulary [0, 24)");
  EXPECT_EQ(message(lm->Score({std::vector<int32_t>(kContext + 1, 1)}).status()),
            "token row 0: 11 tokens; the context holds 10");

  GenerateOptions options;
  options.prompt = {1, 2};
  options.max_tokens = 3;
  auto generate = [&](auto change) {
    GenerateOptions o = options;
    change(o);
    return message(lm->Generate(o).status());
  };
  EXPECT_EQ(generate([](GenerateOptions& o) { o.prompt.clear(); }),
            "the prompt has no tokens");
  EXPECT_EQ(generate([](GenerateOptions& o) {
              o.prompt.assign(kContext, 1);
            }),
            "the prompt has 10 tokens; the context holds 10, so at most 9 "
            "leave room to generate");
  EXPECT_EQ(generate([](GenerateOptions& o) { o.max_tokens = 0; }),
            "max_tokens 0 is outside 1..1024");
  EXPECT_EQ(generate([](GenerateOptions& o) { o.max_tokens = 1025; }),
            "max_tokens 1025 is outside 1..1024");
  EXPECT_EQ(generate([](GenerateOptions& o) { o.temperature = -0.5; }),
            "temperature -0.5 must be finite and >= 0");
  EXPECT_THAT(generate([](GenerateOptions& o) {
                o.temperature = std::numeric_limits<double>::quiet_NaN();
              }),
              HasSubstr("must be finite and >= 0"));
  EXPECT_EQ(generate([](GenerateOptions& o) { o.prompt = {1, -5}; }),
            "prompt token 1 (id 4294967291) is outside the vocabulary [0, 24)");
  EXPECT_EQ(generate([](GenerateOptions& o) { o.stop_tokens = {kVocab}; }),
            "stop token 0 (id 24) is outside the vocabulary [0, 24)");
}

TEST_F(EngineLmTest, UntrainedLanguageModelAnswersFromTheBaseOnlyWhenAllowed) {
  ModelConfig config = TinyLmConfig(DecoderObjective::kCausalLm);
  auto strict = Open("strict", config);
  ASSERT_NE(strict, nullptr);
  EXPECT_EQ(strict->Score({{1, 2, 3}}).status().code(),
            absl::StatusCode::kFailedPrecondition);
  config.serving.base_fallback = true;
  auto lenient = Open("lenient", config);
  ASSERT_NE(lenient, nullptr);
  auto scores = lenient->Score({{1, 2, 3}});
  ASSERT_TRUE(scores.ok()) << scores.status();
  EXPECT_TRUE(scores->from_base);
  GenerateOptions options;
  options.prompt = {1};
  auto generated = lenient->Generate(options);
  ASSERT_TRUE(generated.ok()) << generated.status();
  EXPECT_TRUE(generated->from_base);
}

// The ensemble's log-likelihood is the log of the members' mean
// probability, and greedy generation takes the argmax of their mean.
TEST(LmEnsembleTest, MeansTheMembersDistributions) {
  ModelConfig config = TinyLmConfig(DecoderObjective::kCausalLm);
  ShardModels members;
  for (uint64_t seed : {1, 2}) {
    config.seed = seed;
    auto base = ModelBase::Load(config);
    ASSERT_TRUE(base.ok()) << base.status();
    auto model = (*base)->BaseAlone();
    ASSERT_TRUE(model.ok()) << model.status();
    members.push_back(*model);
  }
  const std::vector<int32_t> sequence = {3, 9, 4, 17, 2};
  auto ensemble = EnsembleTokenLogProbs(members, config.backbone, {sequence});
  ASSERT_TRUE(ensemble.ok()) << ensemble.status();
  std::vector<std::vector<float>> each;
  for (const auto& member : members) {
    auto alone = EnsembleTokenLogProbs({member}, config.backbone, {sequence});
    ASSERT_TRUE(alone.ok());
    each.push_back((*alone)[0]);
  }
  ASSERT_EQ((*ensemble)[0].size(), 4u);
  for (size_t t = 0; t < 4; ++t) {
    const double mean = (std::exp(double{each[0][t]}) +
                         std::exp(double{each[1][t]})) / 2;
    EXPECT_NEAR((*ensemble)[0][t], std::log(mean), 1e-5);
    EXPECT_NE(each[0][t], each[1][t]);  // the members differ
  }
  GenerateOptions options;
  options.prompt = {3, 9};
  options.max_tokens = 1;
  auto generated = EnsembleGenerate(members, config.backbone, options);
  ASSERT_TRUE(generated.ok()) << generated.status();
  // The token picked has the highest mean log-probability of all.
  const int32_t picked = generated->tokens[0];
  for (int32_t v = 0; v < kVocab; ++v) {
    auto scored = EnsembleTokenLogProbs(members, config.backbone, {{3, 9, v}});
    ASSERT_TRUE(scored.ok());
    auto best = EnsembleTokenLogProbs(members, config.backbone, {{3, 9, picked}});
    EXPECT_LE((*scored)[0][1], (*best)[0][1]) << v;
  }
}

}  // namespace
}  // namespace oubli::coordinator
