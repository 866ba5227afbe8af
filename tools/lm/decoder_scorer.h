// An LmScorer computed here on decoder models: the mean of the next-token
// distributions of a set of adapter checkpoints over one base, with the
// engine's own ensemble code (coordinator/lm_ensemble), or the base alone. For the public base model's
// own figures, and for tests that measure without an engine.
#ifndef OUBLI_TOOLS_LM_DECODER_SCORER_H_
#define OUBLI_TOOLS_LM_DECODER_SCORER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/config.h"
#include "tools/lm/forget_metrics.h"
#include "worker/ml/adapter_model.h"

namespace oubli::ml {
class ShardModel;
}  // namespace oubli::ml

namespace oubli::lm {

class DecoderScorer : public LmScorer {
 public:
  // `checkpoints`: adapter states (safetensors bytes, e.g. what
  // S3tTrainer::TrainPosition returns), one model each; none: the base with
  // its seeded adapters, whose B = 0 leaves the base unchanged.
  // InvalidArgument: a causal LM config is needed, or a checkpoint does not
  // fit it.
  static absl::StatusOr<std::unique_ptr<DecoderScorer>> Create(
      const ModelConfig& config, const ml::NamedTensors& base_state,
      const std::vector<std::string>& checkpoints);
  ~DecoderScorer() override;

  absl::StatusOr<std::vector<std::vector<float>>> Score(
      absl::Span<const std::vector<int32_t>> sequences) override;
  absl::StatusOr<std::vector<int32_t>> Generate(
      absl::Span<const int32_t> prompt, int max_tokens,
      int32_t stop_token) override;

 private:
  DecoderScorer(ModelConfig config,
                std::vector<std::shared_ptr<const ml::ShardModel>> models);
  const ModelConfig config_;
  const std::vector<std::shared_ptr<const ml::ShardModel>> models_;
};

}  // namespace oubli::lm

#endif  // OUBLI_TOOLS_LM_DECODER_SCORER_H_
