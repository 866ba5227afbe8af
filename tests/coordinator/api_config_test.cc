// The API's model config and the domain's (coordinator/api_config.h): both
// directions for every backbone, defaults of unset fields, and refusals
// that name the field.
#include "coordinator/api_config.h"

#include <gmock/gmock.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <string>

#include "common/config.h"
#include "oubli/v1/oubli.pb.h"

namespace oubli::coordinator {
namespace {

namespace v1 = ::oubli::v1;
using ::testing::HasSubstr;

ModelConfig Gpt2Classifier() {
  ModelConfig c;
  c.backbone.kind = BackboneKind::kDecoder;
  DecoderConfig& d = c.backbone.decoder;
  d.layout = DecoderLayout::kGpt2;
  d.objective = DecoderObjective::kClassify;
  d.vocab_size = 300;
  d.context_length = 40;
  d.dim = 48;
  d.layers = 3;
  d.heads = 6;
  d.kv_heads = 6;
  d.mlp_dim = 192;
  d.norm_eps = 1e-6;
  d.lora_targets = {LoraTarget::kUp, LoraTarget::kQ, LoraTarget::kO};
  c.backbone.num_classes = 5;
  c.slices = 3;
  return c;
}

ModelConfig LlamaLm() {
  ModelConfig c;
  c.backbone.kind = BackboneKind::kDecoder;
  DecoderConfig& d = c.backbone.decoder;
  d.layout = DecoderLayout::kLlama;
  d.objective = DecoderObjective::kCausalLm;
  d.heads = 8;
  d.kv_heads = 2;
  d.rope_theta = 500000;
  d.tie_embeddings = false;
  d.lora_targets = {LoraTarget::kGate, LoraTarget::kDown, LoraTarget::kV};
  c.backbone.lora.rank = 4;
  c.backbone.lora.rslora = true;
  return c;
}

TEST(ApiConfigTest, EveryBackboneRoundTrips) {
  ModelConfig vit;
  vit.backbone.kind = BackboneKind::kVit;
  vit.erasure = {2, 1};
  for (const ModelConfig& c :
       {ModelConfig(), vit, Gpt2Classifier(), LlamaLm()}) {
    ASSERT_TRUE(ValidateConfig(c).ok()) << ValidateConfig(c);
    const v1::ModelConfig proto = ConfigToProto(c);
    EXPECT_EQ(proto.has_decoder(), c.backbone.kind == BackboneKind::kDecoder);
    absl::StatusOr<ModelConfig> back = ConfigFromProto(proto);
    ASSERT_TRUE(back.ok()) << back.status();
    // The text form holds every field, so equal text is an equal config.
    EXPECT_EQ(ConfigToText(*back), ConfigToText(c));
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(
        ConfigToProto(*back), proto));
  }
  const v1::ModelConfig proto = ConfigToProto(LlamaLm());
  EXPECT_EQ(proto.backbone(), v1::BACKBONE_KIND_DECODER);
  EXPECT_EQ(proto.decoder().layout(), v1::DECODER_LAYOUT_LLAMA);
  EXPECT_EQ(proto.decoder().objective(), v1::DECODER_OBJECTIVE_CAUSAL_LM);
  EXPECT_EQ(proto.decoder().kv_heads(), 2);
  EXPECT_FALSE(proto.decoder().tie_embeddings());
  EXPECT_THAT(proto.decoder().lora_targets(),
              ::testing::ElementsAre("gate", "down", "v"));
  EXPECT_EQ(ConfigToProto(Gpt2Classifier()).decoder().layout(),
            v1::DECODER_LAYOUT_GPT2);
}

TEST(ApiConfigTest, UnsetDecoderFieldsTakeTheDefaults) {
  v1::ModelConfig proto;
  proto.set_backbone(v1::BACKBONE_KIND_DECODER);
  absl::StatusOr<ModelConfig> bare = ConfigFromProto(proto);
  ASSERT_TRUE(bare.ok()) << bare.status();
  ModelConfig defaults;
  defaults.backbone.kind = BackboneKind::kDecoder;
  EXPECT_EQ(ConfigToText(*bare), ConfigToText(defaults));

  proto.mutable_decoder()->set_objective(v1::DECODER_OBJECTIVE_CLASSIFY);
  proto.mutable_decoder()->set_dim(32);
  absl::StatusOr<ModelConfig> some = ConfigFromProto(proto);
  ASSERT_TRUE(some.ok()) << some.status();
  EXPECT_EQ(some->backbone.decoder.objective, DecoderObjective::kClassify);
  EXPECT_EQ(some->backbone.decoder.dim, 32);
  EXPECT_EQ(some->backbone.decoder.layout, DecoderLayout::kLlama);
  EXPECT_EQ(some->backbone.decoder.vocab_size, DecoderConfig().vocab_size);
  EXPECT_EQ(some->backbone.decoder.lora_targets,
            (std::vector<LoraTarget>{LoraTarget::kQ, LoraTarget::kV}));
}

// kv_heads left unset follows heads, so a GPT-2 (which has no grouped-query
// attention) with other than the default heads is accepted as sent.
TEST(ApiConfigTest, UnsetKvHeadsFollowsHeads) {
  v1::ModelConfig proto;
  proto.set_backbone(v1::BACKBONE_KIND_DECODER);
  proto.mutable_decoder()->set_layout(v1::DECODER_LAYOUT_GPT2);
  proto.mutable_decoder()->set_heads(8);
  absl::StatusOr<ModelConfig> gpt2 = ConfigFromProto(proto);
  ASSERT_TRUE(gpt2.ok()) << gpt2.status();
  EXPECT_EQ(gpt2->backbone.decoder.kv_heads, 8);
  EXPECT_TRUE(ValidateConfig(*gpt2).ok()) << ValidateConfig(*gpt2);

  proto.mutable_decoder()->set_layout(v1::DECODER_LAYOUT_LLAMA);
  proto.mutable_decoder()->set_kv_heads(2);
  absl::StatusOr<ModelConfig> gqa = ConfigFromProto(proto);
  ASSERT_TRUE(gqa.ok()) << gqa.status();
  EXPECT_EQ(gqa->backbone.decoder.kv_heads, 2);
}

TEST(ApiConfigTest, RiskProfileRoundTrips) {
  ModelConfig c;
  c.shards = 6;
  c.placement.risk.slices = 1;
  c.placement.risk.threshold = 0.8;
  c.placement.risk.deletion_share = 0.6;
  c.placement.risk.shards = 2;
  const v1::ModelConfig proto = ConfigToProto(c);
  EXPECT_EQ(proto.placement().risk_shards(), 2);
  absl::StatusOr<ModelConfig> back = ConfigFromProto(proto);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(ConfigToText(*back), ConfigToText(c));
  // Unset: every shard, as models created before the field.
  v1::ModelConfig unset = proto;
  unset.mutable_placement()->clear_risk_shards();
  back = ConfigFromProto(unset);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->placement.risk.shards, 0);
}

