// Synthetic samples for the worker tests: 16 u8 features (a 1x4x4 image)
// and a label in [0, 3), ids "s0".."s<n-1>", all of owner "o"; and a small
// MLP config that takes them.
#ifndef OUBLI_TESTS_WORKER_ML_RANDOM_SAMPLES_H_
#define OUBLI_TESTS_WORKER_ML_RANDOM_SAMPLES_H_

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/types.h"

namespace oubli::ml {

inline std::vector<Sample> RandomSamples(int n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<Sample> samples;
  for (int i = 0; i < n; ++i) {
    Sample s;
    s.id = "s" + std::to_string(i);
    s.owner = "o";
    s.label = static_cast<int>(rng() % 3);
    s.features.resize(16);
    for (char& c : s.features) c = static_cast<char>(rng() % 256);
    samples.push_back(s);
  }
  return samples;
}

// Model "m": 1x4x4 inputs, 3 classes, two hidden layers of 8, LoRA rank 2,
// 3 shards of 2 slices, one epoch of batches of 4.
inline ModelConfig SmallMlpConfig() {
  ModelConfig c;
  c.model_id = "m";
  c.backbone.kind = BackboneKind::kMlp;
  c.backbone.input_height = 4;
  c.backbone.input_width = 4;
  c.backbone.num_classes = 3;
  c.backbone.mlp_hidden = {8, 8};
  c.backbone.lora.rank = 2;
  c.shards = 3;
  c.slices = 2;
  c.train.epochs_per_position = 1;
  c.train.batch_size = 4;
  return c;
}

}  // namespace oubli::ml

#endif  // OUBLI_TESTS_WORKER_ML_RANDOM_SAMPLES_H_
