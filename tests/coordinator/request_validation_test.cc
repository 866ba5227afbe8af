// The public API's wire checks for language models
// (coordinator/request_validation.h), apart from a server: token samples,
// token rows for Predict, Score's sequences and Generate's options, and
// which models take which rows. Each refusal names the field.
#include "coordinator/request_validation.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/types.h"
#include "oubli/v1/oubli.pb.h"

namespace oubli::coordinator {
namespace {

namespace v1 = ::oubli::v1;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

// Appends `ids` (this protobuf's RepeatedField has no initializer-list Add).
void AddIds(google::protobuf::RepeatedField<uint32_t>* field,
            std::initializer_list<uint32_t> ids) {
  field->Add(ids.begin(), ids.end());
}

constexpr uint32_t kTooLarge = uint32_t{1} << 31;

std::string Message(const absl::Status& status) {
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  return std::string(status.message());
}

v1::Sample TokenSample(const std::string& id, std::vector<uint32_t> tokens,
                       int prompt_tokens = 0) {
  v1::Sample sample;
  sample.set_id(id);
  sample.set_owner("alice");
  sample.mutable_tokens()->Add(tokens.begin(), tokens.end());
  sample.set_prompt_tokens(prompt_tokens);
  return sample;
}

ModelConfig Decoder(DecoderObjective objective) {
  ModelConfig c;
  c.model_id = "lm";
  c.backbone.kind = BackboneKind::kDecoder;
  c.backbone.decoder.objective = objective;
  return c;
}

TEST(IngestTokensTest, TokenSamplesAreEncodedAndMalformedOnesRejected) {
  v1::IngestSamplesRequest request;
  request.set_model_id("lm");
  *request.add_samples() = TokenSample("narrow", {5, 1, 65535}, 2);
  *request.add_samples() = TokenSample("wide", {70000, 3});
  v1::Sample both = TokenSample("both", {1, 2});
  both.set_features("\x01\x02");
  *request.add_samples() = both;
  *request.add_samples() = TokenSample("negative", {1, 2}, -1);
  *request.add_samples() = TokenSample("all-prompt", {1, 2}, 2);
  *request.add_samples() = TokenSample("huge-id", {1, kTooLarge, 3});
  v1::Sample prompt_only;
  prompt_only.set_id("prompt-only");
  prompt_only.set_features("\x01");
  prompt_only.set_prompt_tokens(1);
  *request.add_samples() = prompt_only;
  absl::StatusOr<IngestBatch> batch = TakeIngestSamples(1, &request);
  ASSERT_TRUE(batch.ok()) << batch.status();

  ASSERT_EQ(batch->samples.size(), 2u);
  const Sample& narrow = batch->samples[0];
  EXPECT_EQ(narrow.id, "narrow");
  EXPECT_EQ(narrow.feature_type, FeatureType::kTokensU16);
  EXPECT_EQ(narrow.prompt_tokens, 2);
  EXPECT_THAT(DecodeTokens(narrow.feature_type, narrow.features),
              ElementsAre(5, 1, 65535));
  EXPECT_TRUE(ValidateSample(narrow).ok()) << ValidateSample(narrow);
  const Sample& wide = batch->samples[1];
  EXPECT_EQ(wide.feature_type, FeatureType::kTokensU32);
  EXPECT_EQ(wide.prompt_tokens, 0);
  EXPECT_THAT(DecodeTokens(wide.feature_type, wide.features),
              ElementsAre(70000, 3));

  EXPECT_THAT(
      batch->rejected,
      ElementsAre(
          Pair("both", HasSubstr("has both features and tokens")),
          Pair("negative",
               "prompt_tokens: -1 is outside [0, 2) for 2 tokens (the prompt "
               "must leave a token to learn)"),
          Pair("all-prompt", HasSubstr("prompt_tokens: 2 is outside [0, 2)")),
          Pair("huge-id", "tokens[1]: token id 2147483648 is 2^31 or more"),
          Pair("prompt-only", "prompt_tokens: 1 without tokens")));
  // The request's ids are wiped once encoded.
  EXPECT_THAT(request.samples(0).tokens(), ElementsAre(0, 0, 0));
}

TEST(PredictTokensTest, RowsAreSequencesOrFeaturesNeverBoth) {
  v1::PredictRequest request;
  request.set_model_id("lm");
  AddIds(request.add_sequences()->mutable_tokens(), {1, 2, 3});
  AddIds(request.add_sequences()->mutable_tokens(), {4});
  EXPECT_TRUE(CheckPredictRequest(request).ok());  // rows 0: the count
  request.set_rows(2);
  EXPECT_TRUE(CheckPredictRequest(request).ok());
  absl::StatusOr<std::vector<std::vector<int32_t>>> rows =
      PredictTokenRows(request);
  ASSERT_TRUE(rows.ok()) << rows.status();
  EXPECT_THAT(*rows, ElementsAre(ElementsAre(1, 2, 3), ElementsAre(4)));

  request.set_rows(3);
  EXPECT_EQ(Message(CheckPredictRequest(request)),
            "rows is 3 but sequences has 2 rows (rows may be 0: the count)");
  request.set_rows(0);
  request.add_features(0.5f);
  EXPECT_THAT(Message(CheckPredictRequest(request)), HasSubstr("not both"));
  request.clear_features();
  request.set_features_f32le(std::string(4, '\0'));
  EXPECT_THAT(Message(CheckPredictRequest(request)), HasSubstr("not both"));
  request.clear_features_f32le();

  request.add_sequences();  // empty
  EXPECT_EQ(Message(PredictTokenRows(request).status()),
            "sequences[2]: 0 tokens; at least 1 is needed");
  request.mutable_sequences(2)->add_tokens(kTooLarge);
  EXPECT_EQ(Message(PredictTokenRows(request).status()),
            "sequences[2].tokens[0]: token id 2147483648 is 2^31 or more");

  v1::PredictRequest many;
  many.set_model_id("lm");
  for (int i = 0; i <= kMaxPredictRows; ++i) {
    many.add_sequences()->add_tokens(1);
  }
  EXPECT_THAT(Message(CheckPredictRequest(many)), HasSubstr("4096"));
}

TEST(PredictTokensTest, EachModelTakesItsKindOfRows) {
  v1::PredictRequest tokens;
  tokens.set_model_id("m");
  tokens.add_sequences()->add_tokens(1);
  v1::PredictRequest features;
  features.set_model_id("m");
  features.set_rows(1);
  features.add_features(0.5f);

  const ModelConfig classifier = Decoder(DecoderObjective::kClassify);
  EXPECT_TRUE(CheckPredictFitsModel(tokens, classifier).ok());
  EXPECT_EQ(Message(CheckPredictFitsModel(features, classifier)),
            "model 'm' is a classifying decoder: give token rows in "
            "sequences, not features");

  const ModelConfig lm = Decoder(DecoderObjective::kCausalLm);
  for (const v1::PredictRequest* request : {&tokens, &features}) {
    EXPECT_EQ(Message(CheckPredictFitsModel(*request, lm)),
              "model 'm' is a causal language model, which Predict does not "
              "serve: use Score or Generate");
  }

  ModelConfig vit;
  vit.backbone.kind = BackboneKind::kVit;
  EXPECT_TRUE(CheckPredictFitsModel(features, vit).ok());
  EXPECT_EQ(Message(CheckPredictFitsModel(tokens, vit)),
            "sequences: model 'm' is a ViT image model, which takes "
            "features, not token rows");
  EXPECT_THAT(Message(CheckPredictFitsModel(tokens, ModelConfig())),
              HasSubstr("an MLP image model"));
}

TEST(ScoreTest, SequencesAreCheckedBeforeTheModel) {
  v1::ScoreRequest request;
  request.set_model_id("lm");
  EXPECT_THAT(Message(ScoreSequences(request).status()),
              HasSubstr("sequences is empty"));
  AddIds(request.add_sequences()->mutable_tokens(), {7, 8, 9});
  AddIds(request.add_sequences()->mutable_tokens(), {kTooLarge - 1, 0});
  absl::StatusOr<std::vector<std::vector<int32_t>>> rows =
      ScoreSequences(request);
  ASSERT_TRUE(rows.ok()) << rows.status();
  EXPECT_THAT(*rows,
              ElementsAre(ElementsAre(7, 8, 9), ElementsAre(2147483647, 0)));

  request.add_sequences()->add_tokens(1);
  EXPECT_EQ(Message(ScoreSequences(request).status()),
            "sequences[2]: 1 tokens; at least 2 are needed");
  request.mutable_sequences(2)->add_tokens(kTooLarge);
  EXPECT_EQ(Message(ScoreSequences(request).status()),
            "sequences[2].tokens[1]: token id 2147483648 is 2^31 or more");
  request.mutable_sequences(2)->set_tokens(1, 2);
  EXPECT_TRUE(ScoreSequences(request).ok());

  for (int i = 3; i <= kMaxScoredSequences; ++i) {
    AddIds(request.add_sequences()->mutable_tokens(), {1, 2});
  }
  EXPECT_EQ(Message(ScoreSequences(request).status()),
            "sequences has 257 sequences; the limit is 256 per request");
  request.clear_model_id();
  EXPECT_THAT(Message(ScoreSequences(request).status()), HasSubstr("model_id"));
}

TEST(GenerateTest, OptionsKeepTheirBounds) {
  v1::GenerateRequest request;
  request.set_model_id("lm");
  AddIds(request.mutable_prompt(), {3, 4});
  request.set_max_tokens(1024);
  request.set_temperature(0.7);
  request.set_seed(99);
  AddIds(request.mutable_stop_tokens(), {2, 0});
  absl::StatusOr<GenerateOptions> options = GenerateOptionsFrom(request);
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_THAT(options->prompt, ElementsAre(3, 4));
  EXPECT_EQ(options->max_tokens, 1024);
  EXPECT_EQ(options->temperature, 0.7);
  EXPECT_EQ(options->seed, 99u);
  EXPECT_THAT(options->stop_tokens, ElementsAre(2, 0));

  auto refusal = [&](auto mutate) {
    v1::GenerateRequest bad = request;
    mutate(bad);
    return Message(GenerateOptionsFrom(bad).status());
  };
  EXPECT_THAT(refusal([](v1::GenerateRequest& r) { r.clear_prompt(); }),
              HasSubstr("prompt is empty"));
  EXPECT_EQ(refusal([](v1::GenerateRequest& r) { r.set_prompt(1, kTooLarge); }),
            "prompt[1]: token id 2147483648 is 2^31 or more");
  EXPECT_EQ(refusal([](v1::GenerateRequest& r) { r.set_max_tokens(0); }),
            "max_tokens: must be 1..1024, got 0");
  EXPECT_EQ(refusal([](v1::GenerateRequest& r) { r.set_max_tokens(1025); }),
            "max_tokens: must be 1..1024, got 1025");
  for (double t :
       {-0.5, std::nan(""), std::numeric_limits<double>::infinity()}) {
    EXPECT_THAT(refusal([t](v1::GenerateRequest& r) { r.set_temperature(t); }),
                HasSubstr("temperature: must be finite and >= 0"));
  }
  EXPECT_EQ(
      refusal([](v1::GenerateRequest& r) { r.add_stop_tokens(kTooLarge); }),
      "stop_tokens[2]: token id 2147483648 is 2^31 or more");
  request.set_temperature(0);  // greedy
  EXPECT_TRUE(GenerateOptionsFrom(request).ok());
}

}  // namespace
}  // namespace oubli::coordinator
