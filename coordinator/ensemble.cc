#include "coordinator/ensemble.h"

#include <torch/torch.h>

#include <exception>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "worker/ml/shard_model.h"

namespace oubli::coordinator {

absl::StatusOr<std::vector<float>> EnsembleMean(
    absl::Span<const EnsembleMember> members, absl::Span<const float> inputs,
    int64_t rows, int64_t width, int64_t classes) {
  if (members.empty()) {
    return absl::InvalidArgumentError("an ensemble needs a member");
  }
  try {
    torch::Tensor x = torch::from_blob(const_cast<float*>(inputs.data()),
                                       {rows, width}, torch::kFloat32);
    torch::Tensor sum;
    for (const EnsembleMember& member : members) {
      torch::Tensor p;
      if (member.answered != nullptr) {
        p = torch::from_blob(const_cast<float*>(member.answered->data()),
                             {rows, classes}, torch::kFloat32);
      } else {
        OUBLI_ASSIGN_OR_RETURN(p, member.model->Probabilities(x));
      }
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

}  // namespace oubli::coordinator
