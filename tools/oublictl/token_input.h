// What oublictl reads as token input: lists of token ids ("1,2,3"), files
// of them, and JSON lines of text samples tokenized with SentencePiece for
// `ingest --jsonl --tokenizer`. Client side only: the service takes ids.
#ifndef OUBLI_TOOLS_OUBLICTL_TOKEN_INPUT_H_
#define OUBLI_TOOLS_OUBLICTL_TOKEN_INPUT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "oubli/v1/oubli.pb.h"
#include "tools/tokenizer/sentencepiece_tokenizer.h"

namespace oubli::oublictl {

// "1,2,3" (ids separated by commas and/or blanks) -> the ids.
// InvalidArgument naming the item that is not an id below 2^31, or for no
// ids at all.
absl::StatusOr<std::vector<uint32_t>> ParseTokenList(absl::string_view text);
// One sequence per line as ParseTokenList reads it; blank lines and lines
// starting with '#' are skipped. Errors name the line.
absl::StatusOr<std::vector<std::vector<uint32_t>>> ParseTokenLines(
    absl::string_view text);

// What a decoder model takes, from its config as GetModel returns it.
struct TokenModel {
  std::string model_id;
  int vocab_size = 0;
  int context_length = 0;
  bool classify = false;  // a label per sample, in [0, num_classes)
  int num_classes = 0;
};
// FailedPrecondition for a model that is not a decoder.
absl::StatusOr<TokenModel> TokenModelOf(const oubli::v1::Model& model);

// Errors past this many lines are counted, not listed.
inline constexpr int kMaxListedLineErrors = 10;

// The samples of a JSON lines file (one oubli.tools.JsonlSample per line,
// proto/oubli/tools/jsonl_sample.proto) as token samples for `model`, with
// the special ids of SentencePieceTokenizer::Part (BOS first and EOS last,
// each when the tokenizer defines it: the rule the language-model workload
// follows too):
//   text            -> [BOS] its ids [EOS], prompt_tokens 0;
//   prompt, answer  -> [BOS] the prompt's ids, then the answer's [EOS],
//                      each tokenized on its own, prompt_tokens = the
//                      count before the answer (BOS included).
// EOS lets the model learn where a text or an answer ends, so generation
// can stop there. Blank lines are skipped.
// Every line is checked before anything is returned, so a malformed file
// sends nothing: InvalidArgument listing the bad lines as "FILE:N: reason"
// (the first kMaxListedLineErrors), also for a tokenizer whose vocabulary
// is larger than the model's and for no samples at all.
absl::StatusOr<std::vector<oubli::v1::Sample>> JsonlTokenSamples(
    absl::string_view file_name, absl::string_view contents,
    const tokenizer::SentencePieceTokenizer& tokenizer,
    const TokenModel& model);

}  // namespace oubli::oublictl

#endif  // OUBLI_TOOLS_OUBLICTL_TOKEN_INPUT_H_
