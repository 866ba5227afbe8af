// The frozen base of one model, loaded once, and what is built on it: a
// trainer for positions, the model of a shard checkpoint, the base model
// alone. Training and serving on the coordinator build here, so they build
// alike. LibTorch stays out of this header (see worker/ml/ for the models).
#ifndef OUBLI_COORDINATOR_MODEL_BASE_H_
#define OUBLI_COORDINATOR_MODEL_BASE_H_

#include <memory>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/config.h"

namespace oubli::ml {
class S3tTrainer;
class ShardModel;
}  // namespace oubli::ml

namespace oubli::coordinator {

class ModelBase {
 public:
  // FailedPrecondition: the base weights cannot be loaded (file missing,
  // digest or shapes wrong); other codes: reading them failed.
  static absl::StatusOr<std::unique_ptr<const ModelBase>> Load(
      const ModelConfig& config);
  // For a file-sourced base without a recorded digest, records the file's
  // SHA-256 in `config`, so a later change to the file is refused instead of
  // silently changing the weights. Errors: the file cannot be read.
  static absl::Status RecordWeightsDigest(ModelConfig* config);
  ~ModelBase();

  // A trainer of positions; one per thread (a trainer is not thread-safe).
  // Errors: building the classifier failed.
  absl::StatusOr<std::shared_ptr<ml::S3tTrainer>> NewTrainer() const;
  // The served model of a shard checkpoint. InvalidArgument/DataLoss: the
  // checkpoint does not fit the model.
  absl::StatusOr<std::shared_ptr<const ml::ShardModel>> ShardModelOf(
      absl::string_view checkpoint) const;
  // The base model alone (no user data in it).
  absl::StatusOr<std::shared_ptr<const ml::ShardModel>> BaseAlone() const;

 private:
  struct Weights;
  ModelBase(const ModelConfig& config, std::unique_ptr<const Weights> weights);

  const ModelConfig config_;
  const std::unique_ptr<const Weights> weights_;
};

}  // namespace oubli::coordinator

#endif  // OUBLI_COORDINATOR_MODEL_BASE_H_
