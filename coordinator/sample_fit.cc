#include "coordinator/sample_fit.h"

#include <cstdint>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/types.h"

namespace oubli::coordinator {
namespace {

absl::Status LabelFits(const Sample& sample, const BackboneConfig& backbone) {
  if (sample.label < 0 || sample.label >= backbone.num_classes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "label ", sample.label, " is outside [0, ", backbone.num_classes, ")"));
  }
  return absl::OkStatus();
}

absl::Status TokensFit(const Sample& sample, const BackboneConfig& backbone,
                       absl::string_view model_id) {
  const DecoderConfig& decoder = backbone.decoder;
  if (!HoldsTokens(sample.feature_type)) {
    return absl::InvalidArgumentError(
        absl::StrCat("holds features; model '", model_id,
                     "' is a language model and takes tokens"));
  }
  const std::vector<int32_t> tokens =
      DecodeTokens(sample.feature_type, sample.features);
  const auto length = static_cast<int64_t>(tokens.size());
  if (length == 0) return absl::InvalidArgumentError("has no tokens");
  if (length > decoder.context_length) {
    return absl::InvalidArgumentError(
        absl::StrCat("has ", length, " tokens; model '", model_id,
                     "' has a context of ", decoder.context_length));
  }
  OUBLI_RETURN_IF_ERROR(CheckVocabulary(tokens, decoder.vocab_size));
  if (decoder.objective == DecoderObjective::kClassify) {
    return LabelFits(sample, backbone);
  }
  // Token t is learned from tokens 0..t-1, so the first is never learned.
  if (length < 2) {
    return absl::InvalidArgumentError(
        "has 1 token; a language model learns from 2 or more");
  }
  if (sample.prompt_tokens < 0 || sample.prompt_tokens > length - 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "prompt_tokens ", sample.prompt_tokens, " leaves no token to learn (",
        length, " tokens: at most ", length - 1, ")"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckSampleFits(const Sample& sample,
                             const BackboneConfig& backbone,
                             absl::string_view model_id) {
  if (backbone.kind == BackboneKind::kDecoder) {
    return TokensFit(sample, backbone, model_id);
  }
  if (HoldsTokens(sample.feature_type)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "holds tokens; model '", model_id, "' takes image features"));
  }
  const int64_t width = backbone.InputSize();
  if (sample.NumFeatures() != width) {
    return absl::InvalidArgumentError(
        absl::StrCat("has ", sample.NumFeatures(), " features; model '",
                     model_id, "' expects ", width));
  }
  return LabelFits(sample, backbone);
}

}  // namespace oubli::coordinator
