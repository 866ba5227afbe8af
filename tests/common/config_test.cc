#include "common/config.h"

#include <gtest/gtest.h>

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
  auto parsed = ParseConfig(ConfigToText(c));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(ConfigToText(*parsed), ConfigToText(c));
  EXPECT_EQ(parsed->backbone.lora.alpha, c.backbone.lora.alpha);
  EXPECT_EQ(parsed->retrain.window, absl::Milliseconds(1500));
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
}

TEST(ConfigTest, FingerprintIgnoresWeightNeutralSettings) {
  ModelConfig a, b;
  b.model_id = "other";
  b.retrain.mode = RetrainMode::kBatched;
  EXPECT_EQ(ConfigFingerprint(a), ConfigFingerprint(b));
  b.determinism.blas_threads = 2;  // changes the bits, so the fingerprint
  EXPECT_NE(ConfigFingerprint(a), ConfigFingerprint(b));
}

}  // namespace
}  // namespace oubli
