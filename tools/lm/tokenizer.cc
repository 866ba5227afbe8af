#include "tools/lm/tokenizer.h"

#include <map>

#include "absl/strings/str_cat.h"
#include "tools/tokenizer/sentencepiece_tokenizer.h"

namespace oubli::lm {

absl::StatusOr<std::string> TrainTokenizer(
    const std::vector<std::string>& lines, int vocab_size) {
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
  absl::StatusOr<std::string> model =
      tokenizer::TrainSentencePiece(lines, options);
  if (!model.ok()) {
    return absl::Status(
        model.status().code(),
        absl::StrCat("TrainTokenizer: ", model.status().message()));
  }
  return model;
}

}  // namespace oubli::lm