TEST(ApiConfigTest, RefusalsNameTheField) {
  auto message = [](const v1::ModelConfig& proto) {
    absl::StatusOr<ModelConfig> c = ConfigFromProto(proto);
    EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
    return std::string(c.status().message());
  };
  v1::ModelConfig proto = ConfigToProto(LlamaLm());
  proto.mutable_decoder()->set_lora_targets(1, "c_attn");
  EXPECT_EQ(message(proto),
            "config.decoder.lora_targets[1]: unknown LoRA target 'c_attn'; "
            "expected q, k, v, o, gate, up or down");
  proto = ConfigToProto(LlamaLm());
  proto.mutable_decoder()->set_layout(static_cast<v1::DecoderLayout>(9));
  EXPECT_EQ(message(proto), "config.decoder.layout: unknown value 9");
  proto = ConfigToProto(LlamaLm());
  proto.mutable_decoder()->set_objective(static_cast<v1::DecoderObjective>(7));
  EXPECT_EQ(message(proto), "config.decoder.objective: unknown value 7");
  // A decoder message on another backbone would be dropped silently.
  proto = ConfigToProto(ModelConfig());
  proto.mutable_decoder()->set_layers(2);
  EXPECT_EQ(message(proto),
            "config.decoder: set only for backbone BACKBONE_KIND_DECODER, "
            "not BACKBONE_KIND_MLP");
  proto.clear_backbone();
  EXPECT_THAT(message(proto), HasSubstr("BACKBONE_KIND_UNSPECIFIED"));
  // Ranges are ValidateConfig's, which names the field.
  proto = ConfigToProto(LlamaLm());
  proto.mutable_decoder()->set_vocab_size(1);
  absl::StatusOr<ModelConfig> tiny_vocab = ConfigFromProto(proto);
  ASSERT_TRUE(tiny_vocab.ok());
  EXPECT_THAT(std::string(ValidateConfig(*tiny_vocab).message()),
              HasSubstr("vocab_size must be 2..1048576"));
}

}  // namespace
}  // namespace oubli::coordinator
