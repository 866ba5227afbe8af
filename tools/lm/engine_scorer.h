// An LmScorer answered by the in-process engine's served ensemble
// (Engine::Score and greedy Engine::Generate).
#ifndef OUBLI_TOOLS_LM_ENGINE_SCORER_H_
#define OUBLI_TOOLS_LM_ENGINE_SCORER_H_

#include "coordinator/engine.h"
#include "tools/lm/forget_metrics.h"

namespace oubli::lm {

class EngineScorer : public LmScorer {
 public:
  explicit EngineScorer(coordinator::Engine& engine) : engine_(engine) {}

  absl::StatusOr<std::vector<std::vector<float>>> Score(
      absl::Span<const std::vector<int32_t>> sequences) override;
  absl::StatusOr<std::vector<int32_t>> Generate(
      absl::Span<const int32_t> prompt, int max_tokens,
      int32_t stop_token) override;

  // The fingerprint of the model that answered last (empty before a call):
  // a report names the model its figures are of.
  const std::string& fingerprint() const { return fingerprint_; }

 private:
  coordinator::Engine& engine_;
  std::string fingerprint_;
};

}  // namespace oubli::lm

#endif  // OUBLI_TOOLS_LM_ENGINE_SCORER_H_
