// Language models through the public gRPC API: decoder configs, token
// samples, token rows for Predict, Score and Generate, against an
// in-process oubli-coordinator: the refusals the adapter owns, on any
// model, and a causal LM and a classifying decoder end to end.
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "oubli/v1/oubli.grpc.pb.h"
#include "tests/testing/in_process_coordinator.h"
#include "tests/testing/service_client.h"

namespace oubli::coordinator {
namespace {

namespace v1 = ::oubli::v1;
using ::testing::AllOf;
using ::testing::Each;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::Le;
using ::testing::SizeIs;
using testing_util::kTinyWidth;
using testing_util::TinyConfig;
using testing_util::TinySamples;

// Appends `ids` (this protobuf's RepeatedField has no initializer-list Add).
void AddIds(google::protobuf::RepeatedField<uint32_t>* field,
            std::initializer_list<uint32_t> ids) {
  field->Add(ids.begin(), ids.end());
}

constexpr uint32_t kTooLarge = uint32_t{1} << 31;
constexpr int kVocab = testing_util::kTinyVocab;
constexpr int kContext = testing_util::kTinyContext;

using testing_util::CountingSamples;
using testing_util::TinyDecoderConfig;

class LanguageModelApiTest : public testing_util::InProcessCoordinatorTest {
 protected:
  grpc::Status Score(const std::string& model_id,
                     const std::vector<std::vector<uint32_t>>& sequences,
                     v1::ScoreResponse* response) {
    v1::ScoreRequest request;
    request.set_model_id(model_id);
    for (const auto& sequence : sequences) {
      request.add_sequences()->mutable_tokens()->Add(sequence.begin(),
                                                     sequence.end());
    }
    return Call(&v1::Oubli::Stub::Score, request, response);
  }

  grpc::Status Generate(const v1::GenerateRequest& request,
                        v1::GenerateResponse* response) {
    return Call(&v1::Oubli::Stub::Generate, request, response);
  }

  static v1::GenerateRequest GenerateRequest(const std::string& model_id) {
    v1::GenerateRequest request;
    request.set_model_id(model_id);
    AddIds(request.mutable_prompt(), {3, 4});
    request.set_max_tokens(4);
    return request;
  }

  grpc::Status PredictTokens(const std::string& model_id, int rows,
                             const std::vector<std::vector<uint32_t>>& seqs,
                             v1::PredictResponse* response) {
    v1::PredictRequest request;
    request.set_model_id(model_id);
    request.set_rows(rows);
    for (const auto& sequence : seqs) {
      request.add_sequences()->mutable_tokens()->Add(sequence.begin(),
                                                     sequence.end());
    }
    return Call(&v1::Oubli::Stub::Predict, request, response);
  }
};

TEST_F(LanguageModelApiTest, DecoderConfigRefusalsNameTheField) {
  v1::Model model;
  v1::ModelConfig bad = TinyDecoderConfig(v1::DECODER_OBJECTIVE_CAUSAL_LM);
  bad.mutable_decoder()->set_heads(3);
  bad.mutable_decoder()->set_kv_heads(3);
  grpc::Status status = Create("lm", bad, &model);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(),
              HasSubstr("dim (16) must be a multiple of heads (3)"));

  bad = TinyDecoderConfig(v1::DECODER_OBJECTIVE_CAUSAL_LM);
  bad.mutable_decoder()->set_context_length(65537);
  status = Create("lm", bad, &model);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("context_length must be 2.."));

  bad = TinyDecoderConfig(v1::DECODER_OBJECTIVE_CAUSAL_LM);
  bad.mutable_decoder()->add_lora_targets("c_attn");
  status = Create("lm", bad, &model);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(),
            "config.decoder.lora_targets[2]: unknown LoRA target 'c_attn'; "
            "expected q, k, v, o, gate, up or down");

  v1::ModelConfig mlp = TinyConfig();
  mlp.mutable_decoder()->set_layers(2);
  status = Create("lm", mlp, &model);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(),
              HasSubstr("config.decoder: set only for backbone "
                        "BACKBONE_KIND_DECODER"));
  // None of them left a model behind.
  v1::ListModelsResponse models;
  ASSERT_TRUE(
      Call(&v1::Oubli::Stub::ListModels, v1::ListModelsRequest(), &models)
          .ok());
  EXPECT_EQ(models.models_size(), 0);
}

