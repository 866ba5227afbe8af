#include "tools/lm/decoder_scorer.h"

#include <torch/torch.h>

#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "worker/decoder_lm.h"
#include "worker/determinism.h"
#include "worker/model_factory.h"
#include "worker/safetensors.h"

namespace oubli::lm {
namespace {

template <typename Fn>
auto CatchTorch(absl::string_view what, Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const c10::Error& e) {
    return absl::InternalError(
        absl::StrCat(what, ": torch error: ", e.what_without_backtrace()));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat(what, ": ", e.what()));
  }
}

}  // namespace

DecoderScorer::DecoderScorer(
    ModelConfig config, std::vector<std::shared_ptr<worker::DecoderLm>> models)
    : config_(std::move(config)), models_(std::move(models)) {}

DecoderScorer::~DecoderScorer() = default;

absl::StatusOr<std::unique_ptr<DecoderScorer>> DecoderScorer::Create(
    const ModelConfig& config, const worker::NamedTensors& base_state,
    const std::vector<std::string>& checkpoints) {
  if (config.backbone.kind != BackboneKind::kDecoder ||
      config.backbone.decoder.objective != DecoderObjective::kCausalLm) {
    return absl::InvalidArgumentError("DecoderScorer needs a causal LM");
  }
  worker::PinThreads(config.determinism);
  std::vector<std::shared_ptr<worker::DecoderLm>> models;
  const size_t count = std::max<size_t>(checkpoints.size(), 1);
  for (size_t i = 0; i < count; ++i) {
    OUBLI_ASSIGN_OR_RETURN(std::shared_ptr<worker::AdapterModel> model,
                           worker::BuildModelOnBase(config, base_state));
    if (!checkpoints.empty()) {
      OUBLI_ASSIGN_OR_RETURN(worker::NamedTensors state,
                             worker::ParseSafetensors(checkpoints[i]));
      OUBLI_RETURN_IF_ERROR(model->LoadAdapterState(state));
    }
    model->eval();
    models.push_back(std::dynamic_pointer_cast<worker::DecoderLm>(model));
  }
  return std::unique_ptr<DecoderScorer>(
      new DecoderScorer(config, std::move(models)));
}

absl::StatusOr<std::vector<std::vector<float>>> DecoderScorer::Score(
    absl::Span<const std::vector<int32_t>> sequences) {
  size_t longest = 0;
  for (const auto& s : sequences) {
    if (s.size() < 2 ||
        s.size() > static_cast<size_t>(config_.backbone.decoder.context_length)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "a scored sequence needs 2..",
          config_.backbone.decoder.context_length, " tokens, got ", s.size()));
    }
    longest = std::max(longest, s.size());
  }
  if (sequences.empty()) return std::vector<std::vector<float>>{};
  return CatchTorch(
      "Score", [&]() -> absl::StatusOr<std::vector<std::vector<float>>> {
        torch::NoGradGuard no_grad;
        const auto n = static_cast<int64_t>(sequences.size());
        const auto t = static_cast<int64_t>(longest);
        torch::Tensor tokens = torch::zeros({n, t}, torch::kInt64);
        torch::Tensor mask = torch::zeros({n, t}, torch::kInt64);
        for (int64_t i = 0; i < n; ++i) {
          for (size_t j = 0; j < sequences[i].size(); ++j) {
            tokens[i][j] = sequences[i][j];
            mask[i][j] = 1;
          }
        }
        // log of the mean of the models' distributions.
        std::vector<torch::Tensor> log_probs;
        for (auto& model : models_) {
          log_probs.push_back(
              torch::log_softmax(model->forward(tokens, mask), -1));
        }
        torch::Tensor mixed =
            torch::logsumexp(torch::stack(log_probs), 0) -
            std::log(static_cast<double>(models_.size()));
        torch::Tensor targets = tokens.narrow(1, 1, t - 1).unsqueeze(-1);
        torch::Tensor picked = mixed.narrow(1, 0, t - 1)
                                   .gather(-1, targets)
                                   .squeeze(-1)
                                   .to(torch::kFloat32)
                                   .contiguous();
        std::vector<std::vector<float>> out(sequences.size());
        const float* p = picked.data_ptr<float>();
        for (int64_t i = 0; i < n; ++i) {
          out[i].assign(p + i * (t - 1),
                        p + i * (t - 1) + sequences[i].size() - 1);
        }
        return out;
      });
}

absl::StatusOr<std::vector<int32_t>> DecoderScorer::Generate(
    absl::Span<const int32_t> prompt, int max_tokens, int32_t stop_token) {
  const int context = config_.backbone.decoder.context_length;
  if (prompt.empty() || static_cast<int>(prompt.size()) >= context) {
    return absl::InvalidArgumentError(
        absl::StrCat("a prompt needs 1..", context - 1, " tokens"));
  }
  return CatchTorch("Generate", [&]() -> absl::StatusOr<std::vector<int32_t>> {
    torch::NoGradGuard no_grad;
    std::vector<int64_t> text(prompt.begin(), prompt.end());
    std::vector<int32_t> out;
    while (static_cast<int>(out.size()) < max_tokens &&
           static_cast<int>(text.size()) < context) {
      const auto t = static_cast<int64_t>(text.size());
      torch::Tensor tokens = torch::from_blob(text.data(), {1, t}, torch::kInt64);
      torch::Tensor mask = torch::ones({1, t}, torch::kInt64);
      torch::Tensor probs;
      for (auto& model : models_) {
        torch::Tensor p =
            torch::softmax(model->forward(tokens, mask).select(1, t - 1), -1);
        probs = probs.defined() ? probs + p : p;
      }
      // The first of equal maxima, as argmax does: ties break the same way
      // everywhere.
      const auto next = static_cast<int32_t>(probs.argmax(-1).item<int64_t>());
      if (next == stop_token) break;
      out.push_back(next);
      text.push_back(next);
    }
    return out;
  });
}

}  // namespace oubli::lm
