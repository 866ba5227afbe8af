// oublictl's token input (tools/oublictl/token_input.h): id lists, files of
// them, and JSON lines tokenized with a SentencePiece model trained for the
// test on a generated corpus. Samples carry exactly the tokenizer's ids,
// with its beginning- and end-of-sequence ids where the rule puts them (and
// none where it has none), and every malformed line is named with its number.
#include "tools/oublictl/token_input.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "tests/testing/test_util.h"
#include "tools/tokenizer/sentencepiece_tokenizer.h"

namespace oubli::oublictl {
namespace {

namespace v1 = ::oubli::v1;
using ::oubli::tokenizer::SentencePieceTokenizer;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

std::string Message(const absl::Status& status) {
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  return std::string(status.message());
}

TEST(TokenListTest, IdsAreCommaOrBlankSeparated) {
  EXPECT_THAT(ParseTokenList("1,2, 3 4").value(), ElementsAre(1, 2, 3, 4));
  EXPECT_THAT(ParseTokenList("2147483647").value(), ElementsAre(2147483647u));
  EXPECT_EQ(Message(ParseTokenList("1,x,3").status()),
            "'x' is not a token id (0..2147483647)");
  EXPECT_EQ(Message(ParseTokenList("2147483648").status()),
            "'2147483648' is not a token id (0..2147483647)");
  EXPECT_EQ(Message(ParseTokenList("-1").status()),
            "'-1' is not a token id (0..2147483647)");
  EXPECT_THAT(Message(ParseTokenList(" , ").status()),
              HasSubstr("no token ids"));

  auto lines = ParseTokenLines("# scored\n1,2,3\n\n  4 5\n");
  ASSERT_TRUE(lines.ok()) << lines.status();
  EXPECT_THAT(*lines, ElementsAre(ElementsAre(1, 2, 3), ElementsAre(4, 5)));
  EXPECT_EQ(Message(ParseTokenLines("1,2\n3,y\n").status()),
            "line 2: 'y' is not a token id (0..2147483647)");
}

TEST(TokenModelTest, OnlyDecodersTakeTokens) {
  v1::Model model;
  model.set_model_id("fm");
  model.mutable_config()->set_backbone(v1::BACKBONE_KIND_MLP);
  absl::StatusOr<TokenModel> refused = TokenModelOf(model);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.status().message(),
              HasSubstr("model 'fm' is not a decoder (backbone "
                        "BACKBONE_KIND_MLP)"));
  model.mutable_config()->set_backbone(v1::BACKBONE_KIND_DECODER);
  model.mutable_config()->set_num_classes(3);
  v1::DecoderConfig* decoder = model.mutable_config()->mutable_decoder();
  decoder->set_vocab_size(500);
  decoder->set_context_length(64);
  decoder->set_objective(v1::DECODER_OBJECTIVE_CLASSIFY);
  absl::StatusOr<TokenModel> taken = TokenModelOf(model);
  ASSERT_TRUE(taken.ok()) << taken.status();
  EXPECT_EQ(taken->vocab_size, 500);
  EXPECT_EQ(taken->context_length, 64);
  EXPECT_TRUE(taken->classify);
  EXPECT_EQ(taken->num_classes, 3);
}

class JsonlTest : public ::testing::Test {
 protected:
  // One tokenizer for the suite, trained by tests/testing/train_tokenizer (a
  // process of its own: see its header comment).
  static void SetUpTestSuite() {
    dir_ = new testing_util::ScopedTempDir();
    const std::string command =
        absl::StrCat(OUBLI_TRAIN_TOKENIZER, " ", dir_->path().string(), " 2>",
                     (dir_->path() / "train.log").string());
    ASSERT_EQ(std::system(command.c_str()), 0)
        << testing_util::ReadWholeFile(dir_->path() / "train.log");
    absl::StatusOr<std::unique_ptr<SentencePieceTokenizer>> tokenizer =
        SentencePieceTokenizer::Load(
            (dir_->path() / "tokenizer.model").string());
    ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
    tokenizer_ = tokenizer->release();
  }
  static void TearDownTestSuite() {
    delete tokenizer_;
    delete dir_;
  }

  static TokenModel LanguageModel() {
    TokenModel model;
    model.model_id = "lm";
    model.vocab_size = 512;
    model.context_length = 64;
    return model;
  }

  static std::vector<int> Ids(const std::string& text) {
    absl::StatusOr<std::vector<int>> ids = tokenizer_->Encode(text);
    EXPECT_TRUE(ids.ok()) << ids.status();
    return ids.ok() ? *ids : std::vector<int>();
  }

