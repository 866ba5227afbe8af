#include "tools/lm/forget_metrics.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace oubli::lm {

int64_t LongestCommonSubsequence(absl::Span<const int32_t> a,
                                 absl::Span<const int32_t> b) {
  // One row of the DP table: O(|a| |b|) time, O(|b|) memory.
  std::vector<int64_t> row(b.size() + 1, 0);
  for (size_t i = 1; i <= a.size(); ++i) {
    int64_t diagonal = 0;  // row[j - 1] of the previous row
    for (size_t j = 1; j <= b.size(); ++j) {
      const int64_t above = row[j];
      row[j] = a[i - 1] == b[j - 1] ? diagonal + 1
                                    : std::max(row[j], row[j - 1]);
      diagonal = above;
    }
  }
  return row[b.size()];
}

double RougeLF1(absl::Span<const int32_t> candidate,
                absl::Span<const int32_t> reference) {
  if (candidate.empty() || reference.empty()) return 0;
  const auto lcs =
      static_cast<double>(LongestCommonSubsequence(candidate, reference));
  if (lcs == 0) return 0;
  const double precision = lcs / static_cast<double>(candidate.size());
  const double recall = lcs / static_cast<double>(reference.size());
  return 2 * precision * recall / (precision + recall);
}

double MeanTokenLoss(absl::Span<const float> log_probs, size_t first) {
  if (first >= log_probs.size()) return 0;
  double sum = 0;
  for (size_t i = first; i < log_probs.size(); ++i) sum -= log_probs[i];
  return sum / static_cast<double>(log_probs.size() - first);
}

double MinKPercentLogProb(absl::Span<const float> log_probs, size_t first,
                          double k) {
  if (first >= log_probs.size() || !(k > 0)) return 0;
  std::vector<float> values(log_probs.begin() + first, log_probs.end());
  const auto n = static_cast<double>(values.size());
  const size_t keep = std::clamp<size_t>(
      static_cast<size_t>(std::ceil(std::min(k, 1.0) * n)), 1, values.size());
  std::partial_sort(values.begin(), values.begin() + keep, values.end());
  double sum = 0;
  for (size_t i = 0; i < keep; ++i) sum += values[i];
  return sum / static_cast<double>(keep);
}

double MembershipAuc(absl::Span<const double> member_scores,
                     absl::Span<const double> nonmember_scores) {
  const size_t m = member_scores.size(), n = nonmember_scores.size();
  if (m == 0 || n == 0) return 0.5;
  // Mann-Whitney U from mid-ranks: every tie shares its ranks' mean, which
  // counts each tied member/non-member pair as one half.
  std::vector<std::pair<double, bool>> all;
  all.reserve(m + n);
  for (double s : member_scores) all.emplace_back(s, true);
  for (double s : nonmember_scores) all.emplace_back(s, false);
  std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) {
    return a.first < b.first;
  });
  double member_rank_sum = 0;
  for (size_t begin = 0; begin < all.size();) {
    size_t end = begin;
    while (end < all.size() && all[end].first == all[begin].first) ++end;
    // Ranks begin+1 .. end, mean (begin + 1 + end) / 2.
    const double mid_rank = (static_cast<double>(begin + 1 + end)) / 2;
    for (size_t i = begin; i < end; ++i) {
      if (all[i].second) member_rank_sum += mid_rank;
    }
    begin = end;
  }
  const double md = static_cast<double>(m), nd = static_cast<double>(n);
  const double u = member_rank_sum - md * (md + 1) / 2;
  return u / (md * nd);
}

double RankCredit(absl::Span<const double> scores, int correct) {
  if (correct < 0 || static_cast<size_t>(correct) >= scores.size()) return 0;
  const double best = *std::max_element(scores.begin(), scores.end());
  if (scores[correct] < best) return 0;
  const auto tied = std::count(scores.begin(), scores.end(), best);
  return 1.0 / static_cast<double>(tied);
}

