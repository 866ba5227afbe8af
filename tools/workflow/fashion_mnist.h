// The Fashion-MNIST workflow shared by oubli-demo and oubli-bench: load the
// splits, pretrain the frozen base on a public split, measure accuracy.
#ifndef OUBLI_TOOLS_WORKFLOW_FASHION_MNIST_H_
#define OUBLI_TOOLS_WORKFLOW_FASHION_MNIST_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/config.h"
#include "common/types.h"
#include "coordinator/engine.h"

namespace oubli::tools {

struct FashionMnistSplits {
  // Declared public and non-deletable: used only to pretrain the base.
  std::vector<Sample> public_split;
  std::vector<Sample> user_data;  // deletable, with synthetic owners
  std::vector<Sample> test;
};

// train[0, public_count) is the public split, the next user_count samples
// (-1: the rest) are user data with one owner per 20 samples; test_count
// (-1: all) from the test split.
absl::StatusOr<FashionMnistSplits> LoadFashionMnistSplits(
    const std::string& dir, int64_t public_count, int64_t user_count,
    int64_t test_count);

// The MLP config the demo and benchmarks use.
ModelConfig DemoConfig(int shards, int slices, int sequences, int epochs);

// Pretrains the base on the public split, writes it as safetensors to
// `path` and records source, sha256 and provenance in `config->base`.
absl::Status PretrainBaseToFile(const std::vector<Sample>& public_split,
                                int epochs, const std::string& path,
                                ModelConfig* config);

// Ensemble top-1 accuracy of the served model on `test`.
absl::StatusOr<double> Accuracy(coordinator::Engine& engine,
                                const std::vector<Sample>& test);

}  // namespace oubli::tools

#endif  // OUBLI_TOOLS_WORKFLOW_FASHION_MNIST_H_
