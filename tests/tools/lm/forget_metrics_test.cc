#include "tools/lm/forget_metrics.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace oubli::lm {
namespace {

using ::testing::DoubleEq;

TEST(ForgetMetricsTest, LongestCommonSubsequence) {
  EXPECT_EQ(LongestCommonSubsequence({1, 2, 3, 4}, {2, 4, 3}), 2);
  EXPECT_EQ(LongestCommonSubsequence({1, 2, 3}, {1, 2, 3}), 3);
  EXPECT_EQ(LongestCommonSubsequence({1, 2}, {3, 4}), 0);
  EXPECT_EQ(LongestCommonSubsequence({}, {1}), 0);
  EXPECT_EQ(LongestCommonSubsequence({7, 1, 7, 2, 7}, {1, 2, 7, 7}), 3);
}

TEST(ForgetMetricsTest, RougeL) {
  // LCS 2: P = 2/4, R = 2/3, F1 = 2PR / (P + R) = 4/7.
  EXPECT_THAT(RougeLF1({1, 2, 3, 4}, {2, 4, 3}), DoubleEq(4.0 / 7.0));
  EXPECT_THAT(RougeLF1({5, 6}, {5, 6}), DoubleEq(1.0));
  EXPECT_THAT(RougeLF1({1}, {2}), DoubleEq(0.0));
  EXPECT_THAT(RougeLF1({}, {2}), DoubleEq(0.0));
  EXPECT_THAT(RougeLF1({2}, {}), DoubleEq(0.0));
}

TEST(ForgetMetricsTest, TokenLossAndMinK) {
  EXPECT_THAT(MeanTokenLoss({-1, -2, -3}, 1), DoubleEq(2.5));
  EXPECT_THAT(MeanTokenLoss({-1, -2, -3}, 0), DoubleEq(2.0));
  EXPECT_THAT(MeanTokenLoss({-1}, 1), DoubleEq(0.0));
  // The lowest ceil(0.5 * 4) = 2 of them: -4 and -3.
  EXPECT_THAT(MinKPercentLogProb({-1, -4, -2, -3}, 0, 0.5), DoubleEq(-3.5));
  // ceil(0.2 * 4) = 1: the lowest alone.
  EXPECT_THAT(MinKPercentLogProb({-1, -4, -2, -3}, 0, 0.2), DoubleEq(-4.0));
  // From index 2: {-2, -3}, ceil(0.5 * 2) = 1.
  EXPECT_THAT(MinKPercentLogProb({-1, -4, -2, -3}, 2, 0.5), DoubleEq(-3.0));
  EXPECT_THAT(MinKPercentLogProb({-1}, 1, 0.5), DoubleEq(0.0));
}

TEST(ForgetMetricsTest, MembershipAucCountsTiesAsOneHalf) {
  // Pairs (member, non-member): 3>2, 3>0, 2=2 (1/2), 2>0, 1<2, 1>0:
  // 4.5 of 6.
  EXPECT_THAT(MembershipAuc({3, 2, 1}, {2, 0}), DoubleEq(0.75));
  EXPECT_THAT(MembershipAuc({5, 6}, {1, 2, 3}), DoubleEq(1.0));
  EXPECT_THAT(MembershipAuc({1, 2, 3}, {5, 6}), DoubleEq(0.0));
  EXPECT_THAT(MembershipAuc({1, 1, 1}, {1, 1}), DoubleEq(0.5));
  EXPECT_THAT(MembershipAuc({}, {1}), DoubleEq(0.5));
  // Symmetric: swapping the sides gives 1 - AUC.
  EXPECT_THAT(MembershipAuc({2, 0}, {3, 2, 1}), DoubleEq(0.25));
}

TEST(ForgetMetricsTest, RankCredit) {
  EXPECT_THAT(RankCredit({-1, -3, -2}, 0), DoubleEq(1.0));
  EXPECT_THAT(RankCredit({-1, -3, -2}, 2), DoubleEq(0.0));
  EXPECT_THAT(RankCredit({-1, -1, -2}, 1), DoubleEq(0.5));
  EXPECT_THAT(RankCredit({-1, -1, -1}, 2), DoubleEq(1.0 / 3));
  EXPECT_THAT(RankCredit({-1}, 3), DoubleEq(0.0));
}

// log p(token t | prefix) = -t (exact in float: ties stay ties), and greedy text counts up by one.
class CountingScorer : public LmScorer {
 public:
  absl::StatusOr<std::vector<std::vector<float>>> Score(
      absl::Span<const std::vector<int32_t>> sequences) override {
    ++score_calls;
    std::vector<std::vector<float>> out;
    for (const auto& s : sequences) {
      std::vector<float>& row = out.emplace_back();
      for (size_t t = 1; t < s.size(); ++t) {
        row.push_back(-static_cast<float>(s[t]));
      }
    }
    return out;
  }
  absl::StatusOr<std::vector<int32_t>> Generate(
      absl::Span<const int32_t> prompt, int max_tokens,
      int32_t stop_token) override {
    std::vector<int32_t> out;
    int32_t next = prompt.back() + 1;
    while (static_cast<int>(out.size()) < max_tokens && next != stop_token) {
      out.push_back(next++);
    }
    return out;
  }
  int score_calls = 0;
};

TEST(ForgetMetricsTest, ScoreTextsCountsTheLearnedTokens) {
  CountingScorer scorer;
  // Log-probs of [0, 2, 4]: -2, -4. Prompt 0 or 1: both; prompt 2: token 4
  // alone.
  auto scores = ScoreTexts(scorer,
                           {ScoredText{{0, 2, 4}, 0}, ScoredText{{0, 2, 4}, 1},
                            ScoredText{{0, 2, 4}, 2}},
                           /*min_k=*/0.5, /*batch=*/2);
  ASSERT_TRUE(scores.ok()) << scores.status();
  ASSERT_EQ(scores->size(), 3u);
  EXPECT_THAT((*scores)[0].mean_loss, DoubleEq(3));
  EXPECT_THAT((*scores)[1].mean_loss, DoubleEq(3));
  EXPECT_THAT((*scores)[2].mean_loss, DoubleEq(4));
  EXPECT_THAT((*scores)[0].min_k_log_prob, DoubleEq(-4));
  EXPECT_EQ(scorer.score_calls, 2);  // batches of 2
  EXPECT_FALSE(ScoreTexts(scorer, {ScoredText{{1}, 0}}).ok());
  EXPECT_FALSE(ScoreTexts(scorer, {ScoredText{{1, 2}, 2}}).ok());
}

TEST(ForgetMetricsTest, VerbatimRougeLContinuesGreedily) {
  CountingScorer scorer;
  // [3, 4, 5] exactly (1); [3, 9] against the generated [3, 4] (1/2).
  auto rouge = VerbatimRougeL(
      scorer, {Continuation{{1, 2}, {3, 4, 5}}, Continuation{{1, 2}, {3, 9}}},
      /*stop_token=*/-1);
  ASSERT_TRUE(rouge.ok()) << rouge.status();
  EXPECT_THAT(*rouge, DoubleEq(0.75));
  // Stopping at token 4 leaves [3]: P = 1, R = 1/3, F1 = 1/2.
  rouge = VerbatimRougeL(scorer, {Continuation{{1, 2}, {3, 4, 5}}}, 4);
  ASSERT_TRUE(rouge.ok());
  EXPECT_THAT(*rouge, DoubleEq(0.5));
}

TEST(ForgetMetricsTest, KnowledgeRanksTheAnswers) {
  CountingScorer scorer;
  // Mean log-likelihoods: [1] -1 beats [2] -2; [3, 1] and [2, 2] tie at
  // -2, so the second question earns one half.
  auto accuracy = KnowledgeAccuracy(
      scorer, {RankedQuestion{{5}, {{1}, {2}}, 0},
               RankedQuestion{{5, 6}, {{3, 1}, {2, 2}}, 1}});
  ASSERT_TRUE(accuracy.ok()) << accuracy.status();
  EXPECT_THAT(*accuracy, DoubleEq(0.75));
  EXPECT_FALSE(
      KnowledgeAccuracy(scorer, {RankedQuestion{{5}, {{1}}, 1}}).ok());
  EXPECT_FALSE(
      KnowledgeAccuracy(scorer, {RankedQuestion{{}, {{1}}, 0}}).ok());
}

}  // namespace
}  // namespace oubli::lm