TEST_F(LanguageModelApiTest, MalformedTokenSamplesAreRejectedOneByOne) {
  v1::Model model;
  ASSERT_TRUE(Create("tiny", TinyConfig(), &model).ok());
  std::vector<v1::Sample> samples = TinySamples(1);  // fits: accepted
  v1::Sample both = CountingSamples(1)[0];
  both.set_id("both");
  both.set_features(std::string(kTinyWidth, '\x01'));
  samples.push_back(both);
  v1::Sample negative = CountingSamples(1)[0];
  negative.set_id("negative");
  negative.set_prompt_tokens(-1);
  samples.push_back(negative);
  v1::Sample whole_prompt = CountingSamples(1)[0];
  whole_prompt.set_id("whole-prompt");
  whole_prompt.set_prompt_tokens(6);
  samples.push_back(whole_prompt);
  v1::Sample huge = CountingSamples(1)[0];
  huge.set_id("huge");
  huge.set_tokens(3, kTooLarge);
  samples.push_back(huge);
  // Well formed, so it reaches the engine, which says whether the model
  // takes tokens (this image model does not).
  v1::Sample tokens = CountingSamples(1)[0];
  tokens.set_id("tokens");
  samples.push_back(tokens);

  v1::IngestSamplesResponse response;
  ASSERT_TRUE(Ingest("tiny", {samples}, &response).ok());
  EXPECT_EQ(response.accepted(), 1);
  std::map<std::string, std::string> reasons;
  for (const v1::Rejected& r : response.rejected()) {
    reasons[r.sample_id()] = r.reason();
  }
  EXPECT_THAT(reasons["both"], HasSubstr("has both features and tokens"));
  EXPECT_THAT(reasons["negative"], HasSubstr("prompt_tokens: -1 is outside"));
  EXPECT_THAT(reasons["whole-prompt"],
              HasSubstr("prompt_tokens: 6 is outside [0, 6)"));
  EXPECT_EQ(reasons["huge"], "tokens[3]: token id 2147483648 is 2^31 or more");
  EXPECT_THAT(reasons["tokens"], HasSubstr("token"));
  EXPECT_EQ(response.rejected_size(), 5);
}

