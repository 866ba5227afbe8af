#include "tools/bench/trainer_comparison.h"

#include <algorithm>
#include <memory>
#include <vector>

#include "absl/time/clock.h"
#include "common/hash.h"
#include "common/status_macros.h"
#include "worker/ml/determinism.h"
#include "worker/ml/model_factory.h"
#include "worker/ml/s3t_trainer.h"
#include "worker/ml/torch_device.h"

namespace oubli::bench {

absl::StatusOr<TrainerComparison> CompareTrainerWithBareLoop(
    const ModelConfig& config, const ml::PositionData& data, int rounds,
    int64_t units_per_epoch, const BareBatchLoss& batch_loss,
    const std::function<int64_t(const ml::TrainStats&)>& trainer_units) {
  OUBLI_ASSIGN_OR_RETURN(ml::NamedTensors base, ml::LoadBaseState(config));
  OUBLI_ASSIGN_OR_RETURN(std::unique_ptr<ml::S3tTrainer> trainer,
                         ml::S3tTrainer::Create(config, base));
  const std::vector<int> prefix = {0};

  // Shard 0's first position with nothing of ours around it.
  auto bare_loop = [&]() -> absl::StatusOr<double> {
    ml::PinThreads(config.determinism);
    OUBLI_ASSIGN_OR_RETURN(std::shared_ptr<ml::AdapterModel> model,
                           ml::BuildModelOnBase(config, base));
    model->InitAdapters(DeriveSeed(config.seed, "adapters", {0}));
    const torch::Device device = ml::TorchDevice();  // as the trainer
    model->to(device);
    std::vector<torch::Tensor> params;
    const std::vector<std::vector<int>> groups =
        ml::AdapterGroups(model->num_adapter_layers(), config.slices);
    for (int layer : groups[0]) {
      for (auto& t : model->AdapterParameters(layer)) params.push_back(t);
    }
    for (auto& t : model->HeadParameters()) params.push_back(t);
    model->FreezeAllExcept(params);
    model->train();
    torch::optim::Adam optimizer(
        params, torch::optim::AdamOptions(config.train.learning_rate));
    const int64_t n = data.size();
    const absl::Time start = absl::Now();
    for (int epoch = 0; epoch < config.train.epochs_per_position; ++epoch) {
      torch::Tensor index = torch::tensor(
          ml::SeededPermutation(
              n, ml::PositionSeed(config.seed, "order", 0, prefix, epoch)),
          torch::kInt64);
      for (int64_t b = 0; b < n; b += config.train.batch_size) {
        torch::Tensor rows =
            index.slice(0, b, std::min(n, b + config.train.batch_size));
        optimizer.zero_grad();
        torch::Tensor loss = batch_loss(*model, data, rows, device);
        loss.backward();
        optimizer.step();
      }
    }
    if (device.is_cuda()) torch::cuda::synchronize();
    return units_per_epoch * config.train.epochs_per_position /
           absl::ToDoubleSeconds(absl::Now() - start);
  };
  TrainerComparison result;
  auto ours = [&]() -> absl::StatusOr<double> {
    ml::TrainStats stats;
    const absl::Time start = absl::Now();
    OUBLI_RETURN_IF_ERROR(
        trainer->TrainPosition(0, prefix, "", data, &stats).status());
    result.last_loss = stats.last_loss;
    return trainer_units(stats) / absl::ToDoubleSeconds(absl::Now() - start);
  };
  for (int round = 0; round < rounds; ++round) {
    OUBLI_ASSIGN_OR_RETURN(const double bare, bare_loop());
    OUBLI_ASSIGN_OR_RETURN(const double trained, ours());
    result.bare_per_s = std::max(result.bare_per_s, bare);
    result.trainer_per_s = std::max(result.trainer_per_s, trained);
  }
  return result;
}

}  // namespace oubli::bench