  static testing_util::ScopedTempDir* dir_;
  static SentencePieceTokenizer* tokenizer_;
};

testing_util::ScopedTempDir* JsonlTest::dir_ = nullptr;
SentencePieceTokenizer* JsonlTest::tokenizer_ = nullptr;

TEST_F(JsonlTest, TextAndPromptAnswerBecomeTheTokenizersIds) {
  ASSERT_EQ(tokenizer_->bos_id(), 1);
  ASSERT_EQ(tokenizer_->eos_id(), 2);
  const std::string file =
      R"({"id": "t-1", "owner": "alice", "text": "alice was born in lyon."})"
      "\n\n"
      R"({"id": "q-1", "owner": "alice", "prompt": "where was alice born?",)"
      R"( "answer": "in lyon.", "deletion_risk": 0.25, "label": 4})"
      "\n";
  absl::StatusOr<std::vector<v1::Sample>> samples =
      JsonlTokenSamples("f.jsonl", file, *tokenizer_, LanguageModel());
  ASSERT_TRUE(samples.ok()) << samples.status();
  ASSERT_EQ(samples->size(), 2u);

  const v1::Sample& text = (*samples)[0];
  EXPECT_EQ(text.id(), "t-1");
  EXPECT_EQ(text.owner(), "alice");
  std::vector<int> want = {1};  // beginning of sequence
  for (int id : Ids("alice was born in lyon.")) want.push_back(id);
  want.push_back(2);  // end of sequence
  EXPECT_THAT(text.tokens(), ElementsAreArray(want.begin(), want.end()));
  EXPECT_EQ(text.prompt_tokens(), 0);
  EXPECT_TRUE(text.features().empty());

  const v1::Sample& pair = (*samples)[1];
  std::vector<int> prompt = {1};
  for (int id : Ids("where was alice born?")) prompt.push_back(id);
  want = prompt;
  for (int id : Ids("in lyon.")) want.push_back(id);
  want.push_back(2);
  EXPECT_THAT(pair.tokens(), ElementsAreArray(want.begin(), want.end()));
  EXPECT_EQ(pair.prompt_tokens(), static_cast<int>(prompt.size()));
  EXPECT_FLOAT_EQ(pair.deletion_risk(), 0.25f);
  EXPECT_EQ(pair.label(), 4);  // a language model ignores it

  // Decoding the ids gives the text back (the tokenizer round trip).
  absl::StatusOr<std::string> decoded = tokenizer_->Decode(
      std::vector<int>(text.tokens().begin(), text.tokens().end()));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(*decoded, "alice was born in lyon.");
  EXPECT_THAT(Message(tokenizer_->Decode({tokenizer_->vocab_size()}).status()),
              HasSubstr("outside the tokenizer's vocabulary"));
}

TEST_F(JsonlTest, ATokenizerWithoutBosOrEosAddsNeither) {
  absl::StatusOr<std::string> model = tokenizer::TrainSentencePiece(
      absl::StrSplit(testing_util::ReadWholeFile(dir_->path() / "corpus.txt"),
                     '\n', absl::SkipEmpty()),
      {{"model_type", "unigram"},
       {"vocab_size", "64"},
       {"hard_vocab_limit", "false"},
       {"bos_id", "-1"},
       {"eos_id", "-1"},
       {"num_threads", "1"},
       {"minloglevel", "2"}});
  ASSERT_TRUE(model.ok()) << model.status();
  absl::StatusOr<std::unique_ptr<SentencePieceTokenizer>> bare =
      SentencePieceTokenizer::FromModel(*model);
  ASSERT_TRUE(bare.ok()) << bare.status();
  ASSERT_EQ((*bare)->bos_id(), -1);
  ASSERT_EQ((*bare)->eos_id(), -1);
  const std::string file = absl::StrCat(
      R"({"id": "t", "owner": "o", "text": "bob was born in oslo."})", "\n",
      R"({"id": "q", "owner": "o", "prompt": "where was bob born?",)",
      R"( "answer": "in oslo."})");
  absl::StatusOr<std::vector<v1::Sample>> samples =
      JsonlTokenSamples("f.jsonl", file, **bare, LanguageModel());
  ASSERT_TRUE(samples.ok()) << samples.status();
  ASSERT_EQ(samples->size(), 2u);
  const std::vector<int32_t> text =
      (*bare)->Encode("bob was born in oslo.").value();
  EXPECT_THAT((*samples)[0].tokens(), ElementsAreArray(text));
  std::vector<int32_t> pair = (*bare)->Encode("where was bob born?").value();
  const int prompt_tokens = static_cast<int>(pair.size());
  const std::vector<int32_t> answer = (*bare)->Encode("in oslo.").value();
  pair.insert(pair.end(), answer.begin(), answer.end());
  EXPECT_THAT((*samples)[1].tokens(), ElementsAreArray(pair));
  EXPECT_EQ((*samples)[1].prompt_tokens(), prompt_tokens);
}

TEST_F(JsonlTest, EveryBadLineIsNamedAndNothingIsReturned) {
  // Line numbers from 1.
  const std::vector<std::string> lines = {
      R"({"id": "ok", "owner": "alice", "text": "bob was born in oslo."})",
      R"({"id": "cut", "owner": )",
      R"({"id": "x", "owner": "o", "txt": "typo"})",
      R"({"owner": "o", "text": "no id"})",
      R"({"id": "no-owner", "text": "hiro"})",
      R"({"id": "both", "owner": "o", "text": "a", "prompt": "b"})",
      R"({"id": "half", "owner": "o", "prompt": "where?"})",
      R"({"id": "empty", "owner": "o", "text": ""})",
      R"({"id": "risky", "owner": "o", "text": "a", "deletion_risk": 2})",
      R"({"id": "ok", "owner": "bob", "text": "again"})",
      R"({"id": "neg", "owner": "o", "text": "a", "label": -1})",
      R"({"id": "neither", "owner": "o"})",
      R"({"id": "num", "owner": "o", "text": 7})",
  };
  const std::string file = absl::StrJoin(lines, "\n");
  absl::StatusOr<std::vector<v1::Sample>> samples =
      JsonlTokenSamples("f.jsonl", file, *tokenizer_, LanguageModel());
  const std::string message = Message(samples.status());
  EXPECT_THAT(message, StartsWith("12 bad lines, nothing sent:\n"));
  for (const std::string& line : {
           std::string("f.jsonl:2: not a JSON object of id, owner, text or "
                       "prompt and answer"),
           std::string("f.jsonl:3: not a JSON object"),
           std::string("f.jsonl:4: id: sample id is empty"),
           std::string("f.jsonl:5: owner: owner is empty"),
           std::string("f.jsonl:6: give either text, or prompt and answer"),
           std::string("f.jsonl:7: prompt without answer"),
           std::string("f.jsonl:8: text is empty"),
           std::string("f.jsonl:9: deletion_risk 2 is outside [0, 1]"),
           std::string("f.jsonl:10: id 'ok' is also on line 1"),
           std::string("f.jsonl:11: label -1 is negative"),
       }) {
    EXPECT_THAT(message, HasSubstr(line));
  }
  // Past ten, the rest are counted.
  EXPECT_THAT(message, HasSubstr("... and 2 more bad lines"));
  EXPECT_THAT(message, Not(HasSubstr("f.jsonl:12")));
}

TEST_F(JsonlTest, TheModelsLimitsApply) {
  TokenModel model = LanguageModel();
  model.context_length = 4;
  const std::string long_text =
      R"({"id": "long", "owner": "o", "text": "grace works as a teacher in quito."})";
  EXPECT_THAT(
      Message(
          JsonlTokenSamples("f.jsonl", long_text, *tokenizer_, model).status()),
      HasSubstr("f.jsonl:1: " +
                std::to_string(Ids("grace works as a teacher in "
                                   "quito.")
                                   .size() +
                               2) +
                " tokens, more than the context of model 'lm' (4)"));

  model = LanguageModel();
  model.vocab_size = tokenizer_->vocab_size() - 1;
  EXPECT_THAT(
      Message(
          JsonlTokenSamples("f.jsonl", long_text, *tokenizer_, model).status()),
      HasSubstr("it is not this model's tokenizer"));

  model = LanguageModel();
  model.classify = true;
  model.num_classes = 2;
  const std::string labels = absl::StrCat(
      R"({"id": "a", "owner": "o", "text": "erin", "label": 1})", "\n",
      R"({"id": "b", "owner": "o", "text": "erin"})", "\n",
      R"({"id": "c", "owner": "o", "text": "erin", "label": 2})", "\n");
  const std::string message = Message(
      JsonlTokenSamples("f.jsonl", labels, *tokenizer_, model).status());
  EXPECT_THAT(message,
              HasSubstr("f.jsonl:2: label is required: model 'lm' classifies "
                        "into 2 classes"));
  EXPECT_THAT(message, HasSubstr("f.jsonl:3: label 2 is outside [0, 2)"));

  EXPECT_EQ(Message(JsonlTokenSamples("f.jsonl", "\n  \n", *tokenizer_,
                                      LanguageModel())
                        .status()),
            "f.jsonl: no samples");
}

}  // namespace
}  // namespace oubli::oublictl
