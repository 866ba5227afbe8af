// The served ensemble's answers for decoders: class probabilities of token
// rows (classifying decoders), per-token log-likelihoods and generation
// (causal language models). The ensemble's distribution is the mean of its
// members' distributions, summed in member order so the bits never depend
// on timing. Computed on the coordinator (workers serve image models
// only). LibTorch stays out of this header.
#ifndef OUBLI_COORDINATOR_LM_ENSEMBLE_H_
#define OUBLI_COORDINATOR_LM_ENSEMBLE_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/config.h"
#include "coordinator/engine_types.h"

namespace oubli::ml {
class ShardModel;
}  // namespace oubli::ml

namespace oubli::coordinator {

using ShardModels = std::vector<std::shared_ptr<const ml::ShardModel>>;

// Row-major rows x num_classes mean class probabilities of `sequences`.
// InvalidArgument naming the row: empty, longer than the context, a token
// outside the vocabulary; ResourceExhausted/Internal: computing failed.
absl::StatusOr<std::vector<float>> EnsembleTokenClassProbabilities(
    const ShardModels& members, const BackboneConfig& backbone,
    absl::Span<const std::vector<int32_t>> sequences);

// Per sequence, log of the mean probability of token i given tokens < i,
// i = 1..n-1. InvalidArgument naming the sequence: fewer than 2 tokens,
// longer than the context, a token outside the vocabulary; other codes:
// computing failed.
absl::StatusOr<std::vector<std::vector<float>>> EnsembleTokenLogProbs(
    const ShardModels& members, const BackboneConfig& backbone,
    absl::Span<const std::vector<int32_t>> sequences);

// The generated tokens, their log-probabilities and why generation
// stopped; the Generation's serving fields are left empty. Greedy picks
// the lowest id among ties; sampling draws from the mean distribution
// raised to 1/temperature with a generator seeded by options.seed (the same
// request on the same members gives the same tokens). InvalidArgument: an
// empty prompt or one that fills the context, max_tokens outside 1..1024,
// a negative or non-finite temperature, a token (prompt or stop) outside
// the vocabulary; other codes: computing failed.
absl::StatusOr<Generation> EnsembleGenerate(const ShardModels& members,
                                            const BackboneConfig& backbone,
                                            const GenerateOptions& options);

}  // namespace oubli::coordinator

#endif  // OUBLI_COORDINATOR_LM_ENSEMBLE_H_
