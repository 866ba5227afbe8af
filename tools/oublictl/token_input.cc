#include "tools/oublictl/token_input.h"

#include <google/protobuf/util/json_util.h>

#include <cmath>
#include <map>
#include <tuple>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/types.h"
#include "oubli/tools/jsonl_sample.pb.h"

namespace oubli::oublictl {
namespace {

namespace v1 = ::oubli::v1;
using ::oubli::tokenizer::SentencePieceTokenizer;

// One line's sample, or why the line is refused (without its position).
absl::StatusOr<v1::Sample> LineSample(absl::string_view line,
                                      const SentencePieceTokenizer& tokenizer,
                                      const TokenModel& model) {
  oubli::tools::JsonlSample in;
  const auto parsed =
      google::protobuf::util::JsonStringToMessage(std::string(line), &in);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "not a JSON object of id, owner, text or prompt and answer, label, "
        "deletion_risk (",
        parsed.ToString(), ")"));
  }
  if (absl::Status valid = ValidateSampleId(in.id()); !valid.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("id: ", valid.message()));
  }
  if (absl::Status valid = ValidateOwner(in.owner()); !valid.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("owner: ", valid.message()));
  }
  const bool pair = in.has_prompt() || in.has_answer();
  if (in.has_text() == pair) {
    return absl::InvalidArgumentError("give either text, or prompt and answer");
  }
  if (pair && !(in.has_prompt() && in.has_answer())) {
    return absl::InvalidArgumentError(
        in.has_prompt() ? "prompt without answer" : "answer without prompt");
  }
  // Empty parts would teach nothing: a prompt alone is context.
  for (const auto& [name, present, value] :
       {std::tuple<const char*, bool, const std::string&>{"text", in.has_text(),
                                                          in.text()},
        {"prompt", in.has_prompt(), in.prompt()},
        {"answer", in.has_answer(), in.answer()}}) {
    if (present && value.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(name, " is empty"));
    }
  }
  v1::Sample sample;
  sample.set_id(in.id());
  sample.set_owner(in.owner());
  if (model.classify && !in.has_label()) {
    return absl::InvalidArgumentError(
        absl::StrCat("label is required: model '", model.model_id,
                     "' classifies into ", model.num_classes, " classes"));
  }
  if (in.has_label()) {
    if (in.label() < 0 || (model.classify && in.label() >= model.num_classes)) {
      return absl::InvalidArgumentError(
          model.classify
              ? absl::StrCat("label ", in.label(), " is outside [0, ",
                             model.num_classes, ")")
              : absl::StrCat("label ", in.label(), " is negative"));
    }
    sample.set_label(in.label());
  }
  if (in.has_deletion_risk()) {
    // Written so that NaN fails too.
    if (!(in.deletion_risk() >= 0 && in.deletion_risk() <= 1)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "deletion_risk ", in.deletion_risk(), " is outside [0, 1]"));
    }
    sample.set_deletion_risk(static_cast<float>(in.deletion_risk()));
  }
  using Part = SentencePieceTokenizer::Part;
  std::vector<int32_t> ids;
  if (in.has_text()) {
    absl::StatusOr<std::vector<int32_t>> text = tokenizer.Encode(in.text());
    if (!text.ok()) return text.status();
    if (text->empty()) {
      return absl::InvalidArgumentError("text tokenizes to no tokens");
    }
    ids = tokenizer.Framed(*text, Part::kText);
  } else {
    absl::StatusOr<std::vector<int32_t>> prompt =
        tokenizer.Encode(in.prompt(), Part::kPrompt);
    if (!prompt.ok()) return prompt.status();
    absl::StatusOr<std::vector<int32_t>> answer = tokenizer.Encode(in.answer());
    if (!answer.ok()) return answer.status();
    if (answer->empty()) {
      return absl::InvalidArgumentError("answer tokenizes to no tokens");
    }
    ids = *std::move(prompt);
    sample.set_prompt_tokens(static_cast<int32_t>(ids.size()));
    const std::vector<int32_t> end = tokenizer.Framed(*answer, Part::kAnswer);
    ids.insert(ids.end(), end.begin(), end.end());
  }
  if (static_cast<int64_t>(ids.size()) > model.context_length) {
    return absl::InvalidArgumentError(
        absl::StrCat(ids.size(), " tokens, more than the context of model '",
                     model.model_id, "' (", model.context_length, ")"));
  }
  sample.mutable_tokens()->Add(ids.begin(), ids.end());
  return sample;
}

}  // namespace