TEST_F(LanguageModelApiTest, ImageModelsRefuseTokenRowsScoreAndGenerate) {
  v1::Model model;
  ASSERT_TRUE(Create("tiny", TinyConfig(), &model).ok());
  v1::PredictResponse prediction;
  grpc::Status status = PredictTokens("tiny", 0, {{1, 2}}, &prediction);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(),
            "sequences: model 'tiny' is an MLP image model, which takes "
            "features, not token rows");
  // Both kinds of rows, or a row count that is not theirs: refused before
  // the model is looked up.
  v1::PredictRequest both;
  both.set_model_id("ghost");
  both.add_sequences()->add_tokens(1);
  both.add_features(0.5f);
  status = Call(&v1::Oubli::Stub::Predict, both, &prediction);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("not both"));
  status = PredictTokens("ghost", 2, {{1, 2}}, &prediction);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("rows is 2 but sequences"));
  EXPECT_EQ(PredictTokens("ghost", 1, {{1, 2}}, &prediction).error_code(),
            grpc::StatusCode::NOT_FOUND);

  v1::ScoreResponse scored;
  status = Score("tiny", {{1, 2}}, &scored);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(),
              HasSubstr("scoring needs a causal language model; model 'tiny' "
                        "is an image classifier"));
  v1::GenerateResponse generated;
  status = Generate(GenerateRequest("tiny"), &generated);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(),
              HasSubstr("generating needs a causal language model"));
  EXPECT_EQ(Score("ghost", {{1, 2}}, &scored).error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Generate(GenerateRequest("ghost"), &generated).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(LanguageModelApiTest, ScoreAndGenerateRequestsKeepTheirLimits) {
  // Checked before the model is looked up: "ghost" does not exist.
  v1::ScoreResponse scored;
  auto score_refusal = [&](const std::vector<std::vector<uint32_t>>& seqs) {
    grpc::Status status = Score("ghost", seqs, &scored);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    return status.error_message();
  };
  EXPECT_THAT(score_refusal({}), HasSubstr("sequences is empty"));
  EXPECT_THAT(score_refusal({{1, 2}, {5}}),
              HasSubstr("sequences[1]: 1 tokens; at least 2 are needed"));
  EXPECT_THAT(score_refusal({{1, kTooLarge}}),
              HasSubstr("sequences[0].tokens[1]: token id 2147483648"));
  EXPECT_THAT(score_refusal(std::vector<std::vector<uint32_t>>(257, {1, 2})),
              HasSubstr("the limit is 256"));

  v1::GenerateResponse generated;
  auto generate_refusal = [&](auto mutate) {
    v1::GenerateRequest request = GenerateRequest("ghost");
    mutate(request);
    grpc::Status status = Generate(request, &generated);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    return status.error_message();
  };
  EXPECT_THAT(
      generate_refusal([](v1::GenerateRequest& r) { r.clear_prompt(); }),
      HasSubstr("prompt is empty"));
  EXPECT_THAT(
      generate_refusal([](v1::GenerateRequest& r) { r.set_max_tokens(0); }),
      HasSubstr("max_tokens: must be 1..1024, got 0"));
  EXPECT_THAT(
      generate_refusal([](v1::GenerateRequest& r) { r.set_max_tokens(1025); }),
      HasSubstr("max_tokens: must be 1..1024"));
  EXPECT_THAT(
      generate_refusal([](v1::GenerateRequest& r) { r.set_temperature(-1); }),
      HasSubstr("temperature"));
  EXPECT_THAT(generate_refusal([](v1::GenerateRequest& r) {
                r.set_temperature(std::nan(""));
              }),
              HasSubstr("temperature"));
  EXPECT_THAT(
      generate_refusal([](v1::GenerateRequest& r) { r.add_prompt(kTooLarge); }),
      HasSubstr("prompt[2]: token id 2147483648 is 2^31 or more"));
  EXPECT_THAT(generate_refusal(
                  [](v1::GenerateRequest& r) { r.add_stop_tokens(kTooLarge); }),
              HasSubstr("stop_tokens[0]"));
}

TEST_F(LanguageModelApiTest, AModelBeingDeletedNoLongerScores) {
  v1::Model model;
  ASSERT_TRUE(Create("tiny", TinyConfig(), &model).ok());
  v1::DeleteModelRequest request;
  request.set_model_id("tiny");
  v1::ModelDeletion deletion;
  ASSERT_TRUE(Call(&v1::Oubli::Stub::DeleteModel, request, &deletion).ok());
  v1::ScoreResponse scored;
  const grpc::StatusCode score = Score("tiny", {{1, 2}}, &scored).error_code();
  EXPECT_TRUE(score == grpc::StatusCode::FAILED_PRECONDITION ||
              score == grpc::StatusCode::NOT_FOUND)
      << score;
  v1::GenerateResponse generated;
  const grpc::StatusCode generate =
      Generate(GenerateRequest("tiny"), &generated).error_code();
  EXPECT_TRUE(generate == grpc::StatusCode::FAILED_PRECONDITION ||
              generate == grpc::StatusCode::NOT_FOUND)
      << generate;
}

// --- End to end -------------------------------------------------------------

TEST_F(LanguageModelApiTest, CausalModelTrainsScoresAndGenerates) {
  v1::Model model;
  ASSERT_TRUE(
      Create("lm", TinyDecoderConfig(v1::DECODER_OBJECTIVE_CAUSAL_LM), &model).ok());
  EXPECT_EQ(model.config().backbone(), v1::BACKBONE_KIND_DECODER);
  EXPECT_EQ(model.config().decoder().vocab_size(), kVocab);
  EXPECT_THAT(model.config().decoder().lora_targets(), ElementsAre("q", "v"));

  v1::IngestSamplesResponse ingested;
  ASSERT_TRUE(Ingest("lm", {CountingSamples(40)}, &ingested).ok());
  EXPECT_EQ(ingested.accepted(), 40) << ingested.DebugString();
  // The engine owns the model's limits: past the vocabulary or context.
  std::vector<v1::Sample> misfits = CountingSamples(2);
  misfits[0].set_id("out-of-vocabulary");
  misfits[0].set_tokens(2, kVocab);
  misfits[1].set_id("too-long");
  for (int i = 0; i < kContext; ++i) misfits[1].add_tokens(1);
  ASSERT_TRUE(Ingest("lm", {misfits}, &ingested).ok());
  EXPECT_EQ(ingested.rejected_size(), 2) << ingested.DebugString();

  const v1::Job job = TrainAndWait("lm");
  ASSERT_EQ(job.state(), v1::Job::SUCCEEDED) << job.error();
  ASSERT_TRUE(GetModel("lm", &model).ok());

  v1::ScoreResponse scored;
  ASSERT_TRUE(Score("lm", {{3, 4, 5, 6}, {7, 8}}, &scored).ok());
  ASSERT_EQ(scored.sequences_size(), 2);
  EXPECT_THAT(scored.sequences(0).token_log_probs(),
              AllOf(SizeIs(3), Each(Le(0.0f))));
  EXPECT_THAT(scored.sequences(1).token_log_probs(), SizeIs(1));
  double total = 0;
  for (float p : scored.sequences(0).token_log_probs()) total += p;
  EXPECT_NEAR(scored.sequences(0).total_log_prob(), total, 1e-4);
  EXPECT_EQ(scored.fingerprint(), model.fingerprint());
  EXPECT_THAT(scored.served(), SizeIs(2));
  EXPECT_FALSE(scored.from_base());
  // Past the vocabulary: the engine's refusal.
  EXPECT_EQ(Score("lm", {{1, kVocab}}, &scored).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);

  v1::GenerateRequest request = GenerateRequest("lm");
  v1::GenerateResponse greedy;
  ASSERT_TRUE(Generate(request, &greedy).ok());
  EXPECT_THAT(greedy.tokens(), SizeIs(4));
  EXPECT_THAT(greedy.tokens(), Each(::testing::Lt(uint32_t{kVocab})));
  EXPECT_THAT(greedy.token_log_probs(), AllOf(SizeIs(4), Each(Le(0.0f))));
  EXPECT_EQ(greedy.finish_reason(),
            v1::GenerateResponse::FINISH_REASON_MAX_TOKENS);
  EXPECT_EQ(greedy.fingerprint(), model.fingerprint());
  EXPECT_THAT(greedy.served(), SizeIs(2));
  // Greedy is a function of the served model; so is sampling with a seed.
  v1::GenerateResponse again;
  ASSERT_TRUE(Generate(request, &again).ok());
  EXPECT_THAT(again.tokens(), ElementsAreArray(greedy.tokens()));
  v1::GenerateRequest sampled = request;
  sampled.set_temperature(1.0);
  sampled.set_seed(7);
  v1::GenerateResponse first;
  ASSERT_TRUE(Generate(sampled, &first).ok());
  ASSERT_TRUE(Generate(sampled, &again).ok());
  EXPECT_THAT(again.tokens(), ElementsAreArray(first.tokens()));
  // A stop token ends generation once generated.
  v1::GenerateRequest stopped = request;
  stopped.add_stop_tokens(greedy.tokens(0));
  ASSERT_TRUE(Generate(stopped, &again).ok());
  EXPECT_THAT(again.tokens(), ElementsAre(greedy.tokens(0)));
  EXPECT_EQ(again.finish_reason(),
            v1::GenerateResponse::FINISH_REASON_STOP_TOKEN);
  // Before max_tokens, the context stops it: 2 prompt tokens + 10 fill it.
  request.set_max_tokens(kContext);
  ASSERT_TRUE(Generate(request, &again).ok());
  EXPECT_EQ(again.finish_reason(), v1::GenerateResponse::FINISH_REASON_CONTEXT);
  EXPECT_THAT(again.tokens(), SizeIs(kContext - 2));

  // A causal language model answers no Predict.
  v1::PredictResponse prediction;
  grpc::Status status = PredictTokens("lm", 0, {{1, 2}}, &prediction);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("use Score or Generate"));
}

