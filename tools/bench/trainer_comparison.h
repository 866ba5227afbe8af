// What `oubli-bench train` and `train --lm` share: the S3T trainer's first
// position against a bare LibTorch loop over the same model, optimizer,
// batch order and loss, in interleaved rounds (best of each, since these
// machines are noisy).
#ifndef OUBLI_TOOLS_BENCH_TRAINER_COMPARISON_H_
#define OUBLI_TOOLS_BENCH_TRAINER_COMPARISON_H_

#include <torch/torch.h>

#include <cstdint>
#include <functional>

#include "absl/status/statusor.h"
#include "common/config.h"
#include "worker/ml/adapter_model.h"
#include "worker/ml/position_data.h"

namespace oubli::bench {

struct TrainerComparison {
  double trainer_per_s = 0;  // units/s, best round
  double bare_per_s = 0;
  double last_loss = 0;  // the trainer's, last round
};

// One batch's loss in the bare loop: `rows` index `data`.
using BareBatchLoss = std::function<torch::Tensor(
    ml::AdapterModel& model, const ml::PositionData& data,
    const torch::Tensor& rows, const torch::Device& device)>;

// Units are what the rates count: `units_per_epoch` for the bare loop, and
// `trainer_units` of the trainer's statistics (samples or tokens).
absl::StatusOr<TrainerComparison> CompareTrainerWithBareLoop(
    const ModelConfig& config, const ml::PositionData& data, int rounds,
    int64_t units_per_epoch, const BareBatchLoss& batch_loss,
    const std::function<int64_t(const ml::TrainStats&)>& trainer_units);

}  // namespace oubli::bench

#endif  // OUBLI_TOOLS_BENCH_TRAINER_COMPARISON_H_
