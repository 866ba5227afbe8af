// The served ensemble's answer: the mean of its members' class
// probabilities, each member answered by a worker or computed here.
// LibTorch stays out of this header.
#ifndef OUBLI_COORDINATOR_ENSEMBLE_H_
#define OUBLI_COORDINATOR_ENSEMBLE_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace oubli::ml {
class ShardModel;
}  // namespace oubli::ml

namespace oubli::coordinator {

struct EnsembleMember {
  // rows x classes probabilities a worker computed, or null: compute them
  // here with `model`.
  const std::vector<float>* answered = nullptr;
  std::shared_ptr<const ml::ShardModel> model;
};

// Row-major rows x classes means, members summed in order (so the bits do
// not depend on who computed what). `inputs`: rows x width floats.
// ResourceExhausted: out of memory; other codes: a model's own failure.
absl::StatusOr<std::vector<float>> EnsembleMean(
    absl::Span<const EnsembleMember> members, absl::Span<const float> inputs,
    int64_t rows, int64_t width, int64_t classes);

}  // namespace oubli::coordinator

#endif  // OUBLI_COORDINATOR_ENSEMBLE_H_
