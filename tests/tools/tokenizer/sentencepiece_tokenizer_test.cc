// The SentencePiece wrapper (tools/tokenizer/sentencepiece_tokenizer.h):
// tiny models trained in this process through the module, loaded from bytes
// and from files, and every refusal: a module that cannot be loaded or is
// not ours, a model file that is missing or is not a model, a trainer that
// refuses, an id outside the vocabulary. And the rule of special ids
// (SentencePieceTokenizer::Part) for models with and without BOS and EOS.
#include "tools/tokenizer/sentencepiece_tokenizer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tests/testing/test_util.h"

namespace oubli::tokenizer {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::vector<std::string> Corpus() {
  std::vector<std::string> lines;
  for (const char* name : {"alice", "bob", "carol", "dmitri", "erin"}) {
    for (const char* place : {"lyon", "osaka", "lima", "oslo"}) {
      lines.push_back(std::string(name) + " was born in " + place + ".");
      lines.push_back(std::string("where was ") + name + " born? in " + place +
                      ".");
    }
  }
  return lines;
}

// A unigram model of about 64 pieces; `extra` adds or overrides options.
std::map<std::string, std::string> TinyOptions(
    const std::map<std::string, std::string>& extra = {}) {
  std::map<std::string, std::string> options = {
      {"model_type", "unigram"},     {"vocab_size", "64"},
      {"hard_vocab_limit", "false"}, {"character_coverage", "1.0"},
      {"num_threads", "1"},          {"minloglevel", "2"},
  };
  for (const auto& [name, value] : extra) options[name] = value;
  return options;
}

std::string TinyModel(const std::map<std::string, std::string>& extra = {}) {
  absl::StatusOr<std::string> model =
      TrainSentencePiece(Corpus(), TinyOptions(extra));
  EXPECT_TRUE(model.ok()) << model.status();
  return model.ok() ? *model : "";
}

std::unique_ptr<SentencePieceTokenizer> Tokenizer(const std::string& model) {
  absl::StatusOr<std::unique_ptr<SentencePieceTokenizer>> tokenizer =
      SentencePieceTokenizer::FromModel(model);
  EXPECT_TRUE(tokenizer.ok()) << tokenizer.status();
  return tokenizer.ok() ? *std::move(tokenizer) : nullptr;
}

TEST(SentencePieceTokenizerTest, EncodesAndDecodesWithTheModelItWasGiven) {
  const std::string model = TinyModel();
  std::unique_ptr<SentencePieceTokenizer> tokenizer = Tokenizer(model);
  ASSERT_NE(tokenizer, nullptr);
  EXPECT_EQ(tokenizer->model(), model);
  EXPECT_GT(tokenizer->vocab_size(), 20);
  // SentencePiece's defaults: unk 0, bos 1, eos 2.
  EXPECT_EQ(tokenizer->bos_id(), 1);
  EXPECT_EQ(tokenizer->eos_id(), 2);
  for (const std::string& line : Corpus()) {
    absl::StatusOr<std::vector<int32_t>> ids = tokenizer->Encode(line);
    ASSERT_TRUE(ids.ok()) << ids.status();
    ASSERT_FALSE(ids->empty());
    for (int32_t id : *ids) {
      EXPECT_GT(id, 2) << "no special id inside a text";
      EXPECT_LT(id, tokenizer->vocab_size());
    }
    absl::StatusOr<std::string> text = tokenizer->Decode(*ids);
    ASSERT_TRUE(text.ok()) << text.status();
    EXPECT_EQ(*text, line);
  }
  // Special ids decode to nothing.
  absl::StatusOr<std::vector<int32_t>> ids = tokenizer->Encode("bob");
  ASSERT_TRUE(ids.ok()) << ids.status();
  std::vector<int32_t> framed = {1};
  framed.insert(framed.end(), ids->begin(), ids->end());
  framed.push_back(2);
  EXPECT_EQ(tokenizer->Decode(framed).value_or("?"), "bob");
}

TEST(SentencePieceTokenizerTest, FramesTextPromptAndAnswerByTheRule) {
  using Part = SentencePieceTokenizer::Part;
  // SentencePiece's defaults (bos 1, eos 2), then a model without BOS and
  // one without EOS: what is not defined is not added.
  struct Case {
    std::map<std::string, std::string> options;
    std::vector<int32_t> bos, eos;  // what goes first and last
  };
  for (const Case& c : {Case{{}, {1}, {2}}, Case{{{"bos_id", "-1"}}, {}, {2}},
                        Case{{{"eos_id", "-1"}}, {1}, {}}}) {
    SCOPED_TRACE(c.options.empty() ? "defaults" : c.options.begin()->first);
    std::unique_ptr<SentencePieceTokenizer> tokenizer =
        Tokenizer(TinyModel(c.options));
    ASSERT_NE(tokenizer, nullptr);
    const std::vector<int32_t> ids =
        tokenizer->Encode("erin was born in lima.").value();
    auto framed = [&](const std::vector<int32_t>& first,
                      const std::vector<int32_t>& last) {
      std::vector<int32_t> out = first;
      out.insert(out.end(), ids.begin(), ids.end());
      out.insert(out.end(), last.begin(), last.end());
      return out;
    };
    EXPECT_EQ(tokenizer->Framed(ids, Part::kText), framed(c.bos, c.eos));
    EXPECT_EQ(tokenizer->Framed(ids, Part::kPrompt), framed(c.bos, {}));
    EXPECT_EQ(tokenizer->Framed(ids, Part::kAnswer), framed({}, c.eos));
    EXPECT_EQ(tokenizer->Encode("erin was born in lima.", Part::kText).value(),
              framed(c.bos, c.eos));
  }
}

TEST(SentencePieceTokenizerTest, LoadsAModelFileWithAGivenModule) {
  testing_util::ScopedTempDir dir;
  const std::string model = TinyModel();
  const std::string path = (dir.path() / "tiny.model").string();
  testing_util::WriteWholeFile(path, model);
  absl::StatusOr<std::shared_ptr<const SentencePieceModule>> module =
      LoadSentencePieceModule(OUBLI_SENTENCEPIECE_MODULE);
  ASSERT_TRUE(module.ok()) << module.status();
  absl::StatusOr<std::unique_ptr<SentencePieceTokenizer>> tokenizer =
      SentencePieceTokenizer::Load(path, *module);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  EXPECT_EQ((*tokenizer)->model(), model);
  EXPECT_EQ((*tokenizer)->Encode("alice").value(),
            Tokenizer(model)->Encode("alice").value());
}

TEST(SentencePieceTokenizerTest, AMissingModelFileIsNamed) {
  absl::StatusOr<std::unique_ptr<SentencePieceTokenizer>> tokenizer =
      SentencePieceTokenizer::Load("/nonexistent/tiny.model");
  EXPECT_EQ(tokenizer.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(tokenizer.status().message(),
              HasSubstr("cannot read the SentencePiece model "
                        "/nonexistent/tiny.model: "));
}

TEST(SentencePieceTokenizerTest, ACorruptModelIsRefused) {
  testing_util::ScopedTempDir dir;
  const std::string model = TinyModel();
  for (const std::string& bytes :
       {std::string("alice was born in lyon.\n"),
        model.substr(0, model.size() / 2), std::string()}) {
    const std::string path = (dir.path() / "bad.model").string();
    testing_util::WriteWholeFile(path, bytes);
    absl::StatusOr<std::unique_ptr<SentencePieceTokenizer>> tokenizer =
        SentencePieceTokenizer::Load(path);
    EXPECT_EQ(tokenizer.status().code(), absl::StatusCode::kInvalidArgument)
        << bytes.size() << " bytes: " << tokenizer.status();
    EXPECT_THAT(tokenizer.status().message(),
                HasSubstr("cannot read the SentencePiece model " + path +
                          ": not a SentencePiece model"));
  }
  EXPECT_EQ(SentencePieceTokenizer::FromModel("not a model").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(SentencePieceTokenizerTest, AModuleThatCannotBeLoadedIsNamed) {
  absl::StatusOr<std::shared_ptr<const SentencePieceModule>> module =
      LoadSentencePieceModule("/nonexistent/liboubli_sentencepiece.so");
  EXPECT_EQ(module.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(module.status().message(),
              HasSubstr("cannot load the SentencePiece module "
                        "/nonexistent/liboubli_sentencepiece.so: "));

  // A file that is no shared library at all.
  testing_util::ScopedTempDir dir;
  const std::string text = (dir.path() / "liboubli_sentencepiece.so").string();
  testing_util::WriteWholeFile(text, "not a library");
  module = LoadSentencePieceModule(text);
  EXPECT_EQ(module.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(module.status().message(),
              HasSubstr("cannot load the SentencePiece module " + text));

  // A library that is not this release's module.
  module = LoadSentencePieceModule("libm.so.6");
  EXPECT_EQ(module.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(module.status().message(),
              HasSubstr("libm.so.6: it has no oubli_sentencepiece_api_v1"));
}

TEST(SentencePieceTokenizerTest, TheTrainersRefusalsAreInvalidArgument) {
  absl::StatusOr<std::string> model = TrainSentencePiece({}, TinyOptions());
  EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(model.status().message(), HasSubstr("no sentences"));

  model = TrainSentencePiece(Corpus(), TinyOptions({{"no_such_flag", "1"}}));
  EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(model.status().message(),
              HasSubstr("SentencePiece's trainer refused: "));

  // More pieces than the corpus has, with the limit a hard one.
  model = TrainSentencePiece(
      Corpus(),
      TinyOptions({{"vocab_size", "5000"}, {"hard_vocab_limit", "true"}}));
  EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(model.status().message(),
              HasSubstr("SentencePiece's trainer refused: "));
}

TEST(SentencePieceTokenizerTest, AnIdOutsideTheVocabularyIsRefused) {
  std::unique_ptr<SentencePieceTokenizer> tokenizer = Tokenizer(TinyModel());
  ASSERT_NE(tokenizer, nullptr);
  for (int32_t id : {tokenizer->vocab_size(), -1}) {
    absl::StatusOr<std::string> text = tokenizer->Decode({3, id});
    EXPECT_EQ(text.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(text.status().message(),
                HasSubstr("token id " + std::to_string(id) +
                          " is outside the tokenizer's vocabulary of " +
                          std::to_string(tokenizer->vocab_size())));
  }
}

}  // namespace
}  // namespace oubli::tokenizer
