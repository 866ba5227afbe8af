// Synthetic samples for the worker tests: 16 u8 features (a 1x4x4 image)
// and a label in [0, 3), ids "s0".."s<n-1>", all of owner "o".
#ifndef OUBLI_TESTS_WORKER_RANDOM_SAMPLES_H_
#define OUBLI_TESTS_WORKER_RANDOM_SAMPLES_H_

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "common/types.h"

namespace oubli::worker {

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

}  // namespace oubli::worker

#endif  // OUBLI_TESTS_WORKER_RANDOM_SAMPLES_H_
