#include "coordinator/model_base.h"

#include <utility>

#include "common/status_macros.h"
#include "worker/ml/s3t_trainer.h"
#include "worker/ml/shard_model.h"

namespace oubli::coordinator {

struct ModelBase::Weights {
  worker::NamedTensors state;
};

absl::StatusOr<std::unique_ptr<const ModelBase>> ModelBase::Load(
    const ModelConfig& config) {
  auto weights = std::make_unique<Weights>();
  OUBLI_ASSIGN_OR_RETURN(weights->state, worker::LoadBaseState(config));
  return std::unique_ptr<const ModelBase>(
      new ModelBase(config, std::move(weights)));
}

absl::Status ModelBase::RecordWeightsDigest(ModelConfig* config) {
  return worker::RecordBaseWeightsDigest(config);
}

ModelBase::ModelBase(const ModelConfig& config,
                     std::unique_ptr<const Weights> weights)
    : config_(config), weights_(std::move(weights)) {}

ModelBase::~ModelBase() = default;

absl::StatusOr<std::shared_ptr<worker::S3tTrainer>> ModelBase::NewTrainer()
    const {
  OUBLI_ASSIGN_OR_RETURN(std::unique_ptr<worker::S3tTrainer> trainer,
                         worker::S3tTrainer::Create(config_, weights_->state));
  return std::shared_ptr<worker::S3tTrainer>(std::move(trainer));
}

absl::StatusOr<std::shared_ptr<const worker::ShardModel>>
ModelBase::ShardModelOf(absl::string_view checkpoint) const {
  return worker::ShardModel::Create(config_, weights_->state, checkpoint);
}

absl::StatusOr<std::shared_ptr<const worker::ShardModel>>
ModelBase::BaseAlone() const {
  return worker::ShardModel::CreateBase(config_, weights_->state);
}

}  // namespace oubli::coordinator
