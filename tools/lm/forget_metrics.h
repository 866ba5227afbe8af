// MUSE-style forgetting metrics for a causal language model (issue 11,
// section 4), as pure functions over token ids and scores, and as functions
// of an LmScorer so that the same code measures the in-process engine
// (Engine::Score / Generate), a gRPC client or a bare model.
//
//  (1) verbatim memorisation: ROUGE-L F1 on token ids between the greedy
//      continuation of a text's first half and its true second half;
//  (2) knowledge: QA accuracy by ranking: the true answer's mean token
//      log-likelihood after the question against those of same-kind
//      distractors (a tie at the top earns 1 / the number tied). Ranking
//      rather than exact greedy match: it needs only Score, and it still
//      sees what a small model knows when its top token is off;
//  (3) privacy leakage: membership-inference AUC with the per-sample mean
//      token loss as the attack score (lower loss = member), members (the
//      forgotten or retained owners) against never-seen holdout samples;
//      Min-K% Prob (MUSE's attack) is computed alongside;
//  (4) utility: mean loss and QA accuracy on retained owners and held-out
//      text.
// No torch here.
#ifndef OUBLI_TOOLS_LM_FORGET_METRICS_H_
#define OUBLI_TOOLS_LM_FORGET_METRICS_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace oubli::lm {

// What the metrics ask of a language model.
class LmScorer {
 public:
  virtual ~LmScorer() = default;
  // For each sequence (at least 2 tokens), log p(token t | tokens < t) for
  // t = 1..n-1: n-1 values.
  virtual absl::StatusOr<std::vector<std::vector<float>>> Score(
      absl::Span<const std::vector<int32_t>> sequences) = 0;
  // The greedy continuation of `prompt`, at most `max_tokens` tokens (fewer
  // when the model emits `stop_token`, which is not returned, or the
  // context fills up).
  virtual absl::StatusOr<std::vector<int32_t>> Generate(
      absl::Span<const int32_t> prompt, int max_tokens,
      int32_t stop_token) = 0;
};

// ---- Pure functions -------------------------------------------------------

// Length of the longest common subsequence of a and b.
int64_t LongestCommonSubsequence(absl::Span<const int32_t> a,
                                 absl::Span<const int32_t> b);
// ROUGE-L F1: 2PR / (P + R) with P = LCS / |candidate|, R = LCS /
// |reference|; 0 when either is empty or they share nothing.
double RougeLF1(absl::Span<const int32_t> candidate,
                absl::Span<const int32_t> reference);

// The mean of -log_probs[i] for i >= first; 0 when there is none. For a
// sample with prompt_tokens p, Score's values for the learned tokens start
// at index max(p, 1) - 1.
double MeanTokenLoss(absl::Span<const float> log_probs, size_t first);
// Min-K% Prob: the mean of the ceil(k * n) lowest of log_probs[first..]
// (n of them), k in (0, 1]; 0 when there is none. Members score higher.
double MinKPercentLogProb(absl::Span<const float> log_probs, size_t first,
                          double k);

// P(member score > non-member score) + P(equal) / 2 over all pairs: the
// ROC AUC of an attack that calls higher scores members, computed exactly
// by mid-ranks (ties count one half). 0.5 when either side is empty.
double MembershipAuc(absl::Span<const double> member_scores,
                     absl::Span<const double> nonmember_scores);

// Credit for one ranked question: 1 when `correct` alone has the highest
// score, 1/k when it is one of k tied at the top, 0 otherwise.
double RankCredit(absl::Span<const double> scores, int correct);

// ---- With a scorer ---------------------------------------------------------

// A text whose loss counts from token `prompt_tokens` on (tokens before it
// are context, as Sample.prompt_tokens).
struct ScoredText {
  std::vector<int32_t> tokens;
  int32_t prompt_tokens = 0;
};

struct SampleScore {
  double mean_loss = 0;        // nats per learned token
  double min_k_log_prob = 0;   // Min-K% Prob
};

// Scores `texts` in batches of at most `batch` sequences per Score call
// (the engine takes 256). InvalidArgument: a text shorter than 2 tokens or
// a prompt covering all of it; errors of the scorer as they are.
absl::StatusOr<std::vector<SampleScore>> ScoreTexts(
    LmScorer& scorer, absl::Span<const ScoredText> texts, double min_k = 0.2,
    size_t batch = 256);

// A text cut in two: the model continues `prefix`; `reference` is the truth.
struct Continuation {
  std::vector<int32_t> prefix;
  std::vector<int32_t> reference;
};

// Mean ROUGE-L F1 of the greedy continuations (each |reference| tokens at
// most, stopping at `stop_token`) against the references; 0 for none.
absl::StatusOr<double> VerbatimRougeL(LmScorer& scorer,
                                      absl::Span<const Continuation> items,
                                      int32_t stop_token);

// A question and its candidate answers (token ids after the prompt,
// typically ending with EOS); answers[correct] is the truth.
struct RankedQuestion {
  std::vector<int32_t> prompt;
  std::vector<std::vector<int32_t>> answers;
  int correct = 0;
};

// Mean RankCredit over the questions, each candidate scored by its mean
// token log-likelihood after the prompt; 0 for none. InvalidArgument: an
// empty prompt or answer, or `correct` out of range.
absl::StatusOr<double> KnowledgeAccuracy(
    LmScorer& scorer, absl::Span<const RankedQuestion> questions,
    size_t batch = 256);

}  // namespace oubli::lm

#endif  // OUBLI_TOOLS_LM_FORGET_METRICS_H_