namespace {

// Score in chunks of `batch`, checking the scorer's answer shape.
absl::StatusOr<std::vector<std::vector<float>>> ScoreAll(
    LmScorer& scorer, absl::Span<const std::vector<int32_t>> sequences,
    size_t batch) {
  std::vector<std::vector<float>> out;
  out.reserve(sequences.size());
  batch = std::max<size_t>(batch, 1);
  for (size_t begin = 0; begin < sequences.size(); begin += batch) {
    const size_t count = std::min(batch, sequences.size() - begin);
    OUBLI_ASSIGN_OR_RETURN(std::vector<std::vector<float>> scored,
                           scorer.Score(sequences.subspan(begin, count)));
    if (scored.size() != count) {
      return absl::InternalError(absl::StrCat(
          "the scorer returned ", scored.size(), " rows for ", count));
    }
    for (size_t i = 0; i < count; ++i) {
      if (scored[i].size() + 1 != sequences[begin + i].size()) {
        return absl::InternalError(absl::StrCat(
            "the scorer returned ", scored[i].size(), " values for ",
            sequences[begin + i].size(), " tokens"));
      }
      out.push_back(std::move(scored[i]));
    }
  }
  return out;
}

}  // namespace

absl::StatusOr<std::vector<SampleScore>> ScoreTexts(
    LmScorer& scorer, absl::Span<const ScoredText> texts, double min_k,
    size_t batch) {
  std::vector<std::vector<int32_t>> sequences;
  sequences.reserve(texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    const ScoredText& text = texts[i];
    if (text.tokens.size() < 2 || text.prompt_tokens < 0 ||
        static_cast<size_t>(text.prompt_tokens) >= text.tokens.size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "text ", i, ": needs 2 tokens and one after its prompt, has ",
          text.tokens.size(), " with a prompt of ", text.prompt_tokens));
    }
    sequences.push_back(text.tokens);
  }
  OUBLI_ASSIGN_OR_RETURN(std::vector<std::vector<float>> scored,
                         ScoreAll(scorer, sequences, batch));
  std::vector<SampleScore> out;
  out.reserve(texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    const size_t first =
        static_cast<size_t>(std::max<int32_t>(texts[i].prompt_tokens, 1)) - 1;
    out.push_back({MeanTokenLoss(scored[i], first),
                   MinKPercentLogProb(scored[i], first, min_k)});
  }
  return out;
}

absl::StatusOr<double> VerbatimRougeL(LmScorer& scorer,
                                      absl::Span<const Continuation> items,
                                      int32_t stop_token) {
  if (items.empty()) return 0.0;
  double sum = 0;
  for (const Continuation& item : items) {
    if (item.prefix.empty() || item.reference.empty()) {
      return absl::InvalidArgumentError(
          "a continuation needs a prefix and a reference");
    }
    OUBLI_ASSIGN_OR_RETURN(
        std::vector<int32_t> generated,
        scorer.Generate(item.prefix, static_cast<int>(item.reference.size()),
                        stop_token));
    sum += RougeLF1(generated, item.reference);
  }
  return sum / static_cast<double>(items.size());
}

absl::StatusOr<double> KnowledgeAccuracy(
    LmScorer& scorer, absl::Span<const RankedQuestion> questions,
    size_t batch) {
  if (questions.empty()) return 0.0;
  std::vector<std::vector<int32_t>> sequences;
  for (size_t q = 0; q < questions.size(); ++q) {
    const RankedQuestion& question = questions[q];
    if (question.prompt.empty() || question.answers.empty() ||
        question.correct < 0 ||
        static_cast<size_t>(question.correct) >= question.answers.size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "question ", q, ": needs a prompt, answers and a correct index"));
    }
    for (const std::vector<int32_t>& answer : question.answers) {
      if (answer.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat("question ", q, ": an empty answer"));
      }
      std::vector<int32_t>& sequence = sequences.emplace_back(question.prompt);
      sequence.insert(sequence.end(), answer.begin(), answer.end());
    }
  }
  OUBLI_ASSIGN_OR_RETURN(std::vector<std::vector<float>> scored,
                         ScoreAll(scorer, sequences, batch));
  double credit = 0;
  size_t next = 0;
  for (const RankedQuestion& question : questions) {
    std::vector<double> scores;
    for (size_t a = 0; a < question.answers.size(); ++a, ++next) {
      // The answer's tokens are the last |answer| of the sequence.
      scores.push_back(-MeanTokenLoss(scored[next], question.prompt.size() - 1));
    }
    credit += RankCredit(scores, question.correct);
  }
  return credit / static_cast<double>(questions.size());
}

}  // namespace oubli::lm
