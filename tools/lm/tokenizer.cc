#include "tools/lm/tokenizer.h"

#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "tools/lm/sentencepiece_bridge.h"

namespace oubli::lm {

absl::StatusOr<std::string> TrainTokenizer(const std::vector<std::string>& lines,
                                           int vocab_size) {
  if (lines.empty()) {
    return absl::InvalidArgumentError("TrainTokenizer: no lines");
  }
  // Every option that could make two trainings differ is pinned: one
  // thread (the EM and merge loops reduce in thread order otherwise), all
  // sentences in the given order, and no NFKC table (identity
  // normalization: our text is ASCII, and the table is 240 KB).
  const std::map<std::string, std::string> options = {
      {"model_type", "bpe"},
      {"vocab_size", absl::StrCat(vocab_size)},
      {"num_threads", "1"},
      {"input_sentence_size", "0"},
      {"shuffle_input_sentence", "false"},
      {"character_coverage", "1.0"},
      {"normalization_rule_name", "identity"},
      {"max_sentence_length", "4096"},
      // Digits one per piece: years then share four tokens' worth of
      // structure instead of becoming 74 unrelated pieces.
      {"split_digits", "true"},
      {"minloglevel", "2"},  // the trainer logs every step otherwise
  };
  std::string model;
  if (std::string error = spm::Train(lines, options, &model); !error.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("TrainTokenizer: SentencePiece: ", error));
  }
  return model;
}

Tokenizer::Tokenizer(std::string model,
                     std::unique_ptr<spm::Processor> processor)
    : model_(std::move(model)), processor_(std::move(processor)) {}

Tokenizer::~Tokenizer() = default;

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromModel(
    std::string serialized_model) {
  auto processor = std::make_unique<spm::Processor>();
  if (std::string error = processor->Load(serialized_model); !error.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("not a SentencePiece model: ", error));
  }
  if (processor->bos_id() < 0 || processor->eos_id() < 0) {
    return absl::InvalidArgumentError(
        "the SentencePiece model has no BOS or EOS piece");
  }
  return std::unique_ptr<Tokenizer>(
      new Tokenizer(std::move(serialized_model), std::move(processor)));
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::Load(
    const std::string& path) {
  OUBLI_ASSIGN_OR_RETURN(std::string model, ReadFile(path));
  return FromModel(std::move(model));
}

absl::StatusOr<std::vector<int32_t>> Tokenizer::Encode(
    absl::string_view text) const {
  std::vector<int> ids;
  if (std::string error = processor_->Encode(std::string(text), &ids);
      !error.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("Encode: ", error));
  }
  return std::vector<int32_t>(ids.begin(), ids.end());
}

absl::StatusOr<std::string> Tokenizer::Decode(
    absl::Span<const int32_t> ids) const {
  std::vector<int> in;
  in.reserve(ids.size());
  for (int32_t id : ids) {
    if (id < 0 || id >= vocab_size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("Decode: id ", id, " is outside the vocabulary [0, ",
                       vocab_size(), ")"));
    }
    in.push_back(id);
  }
  std::string text;
  if (std::string error = processor_->Decode(in, &text); !error.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("Decode: ", error));
  }
  return text;
}

int Tokenizer::vocab_size() const { return processor_->vocab_size(); }
int32_t Tokenizer::bos_id() const { return processor_->bos_id(); }
int32_t Tokenizer::eos_id() const { return processor_->eos_id(); }

}  // namespace oubli::lm
