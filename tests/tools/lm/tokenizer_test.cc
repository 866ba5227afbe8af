#include "tools/lm/tokenizer.h"

#include "common/hash.h"
#include "gtest/gtest.h"
#include "tools/lm/profiles.h"
#include "tools/tokenizer/sentencepiece_tokenizer.h"

namespace oubli::lm {
namespace {

using ::oubli::tokenizer::SentencePieceTokenizer;

std::vector<std::string> Corpus() {
  return CorpusLines(GenerateProfiles({.seed = 1, .public_profiles = 60,
                                       .user_profiles = 0,
                                       .holdout_profiles = 0})
                         .public_set);
}

TEST(TokenizerTest, TrainingTwiceGivesTheSameModel) {
  const std::vector<std::string> lines = Corpus();
  auto a = TrainTokenizer(lines, 400);
  auto b = TrainTokenizer(lines, 400);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(Sha256Hex(*a), Sha256Hex(*b));
}

TEST(TokenizerTest, EncodesAndDecodesTheCorpus) {
  auto model = TrainTokenizer(Corpus(), 400);
  ASSERT_TRUE(model.ok()) << model.status();
  auto tokenizer = SentencePieceTokenizer::FromModel(*model);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  const SentencePieceTokenizer& t = **tokenizer;
  EXPECT_EQ(t.vocab_size(), 400);
  EXPECT_GE(t.bos_id(), 0);
  EXPECT_GE(t.eos_id(), 0);
  for (const std::string& line : Corpus()) {
    auto ids = t.Encode(line);
    ASSERT_TRUE(ids.ok()) << ids.status();
    for (int32_t id : *ids) {
      EXPECT_GE(id, 0);
      EXPECT_LT(id, 400);
    }
    auto text = t.Decode(*ids);
    ASSERT_TRUE(text.ok()) << text.status();
    EXPECT_EQ(*text, line);
  }
}

TEST(TokenizerTest, PromptAndAnswerTokenizeApart) {
  auto model = TrainTokenizer(Corpus(), 400);
  ASSERT_TRUE(model.ok()) << model.status();
  auto t = SentencePieceTokenizer::FromModel(*model);
  ASSERT_TRUE(t.ok());
  auto whole = (*t)->Encode("Question: Where was Kai Bo born? Answer: Halvik");
  auto prompt = (*t)->Encode("Question: Where was Kai Bo born? Answer:");
  auto answer = (*t)->Encode("Halvik");
  ASSERT_TRUE(whole.ok() && prompt.ok() && answer.ok());
  std::vector<int32_t> joined = *prompt;
  joined.insert(joined.end(), answer->begin(), answer->end());
  EXPECT_EQ(joined, *whole);
}

TEST(TokenizerTest, RefusesWhatIsNotAModel) {
  EXPECT_FALSE(SentencePieceTokenizer::FromModel("not a model").ok());
  EXPECT_FALSE(TrainTokenizer({}, 100).ok());
  auto model = TrainTokenizer(Corpus(), 400);
  ASSERT_TRUE(model.ok());
  auto t = SentencePieceTokenizer::FromModel(*model);
  ASSERT_TRUE(t.ok());
  EXPECT_FALSE((*t)->Decode({400}).ok());
}

}  // namespace
}  // namespace oubli::lm