TEST_F(LanguageModelApiTest, ClassifyingDecoderPredictsTokenRows) {
  v1::Model model;
  ASSERT_TRUE(
      Create("cls", TinyDecoderConfig(v1::DECODER_OBJECTIVE_CLASSIFY), &model).ok());
  v1::IngestSamplesResponse ingested;
  ASSERT_TRUE(Ingest("cls", {CountingSamples(40)}, &ingested).ok());
  EXPECT_EQ(ingested.accepted(), 40) << ingested.DebugString();
  const v1::Job job = TrainAndWait("cls");
  ASSERT_EQ(job.state(), v1::Job::SUCCEEDED) << job.error();

  v1::PredictResponse prediction;
  ASSERT_TRUE(
      PredictTokens("cls", 0, {{2, 3, 4}, {5, 6}, {7}}, &prediction).ok());
  EXPECT_EQ(prediction.rows(), 3);
  EXPECT_EQ(prediction.classes(), 2);
  EXPECT_THAT(prediction.probabilities(), SizeIs(6));
  EXPECT_THAT(prediction.predicted_classes(), SizeIs(3));
  EXPECT_THAT(prediction.served(), SizeIs(2));
  ASSERT_TRUE(GetModel("cls", &model).ok());
  EXPECT_EQ(prediction.fingerprint(), model.fingerprint());

  grpc::Status status = Predict("cls", 1, std::vector<float>(4), &prediction);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("classifying decoder"));
  v1::ScoreResponse scored;
  status = Score("cls", {{1, 2}}, &scored);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(),
              HasSubstr("is a classifying decoder (Predict with token rows)"));
}

}  // namespace
}  // namespace oubli::coordinator
