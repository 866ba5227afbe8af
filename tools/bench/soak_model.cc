#include "tools/bench/soak_model.h"

#include "common/status_macros.h"
#include "storage/datasets.h"
#include "tools/workflow/fashion_mnist.h"

namespace oubli::bench {

absl::StatusOr<ModelConfig> SoakModelConfig(const SoakModelOptions& options) {
  ModelConfig config = tools::DemoConfig(options.shards, options.slices,
                                         options.sequences, options.epochs);
  config.placement.by = Placement::kOwner;
  if (options.public_samples > 0) {
    OUBLI_ASSIGN_OR_RETURN(
        const std::vector<Sample> public_split,
        storage::LoadFashionMnist(options.dataset_dir, "train", 0,
                                  options.public_samples));
    OUBLI_RETURN_IF_ERROR(tools::PretrainBaseToFile(
        public_split, options.pretrain_epochs, options.base_path, &config));
  }
  return config;
}

}  // namespace oubli::bench
