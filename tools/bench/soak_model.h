// The model of `oubli-bench soak` as the service demo makes it: the demo's
// MLP + LoRA config and, unless public_samples is 0, a base pretrained on
// Fashion-MNIST train[0, public_samples) and written as safetensors. Kept
// apart from soak_bench.cc because pretraining needs LibTorch and the soak
// talks gRPC (see tools/CMakeLists.txt on the two libraries).
#ifndef OUBLI_TOOLS_BENCH_SOAK_MODEL_H_
#define OUBLI_TOOLS_BENCH_SOAK_MODEL_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "common/config.h"

namespace oubli::bench {

struct SoakModelOptions {
  std::string dataset_dir;
  int64_t public_samples = 10000;  // 0: a seeded base, no pretraining
  int pretrain_epochs = 3;
  int shards = 4;
  int slices = 4;
  int sequences = 2;
  int epochs = 2;         // per S3T position
  std::string base_path;  // where the pretrained base is written
};

// Placement by owner; the retrain policy and base_fallback are left to the
// caller. The domain config, not the API's: the API's protos bring gRPC's
// -pthread, which the torch PCH of this file's library cannot take.
absl::StatusOr<ModelConfig> SoakModelConfig(const SoakModelOptions& options);

}  // namespace oubli::bench

#endif  // OUBLI_TOOLS_BENCH_SOAK_MODEL_H_