absl::StatusOr<std::vector<uint32_t>> ParseTokenList(absl::string_view text) {
  std::vector<uint32_t> ids;
  for (absl::string_view item :
       absl::StrSplit(text, absl::ByAnyChar(", \t"), absl::SkipEmpty())) {
    uint32_t id;
    if (!absl::SimpleAtoi(item, &id) || id > 0x7FFFFFFFu) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", item, "' is not a token id (0..2147483647)"));
    }
    ids.push_back(id);
  }
  if (ids.empty()) {
    return absl::InvalidArgumentError("no token ids (expected e.g. 1,2,3)");
  }
  return ids;
}

absl::StatusOr<std::vector<std::vector<uint32_t>>> ParseTokenLines(
    absl::string_view text) {
  std::vector<std::vector<uint32_t>> sequences;
  int number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    absl::StatusOr<std::vector<uint32_t>> ids = ParseTokenList(line);
    if (!ids.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("line ", number, ": ", ids.status().message()));
    }
    sequences.push_back(*std::move(ids));
  }
  return sequences;
}

absl::StatusOr<TokenModel> TokenModelOf(const v1::Model& model) {
  const v1::ModelConfig& config = model.config();
  if (config.backbone() != v1::BACKBONE_KIND_DECODER) {
    return absl::FailedPreconditionError(absl::StrCat(
        "model '", model.model_id(), "' is not a decoder (backbone ",
        v1::BackboneKind_Name(config.backbone()),
        "): token samples are for language models"));
  }
  TokenModel out;
  out.model_id = model.model_id();
  out.vocab_size = config.decoder().vocab_size();
  out.context_length = config.decoder().context_length();
  out.classify = config.decoder().objective() == v1::DECODER_OBJECTIVE_CLASSIFY;
  out.num_classes = config.num_classes();
  return out;
}

absl::StatusOr<std::vector<v1::Sample>> JsonlTokenSamples(
    absl::string_view file_name, absl::string_view contents,
    const SentencePieceTokenizer& tokenizer, const TokenModel& model) {
  if (tokenizer.vocab_size() > model.vocab_size) {
    // Its larger ids would be refused sample by sample: not this model's.
    return absl::InvalidArgumentError(absl::StrCat(
        "the tokenizer has ", tokenizer.vocab_size(),
        " pieces, more than the vocabulary of model '", model.model_id, "' (",
        model.vocab_size, "): it is not this model's tokenizer"));
  }
  std::vector<v1::Sample> samples;
  std::vector<std::string> errors;
  int bad_lines = 0;
  std::map<std::string, int> line_of_id;
  int number = 0;
  for (absl::string_view line : absl::StrSplit(contents, '\n')) {
    ++number;
    if (absl::StripAsciiWhitespace(line).empty()) continue;
    absl::StatusOr<v1::Sample> sample = LineSample(line, tokenizer, model);
    absl::Status refused = sample.status();
    if (sample.ok()) {
      const auto [it, first] = line_of_id.emplace(sample->id(), number);
      if (!first) {
        refused = absl::InvalidArgumentError(absl::StrCat(
            "id '", sample->id(), "' is also on line ", it->second));
      }
    }
    if (!refused.ok()) {
      if (++bad_lines <= kMaxListedLineErrors) {
        errors.push_back(
            absl::StrCat(file_name, ":", number, ": ", refused.message()));
      }
      continue;
    }
    samples.push_back(*std::move(sample));
  }
  if (bad_lines > kMaxListedLineErrors) {
    errors.push_back(absl::StrCat("... and ", bad_lines - kMaxListedLineErrors,
                                  " more bad lines"));
  }
  if (!errors.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(bad_lines, " bad line", bad_lines == 1 ? "" : "s",
                     ", nothing sent:\n", absl::StrJoin(errors, "\n")));
  }
  if (samples.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(file_name, ": no samples"));
  }
  return samples;
}

}  // namespace oubli::oublictl
