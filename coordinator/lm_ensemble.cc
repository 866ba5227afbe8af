#include "coordinator/lm_ensemble.h"

#include <torch/torch.h>

#include <cmath>
#include <exception>
#include <limits>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "worker/ml/position_data.h"
#include "worker/ml/shard_model.h"

namespace oubli::coordinator {
namespace {

absl::StatusOr<ml::PositionData> TokenRows(
    const BackboneConfig& backbone,
    absl::Span<const std::vector<int32_t>> sequences) {
  std::vector<ml::TokenSequence> rows(sequences.size());
  for (size_t i = 0; i < sequences.size(); ++i) {
    rows[i].tokens = sequences[i];
  }
  return ml::MakeTokenPositionData(rows, backbone);
}

absl::Status CheckMembers(const ShardModels& members) {
  if (members.empty()) {
    return absl::InvalidArgumentError("an ensemble needs a member");
  }
  return absl::OkStatus();
}

// The common check, its message prefixed with what the tokens are.
absl::Status CheckVocabularyOf(absl::Span<const int32_t> tokens,
                               int vocab_size, absl::string_view what) {
  absl::Status status = oubli::CheckVocabulary(tokens, vocab_size);
  if (status.ok()) return status;
  return absl::InvalidArgumentError(
      absl::StrCat(what, " ", status.message()));
}

// The mean next-token distribution after `tokens`, in double.
absl::StatusOr<std::vector<double>> MeanNextToken(
    const ShardModels& members, const BackboneConfig& backbone,
    const std::vector<int32_t>& tokens) {
  OUBLI_ASSIGN_OR_RETURN(ml::PositionData rows,
                         TokenRows(backbone, {&tokens, 1}));
  std::vector<double> mean(backbone.decoder.vocab_size, 0.0);
  for (const auto& member : members) {
    OUBLI_ASSIGN_OR_RETURN(torch::Tensor p,
                           member->NextTokenProbabilities(rows));
    p = p.contiguous();
    const float* values = p.data_ptr<float>();
    for (size_t v = 0; v < mean.size(); ++v) mean[v] += values[v];
  }
  for (double& p : mean) p /= static_cast<double>(members.size());
  return mean;
}

// splitmix64: a fixed generator, so sampled tokens are the same on every
// platform (std distributions are implementation-defined).
uint64_t SplitMix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

int32_t Greedy(const std::vector<double>& p) {
  int32_t best = 0;
  for (size_t v = 1; v < p.size(); ++v) {
    if (p[v] > p[best]) best = static_cast<int32_t>(v);
  }
  return best;
}

int32_t Sample(const std::vector<double>& p, double temperature,
               uint64_t& state) {
  // p^(1/T), relative to the largest so small probabilities do not vanish.
  const double top = p[Greedy(p)];
  std::vector<double> weight(p.size());
  double total = 0;
  for (size_t v = 0; v < p.size(); ++v) {
    weight[v] = p[v] > 0 ? std::exp(std::log(p[v] / top) / temperature) : 0;
    total += weight[v];
  }
  // 53 random bits: a double uniform in [0, 1).
  const double u =
      static_cast<double>(SplitMix64(state) >> 11) * 0x1.0p-53 * total;
  double cumulative = 0;
  int32_t last_possible = 0;
  for (size_t v = 0; v < weight.size(); ++v) {
    if (weight[v] <= 0) continue;
    cumulative += weight[v];
    last_possible = static_cast<int32_t>(v);
    if (u < cumulative) return last_possible;
  }
  return last_possible;  // rounding left u at the very top
}

}  // namespace

absl::StatusOr<std::vector<float>> EnsembleTokenClassProbabilities(
    const ShardModels& members, const BackboneConfig& backbone,
    absl::Span<const std::vector<int32_t>> sequences) {
  OUBLI_RETURN_IF_ERROR(CheckMembers(members));
  OUBLI_ASSIGN_OR_RETURN(ml::PositionData rows, TokenRows(backbone, sequences));
  try {
    torch::Tensor sum;
    for (const auto& member : members) {
      OUBLI_ASSIGN_OR_RETURN(torch::Tensor p,
                             member->TokenClassProbabilities(rows));
      sum = sum.defined() ? sum + p : p;
    }
    torch::Tensor mean =
        (sum / static_cast<double>(members.size())).contiguous();
    return std::vector<float>(mean.data_ptr<float>(),
                              mean.data_ptr<float>() + mean.numel());
  } catch (const std::exception& e) {
    return absl::ResourceExhaustedError(
        absl::StrCat("predict: aggregating shard outputs: ", e.what()));
  }
}

absl::StatusOr<std::vector<std::vector<float>>> EnsembleTokenLogProbs(
    const ShardModels& members, const BackboneConfig& backbone,
    absl::Span<const std::vector<int32_t>> sequences) {
  OUBLI_RETURN_IF_ERROR(CheckMembers(members));
  for (size_t i = 0; i < sequences.size(); ++i) {
    if (sequences[i].size() < 2) {
      return absl::InvalidArgumentError(absl::StrCat(
          "sequence ", i, " has ", sequences[i].size(),
          " tokens; scoring needs 2 or more (the first is context)"));
    }
  }
  OUBLI_ASSIGN_OR_RETURN(ml::PositionData rows, TokenRows(backbone, sequences));
  try {
    // Per member [n, T-1] log-probabilities; the ensemble's is the log of
    // their mean probability.
    std::vector<torch::Tensor> member_log_probs;
    for (const auto& member : members) {
      OUBLI_ASSIGN_OR_RETURN(torch::Tensor lp, member->TokenLogProbs(rows));
      member_log_probs.push_back(lp.to(torch::kFloat64).contiguous());
    }
    std::vector<std::vector<float>> out(sequences.size());
    const int64_t width = member_log_probs[0].size(1);
    for (size_t i = 0; i < sequences.size(); ++i) {
      const size_t scored = sequences[i].size() - 1;
      out[i].resize(scored);
      for (size_t t = 0; t < scored; ++t) {
        double mean = 0;
        for (const torch::Tensor& lp : member_log_probs) {
          mean += std::exp(lp.data_ptr<double>()[i * width + t]);
        }
        mean /= static_cast<double>(members.size());
        out[i][t] = static_cast<float>(std::log(mean));
      }
    }
    return out;
  } catch (const std::exception& e) {
    return absl::ResourceExhaustedError(
        absl::StrCat("score: aggregating shard outputs: ", e.what()));
  }
}

absl::StatusOr<Generation> EnsembleGenerate(const ShardModels& members,
                                            const BackboneConfig& backbone,
                                            const GenerateOptions& options) {
  OUBLI_RETURN_IF_ERROR(CheckMembers(members));
  const DecoderConfig& decoder = backbone.decoder;
  if (options.prompt.empty()) {
    return absl::InvalidArgumentError("the prompt has no tokens");
  }
  if (static_cast<int64_t>(options.prompt.size()) >= decoder.context_length) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the prompt has ", options.prompt.size(),
        " tokens; the context holds ", decoder.context_length,
        ", so at most ", decoder.context_length - 1, " leave room to generate"));
  }
  if (options.max_tokens < 1 || options.max_tokens > kMaxGeneratedTokens) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_tokens ", options.max_tokens, " is outside 1..",
                     kMaxGeneratedTokens));
  }
  if (!std::isfinite(options.temperature) || options.temperature < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "temperature ", options.temperature, " must be finite and >= 0"));
  }
  OUBLI_RETURN_IF_ERROR(
      CheckVocabularyOf(options.prompt, decoder.vocab_size, "prompt"));
  OUBLI_RETURN_IF_ERROR(
      CheckVocabularyOf(options.stop_tokens, decoder.vocab_size, "stop"));
  const absl::flat_hash_set<int32_t> stops(options.stop_tokens.begin(),
                                           options.stop_tokens.end());
  Generation out;
  std::vector<int32_t> tokens = options.prompt;
  uint64_t state = options.seed;
  while (true) {
    OUBLI_ASSIGN_OR_RETURN(std::vector<double> p,
                           MeanNextToken(members, backbone, tokens));
    const int32_t next = options.temperature == 0
                             ? Greedy(p)
                             : Sample(p, options.temperature, state);
    tokens.push_back(next);
    out.tokens.push_back(next);
    out.token_log_probs.push_back(
        p[next] > 0 ? static_cast<float>(std::log(p[next]))
                    : -std::numeric_limits<float>::infinity());
    if (stops.contains(next)) {
      out.finish_reason = FinishReason::kStopToken;
      break;
    }
    if (static_cast<int>(out.tokens.size()) == options.max_tokens) {
      out.finish_reason = FinishReason::kMaxTokens;
      break;
    }
    if (static_cast<int64_t>(tokens.size()) == decoder.context_length) {
      out.finish_reason = FinishReason::kContext;
      break;
    }
  }
  return out;
}

}  // namespace oubli::coordinator
