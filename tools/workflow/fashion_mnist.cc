#include "tools/workflow/fashion_mnist.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/hash.h"
#include "common/status_macros.h"
#include "storage/datasets.h"
#include "worker/ml/s3t_trainer.h"
#include "worker/ml/safetensors.h"

namespace oubli::tools {

absl::StatusOr<FashionMnistSplits> LoadFashionMnistSplits(
    const std::string& dir, int64_t public_count, int64_t user_count,
    int64_t test_count) {
  FashionMnistSplits splits;
  OUBLI_ASSIGN_OR_RETURN(splits.public_split,
                         storage::LoadFashionMnist(dir, "train", 0,
                                                   public_count));
  OUBLI_ASSIGN_OR_RETURN(splits.user_data,
                         storage::LoadFashionMnist(dir, "train", public_count,
                                                   user_count));
  OUBLI_ASSIGN_OR_RETURN(splits.test,
                         storage::LoadFashionMnist(dir, "test", 0, test_count));
  return splits;
}

ModelConfig DemoConfig(int shards, int slices, int sequences, int epochs) {
  ModelConfig config;
  config.model_id = "fashion-mnist-mlp";
  config.backbone.kind = BackboneKind::kMlp;
  config.backbone.mlp_hidden = {256, 256, 256, 256};
  config.backbone.lora.rank = 8;
  config.backbone.lora.alpha = 16;
  config.shards = shards;
  config.slices = slices;
  config.sequences = sequences;
  config.train.epochs_per_position = epochs;
  config.train.batch_size = 64;
  config.train.learning_rate = 2e-3;
  return config;
}

absl::Status PretrainBaseToFile(const std::vector<Sample>& public_split,
                                int epochs, const std::string& path,
                                ModelConfig* config) {
  OUBLI_ASSIGN_OR_RETURN(
      ml::PositionData data,
      ml::MakePositionData(public_split, config->backbone.InputSize()));
  OUBLI_ASSIGN_OR_RETURN(ml::NamedTensors base,
                         ml::PretrainBase(*config, data, epochs, nullptr));
  OUBLI_ASSIGN_OR_RETURN(std::string bytes, ml::SerializeSafetensors(base));
  OUBLI_RETURN_IF_ERROR(ml::WriteSafetensorsFile(path, base));
  config->base.source = path;
  config->base.sha256 = Sha256Hex(bytes);
  config->base.provenance = absl::StrCat(
      "pretrained ", epochs, " epochs on the public split of ",
      public_split.size(), " samples (", public_split.front().id, " .. ",
      public_split.back().id, "), declared non-deletable");
  return absl::OkStatus();
}

absl::StatusOr<double> Accuracy(coordinator::Engine& engine,
                                const std::vector<Sample>& test) {
  if (test.empty()) return absl::InvalidArgumentError("empty test set");
  const int64_t width = engine.config().backbone.InputSize();
  constexpr int64_t kBatch = 1000;
  int64_t correct = 0;
  for (size_t begin = 0; begin < test.size(); begin += kBatch) {
    const size_t end = std::min(test.size(), begin + kBatch);
    const auto rows = static_cast<int64_t>(end - begin);
    std::vector<float> inputs(rows * width);
    for (int64_t r = 0; r < rows; ++r) {
      DecodeFeatures(test[begin + r], inputs.data() + r * width);
    }
    OUBLI_ASSIGN_OR_RETURN(coordinator::Prediction prediction,
                           engine.Predict(inputs, rows));
    for (int64_t r = 0; r < rows; ++r) {
      const float* p = prediction.probabilities.data() + r * prediction.classes;
      const int64_t best = std::max_element(p, p + prediction.classes) - p;
      correct += best == test[begin + r].label;
    }
  }
  return static_cast<double>(correct) / static_cast<double>(test.size());
}

}  // namespace oubli::tools
