#include "tools/lm/engine_scorer.h"

#include <utility>

#include "common/status_macros.h"

namespace oubli::lm {

absl::StatusOr<std::vector<std::vector<float>>> EngineScorer::Score(
    absl::Span<const std::vector<int32_t>> sequences) {
  OUBLI_ASSIGN_OR_RETURN(coordinator::TokenScores scores,
                         engine_.Score(sequences));
  fingerprint_ = scores.fingerprint;
  return std::move(scores.token_log_probs);
}

absl::StatusOr<std::vector<int32_t>> EngineScorer::Generate(
    absl::Span<const int32_t> prompt, int max_tokens, int32_t stop_token) {
  coordinator::GenerateOptions options;
  options.prompt.assign(prompt.begin(), prompt.end());
  options.max_tokens = max_tokens;
  options.temperature = 0;  // greedy
  if (stop_token >= 0) options.stop_tokens = {stop_token};
  OUBLI_ASSIGN_OR_RETURN(coordinator::Generation generation,
                         engine_.Generate(options));
  fingerprint_ = generation.fingerprint;
  std::vector<int32_t> tokens = std::move(generation.tokens);
  // The stop token ends the text; it is not part of it.
  if (generation.finish_reason == coordinator::FinishReason::kStopToken &&
      !tokens.empty() && tokens.back() == stop_token) {
    tokens.pop_back();
  }
  return tokens;
}

}  // namespace oubli::lm
