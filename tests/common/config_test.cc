#include "common/config.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <tuple>
#include <vector>

namespace oubli {
namespace {

TEST(ConfigTest, TextRoundTrip) {
  ModelConfig c;
  c.model_id = "m-1";
  c.backbone.kind = BackboneKind::kVit;
  c.backbone.mlp_hidden = {8, 9};
  c.backbone.lora.alpha = 0.1 + 0.2;  // not exactly representable
  c.backbone.lora.rslora = true;
  c.train.learning_rate = 2e-4;
  c.seed = 18446744073709551615ull;
  c.retrain.mode = RetrainMode::kBatched;
  c.retrain.window = absl::Milliseconds(1500);
  c.base.provenance = "public split";
  c.erasure = {3, 2};
  auto parsed = ParseConfig(ConfigToText(c));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(ConfigToText(*parsed), ConfigToText(c));
  EXPECT_EQ(parsed->backbone.lora.alpha, c.backbone.lora.alpha);
  EXPECT_EQ(parsed->retrain.window, absl::Milliseconds(1500));
  EXPECT_EQ(parsed->erasure.data_chunks, 3);
  EXPECT_EQ(parsed->erasure.parity_chunks, 2);
  // Configs stored before the erasure keys existed parse as automatic.
  auto old = ParseConfig("shards=2\n");
  ASSERT_TRUE(old.ok());
  EXPECT_TRUE(old->erasure.automatic());
}

TEST(ConfigTest, PlacementDefaultsAndLegacyConfigs) {
  ModelConfig fresh;
  EXPECT_EQ(fresh.placement.by, Placement::kOwner);  // new models
  // A config stored before placement existed reads as sample placement...
  auto old = ParseStoredConfig("shards=2\n");
  ASSERT_TRUE(old.ok());
  EXPECT_EQ(old->placement.by, Placement::kSample);
  // ...while a config file for a new model gets the new default.
  auto file = ParseConfig("shards=2\n");
  ASSERT_TRUE(file.ok());
  EXPECT_EQ(file->placement.by, Placement::kOwner);
  EXPECT_FALSE(old->placement.risk.enabled());
  // ...and keeps the fingerprint it had then (computed with that release's
  // code), so its checkpoint keys stay valid.
  ModelConfig legacy;
  legacy.placement.by = Placement::kSample;
  legacy.train.learning_rate = 1e-3;  // that release's default
  EXPECT_EQ(ConfigFingerprint(legacy),
            "ebd3abd067687b75a27ddcf3db182df327063548c48ca6353a3a4ca738562e99");
  legacy.shards = 2;
  legacy.slices = 3;
  legacy.seed = 9;
  EXPECT_EQ(ConfigFingerprint(legacy),
            "8c75e31079591bc5570958ae7b79c9f2db8456089d9d0fc0acaf3dffbc1f5f62");
  // Risk settings that are off do not count; everything else does.
  ModelConfig a, b;
  b.placement.risk.threshold = 0.9;
  b.placement.risk.deletion_share = 0.1;
  EXPECT_EQ(ConfigFingerprint(a), ConfigFingerprint(b));
  b.placement.risk.slices = 1;
  EXPECT_NE(ConfigFingerprint(a), ConfigFingerprint(b));
  ModelConfig c = b;
  c.placement.risk.deletion_share = 0.2;
  EXPECT_NE(ConfigFingerprint(c), ConfigFingerprint(b));
  // risk_shards = 0 is what risk-aware models made before it did: left
  // out, so their fingerprints (and checkpoint keys) stay as they were.
  ModelConfig concentrated = b;
  EXPECT_NE(ConfigToText(concentrated).find("placement.risk_shards=0\n"),
            std::string::npos);
  concentrated.placement.risk.shards = 2;
  EXPECT_NE(ConfigFingerprint(concentrated), ConfigFingerprint(b));
  // A risk-aware model's fingerprint as the release before risk_shards
  // computed it.
  ModelConfig risk_aware;
  risk_aware.placement.risk.slices = 1;
  EXPECT_EQ(ConfigFingerprint(risk_aware),
            "62d6e72489e9af7d0ce3c460af6bc8eba7b22f88c7b7e4f9179c3707a5dd1705");
  a.placement.by = Placement::kSample;
  EXPECT_NE(ConfigFingerprint(a), ConfigFingerprint(ModelConfig()));
  // Round trip with every placement key.
  auto parsed = ParseConfig(ConfigToText(c));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(ConfigToText(*parsed), ConfigToText(c));
  EXPECT_EQ(parsed->placement.by, Placement::kOwner);
  EXPECT_EQ(parsed->placement.risk.slices, 1);
  EXPECT_EQ(parsed->placement.risk.deletion_share, 0.2);
  c.placement.risk.shards = 1;
  auto with_shards = ParseConfig(ConfigToText(c));
  ASSERT_TRUE(with_shards.ok()) << with_shards.status();
  EXPECT_EQ(with_shards->placement.risk.shards, 1);
  auto bad = ParseConfig("placement=random\n");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("owner or sample"), std::string::npos);
}

TEST(ConfigTest, RiskProfileValidation) {
  for (const auto& [slices, threshold, share, ok] :
       std::vector<std::tuple<int, double, double, bool>>{
           {0, 0.5, 0.7, true},
           {3, 1.0, 0.0, true},
           {4, 0.5, 0.7, false},   // no slice left for the others (L=4)
           {-1, 0.5, 0.7, false},
           {1, 0.0, 0.7, false},   // threshold must be > 0
           {1, 1.1, 0.7, false},
           {1, 0.5, 1.5, false},
           {1, std::nan(""), 0.7, false}}) {
    ModelConfig c;
    c.placement.risk = {slices, threshold, share};
    const absl::Status status = ValidateConfig(c);
    EXPECT_EQ(status.ok(), ok) << slices << " " << threshold << " " << share;
    if (!ok) {
      EXPECT_NE(status.message().find("placement.risk_"), std::string::npos)
          << status;
    }
  }
}

TEST(ConfigTest, RiskShardsValidation) {
  ModelConfig c;
  c.shards = 4;
  c.placement.risk.slices = 1;
  for (int shards : {0, 1, 3}) {
    c.placement.risk.shards = shards;
    EXPECT_TRUE(ValidateConfig(c).ok()) << shards;
  }
  // Every shard is spelled 0, so one placement has one fingerprint.
  for (int shards : {-1, 4, 5}) {
    c.placement.risk.shards = shards;
    const absl::Status status = ValidateConfig(c);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << shards;
    EXPECT_NE(status.message().find("placement.risk_shards must be 0 "
                                    "(every shard) to shards - 1 (3)"),
              std::string::npos)
        << status;
  }
  // Concentrating high-risk samples needs somewhere to put them.
  c.placement.risk.slices = 0;
  c.placement.risk.shards = 2;
  const absl::Status off = ValidateConfig(c);
  EXPECT_EQ(off.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(off.message().find("needs placement.risk_slices > 0"),
            std::string::npos)
      << off;
}

TEST(ConfigTest, ParseErrorsNameTheProblem) {
  auto unknown = ParseConfig("shards=2\nbogus=1\n");
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(unknown.status().message().find("bogus"), std::string::npos);
  auto not_number = ParseConfig("shards=two\n");
  EXPECT_NE(not_number.status().message().find("shards"), std::string::npos);
}

TEST(ConfigTest, ValidationRejectsBadValues) {
  ModelConfig c;
  EXPECT_TRUE(ValidateConfig(c).ok());
  c.slices = 5;  // default MLP has 4 adapter layers
  EXPECT_EQ(ValidateConfig(c).code(), absl::StatusCode::kInvalidArgument);
  c = ModelConfig();
  c.model_id = "../evil";
  EXPECT_FALSE(ValidateConfig(c).ok());
  c = ModelConfig();
  c.backbone.kind = BackboneKind::kVit;
  c.backbone.vit_patch = 5;  // does not divide 28
  EXPECT_FALSE(ValidateConfig(c).ok());
  // Erasure code: automatic (0, 0) or k, m >= 1 with k + m <= 64.
  for (const auto& [k, m, ok] :
       std::vector<std::tuple<int, int, bool>>{{0, 0, true},
                                               {1, 1, true},
                                               {4, 2, true},
                                               {60, 4, true},
                                               {0, 2, false},
                                               {3, 0, false},
                                               {-1, 2, false},
                                               {60, 5, false}}) {
    c = ModelConfig();
    c.erasure = {k, m};
    EXPECT_EQ(ValidateConfig(c).ok(), ok) << k << "+" << m;
  }
}

TEST(ConfigTest, FingerprintIgnoresWeightNeutralSettings) {
  ModelConfig a, b;
  b.model_id = "other";
  b.retrain.mode = RetrainMode::kBatched;
  b.erasure = {4, 2};
  b.serving.base_fallback = true;
  auto parsed = ParseConfig(ConfigToText(b));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_TRUE(parsed->serving.base_fallback);
  EXPECT_FALSE(ParseStoredConfig("shards=2\n")->serving.base_fallback);
  EXPECT_EQ(ConfigFingerprint(a), ConfigFingerprint(b));
  b.determinism.blas_threads = 2;  // changes the bits, so the fingerprint
  EXPECT_NE(ConfigFingerprint(a), ConfigFingerprint(b));
}

ModelConfig DecoderModel() {
  ModelConfig c;
  c.backbone.kind = BackboneKind::kDecoder;
  c.backbone.decoder.layout = DecoderLayout::kGpt2;
  c.backbone.decoder.objective = DecoderObjective::kClassify;
  c.backbone.decoder.vocab_size = 300;
  c.backbone.decoder.norm_eps = 1e-6;
  c.backbone.decoder.lora_targets = {LoraTarget::kUp, LoraTarget::kQ};
  c.backbone.num_classes = 4;
  return c;
}

TEST(DecoderConfigTest, TextRoundTripAndOnlyDecodersCarryTheKeys) {
  const ModelConfig c = DecoderModel();
  ASSERT_TRUE(ValidateConfig(c).ok()) << ValidateConfig(c);
  const std::string text = ConfigToText(c);
  EXPECT_NE(text.find("backbone.kind=decoder\n"), std::string::npos);
  EXPECT_NE(text.find("decoder.lora_targets=up,q\n"), std::string::npos);
  auto parsed = ParseConfig(text);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(ConfigToText(*parsed), text);
  EXPECT_EQ(parsed->backbone.decoder.layout, DecoderLayout::kGpt2);
  EXPECT_EQ(parsed->backbone.decoder.objective, DecoderObjective::kClassify);
  EXPECT_EQ(parsed->backbone.decoder.norm_eps, 1e-6);
  // Image models' configs, and so their fingerprints and checkpoint keys,
  // are what they were before decoders existed.
  EXPECT_EQ(ConfigToText(ModelConfig()).find("decoder."), std::string::npos);
}

TEST(DecoderConfigTest, FingerprintCoversTheDecoder) {
  const ModelConfig a = DecoderModel();
  ModelConfig b = a;
  b.backbone.decoder.lora_targets = {LoraTarget::kQ, LoraTarget::kUp};
  EXPECT_NE(ConfigFingerprint(a), ConfigFingerprint(b));
  b = a;
  b.backbone.decoder.rope_theta = 500000;
  EXPECT_NE(ConfigFingerprint(a), ConfigFingerprint(b));
  // The differences name decoder keys, and an image model against a
  // decoder lists the keys only one of them has.
  EXPECT_EQ(ConfigDifferences(a, b),
            std::vector<std::string>{
                "decoder.rope_theta: '10000', requested '5e+05'"});
  const auto across = ConfigDifferences(ModelConfig(), a);
  EXPECT_NE(std::find(across.begin(), across.end(),
                      "decoder.layout: '(none)', requested 'gpt2'"),
            across.end());
}

TEST(DecoderConfigTest, RefusalsNameTheKey) {
  EXPECT_EQ(ParseConfig("decoder.layout=bert\n").status().message(),
            "decoder.layout must be gpt2 or llama, got 'bert'");
  EXPECT_EQ(ParseConfig("decoder.objective=mlm\n").status().message(),
            "decoder.objective must be causal_lm or classify, got 'mlm'");
  EXPECT_EQ(ParseConfig("decoder.lora_targets=q,c_attn\n").status().message(),
            "config key 'decoder.lora_targets': unknown LoRA target 'c_attn'; "
            "expected q, k, v, o, gate, up or down");
  // Keys a non-decoder would drop without a word are refused.
  EXPECT_EQ(ParseConfig("backbone.kind=mlp\ndecoder.layers=8\n")
                .status()
                .message(),
            "decoder.* keys apply only to backbone.kind=decoder");
  EXPECT_TRUE(ParseConfig("decoder.layers=8\nbackbone.kind=decoder\n").ok());
  ModelConfig c = DecoderModel();
  c.backbone.decoder.layers = 2;
  c.slices = 3;
  EXPECT_NE(ValidateConfig(c).message().find("2 adapter layers"),
            std::string::npos);
  c = DecoderModel();
  c.backbone.decoder.kv_heads = 2;
  EXPECT_NE(ValidateConfig(c).message().find("no grouped-query attention"),
            std::string::npos);
  // A language model needs no classes; a classifier does.
  c = DecoderModel();
  c.backbone.num_classes = 1;
  EXPECT_FALSE(ValidateConfig(c).ok());
  c.backbone.decoder.objective = DecoderObjective::kCausalLm;
  EXPECT_TRUE(ValidateConfig(c).ok()) << ValidateConfig(c);
}

TEST(DecoderConfigTest, VocabularyAndContextKeepTheApiBounds) {
  auto message = [](auto mutate) {
    ModelConfig c = DecoderModel();
    mutate(c.backbone.decoder);
    return std::string(ValidateConfig(c).message());
  };
  EXPECT_EQ(message([](DecoderConfig& d) { d.vocab_size = 1; }),
            "decoder: vocab_size must be 2..1048576, got 1");
  EXPECT_EQ(message([](DecoderConfig& d) { d.vocab_size = (1 << 20) + 1; }),
            "decoder: vocab_size must be 2..1048576, got 1048577");
  EXPECT_EQ(message([](DecoderConfig& d) { d.context_length = 1; }),
            "decoder: context_length must be 2..65536, got 1");
  EXPECT_EQ(message([](DecoderConfig& d) { d.context_length = 65537; }),
            "decoder: context_length must be 2..65536, got 65537");
  EXPECT_EQ(message([](DecoderConfig& d) {
              d.vocab_size = 2;
              d.context_length = 2;
            }),
            "");
}

}  // namespace
}  // namespace oubli
