#include "coordinator/model_base.h"

#include <utility>

#include "common/status_macros.h"
#include "worker/ml/s3t_trainer.h"
#include "worker/ml/shard_model.h"

namespace oubli::coordinator {

struct ModelBase::Weights {
  ml::NamedTensors state;
};

absl::StatusOr<std::unique_ptr<const ModelBase>> ModelBase::Load(
    const ModelConfig& config) {
  auto weights = std::make_unique<Weights>();
  OUBLI_ASSIGN_OR_RETURN(weights->state, ml::LoadBaseState(config));
  return std::unique_ptr<const ModelBase>(
      new ModelBase(config, std::move(weights)));
}

absl::Status ModelBase::RecordWeightsDigest(ModelConfig* config) {
  return ml::RecordBaseWeightsDigest(config);
}

ModelBase::ModelBase(const ModelConfig& config,
                     std::unique_ptr<const Weights> weights)
    : config_(config), weights_(std::move(weights)) {}

ModelBase::~ModelBase() = default;

absl::StatusOr<std::shared_ptr<ml::S3tTrainer>> ModelBase::NewTrainer() const {
  OUBLI_ASSIGN_OR_RETURN(std::unique_ptr<ml::S3tTrainer> trainer,
                         ml::S3tTrainer::Create(config_, weights_->state));
  return std::shared_ptr<ml::S3tTrainer>(std::move(trainer));
}

absl::StatusOr<std::shared_ptr<const ml::ShardModel>> ModelBase::ShardModelOf(
    absl::string_view checkpoint) const {
  return ml::ShardModel::Create(config_, weights_->state, checkpoint);
}

absl::StatusOr<std::shared_ptr<const ml::ShardModel>> ModelBase::BaseAlone()
    const {
  return ml::ShardModel::CreateBase(config_, weights_->state);
}

}  // namespace oubli::coordinator
