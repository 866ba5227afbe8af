// Deterministic S3T training of one prefix position.
//
// Position i of a slice order trains the adapters of layer group i (from the
// top) plus the head, on the union of the prefix's slices, starting from the
// checkpoint of the prefix one shorter. Every random choice is derived from
// (seed, shard, prefix order, epoch), the data arrive in sorted-id order and
// threads are pinned, so a position's output depends only on its inputs:
// retraining after a deletion reproduces training from scratch bit for bit.
#ifndef OUBLI_WORKER_ML_S3T_TRAINER_H_
#define OUBLI_WORKER_ML_S3T_TRAINER_H_

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/config.h"
#include "common/types.h"
#include "worker/ml/adapter_model.h"
#include "worker/ml/position_data.h"

namespace oubli::ml {

// Frozen base weights (and the head's initial value) for a config: seeded,
// or loaded by name from the safetensors file in config.base.source (its
// sha256 checked when the config records one; a decoder's file may be a
// Hugging Face checkpoint, see LoadBaseWeights).
absl::StatusOr<NamedTensors> LoadBaseState(const ModelConfig& config);

// For a file source without a recorded digest, reads the file and records
// its SHA-256 in config->base.sha256, so a later change to the file is
// refused instead of silently changing the weights.
absl::Status RecordBaseWeightsDigest(ModelConfig* config);

// Trains base + head (no adapters) on a public, non-deletable split. The
// result is a base state; record its provenance in config.base.
absl::StatusOr<NamedTensors> PretrainBase(const ModelConfig& config,
                                          const PositionData& public_data,
                                          int epochs, TrainStats* stats);

class S3tTrainer {
 public:
  static absl::StatusOr<std::unique_ptr<S3tTrainer>> Create(
      const ModelConfig& config, NamedTensors base_state);

  // Trains the last position of `prefix_order` for `shard`. `parent` is the
  // checkpoint of prefix_order minus its last slice (empty for length 1:
  // the shard's seeded initial adapters). Returns the checkpoint bytes:
  // deterministic safetensors of the full adapter state (all groups + head).
  // An empty union trains nothing and returns the starting state. Returns
  // Cancelled as soon as `cancelled` (polled every batch) says so.
  absl::StatusOr<std::string> TrainPosition(
      int shard, absl::Span<const int> prefix_order, absl::string_view parent,
      const PositionData& data, TrainStats* stats,
      const std::function<bool()>& cancelled = nullptr);

  const ModelConfig& config() const { return config_; }

 private:
  S3tTrainer(ModelConfig config, NamedTensors base_state,
             std::shared_ptr<AdapterModel> model);

  const ModelConfig config_;
  const NamedTensors base_state_;
  const std::vector<std::vector<int>> groups_;  // per position, layers
  absl::Mutex mu_;  // the module is reused across calls
  std::shared_ptr<AdapterModel> model_ ABSL_GUARDED_BY(mu_);
};

// Seed of everything random at (shard, prefix, epoch) for one purpose.
uint64_t PositionSeed(uint64_t seed, absl::string_view purpose, int shard,
                      absl::Span<const int> prefix_order, int epoch);

// A seeded permutation of [0, n) (Fisher-Yates over SplitMix64).
std::vector<int64_t> SeededPermutation(int64_t n, uint64_t seed);

}  // namespace oubli::ml

#endif  // OUBLI_WORKER_ML_S3T_TRAINER_H_
