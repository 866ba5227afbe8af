#include "tools/oublictl/language_model_commands.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "tools/oublictl/token_input.h"
#include "tools/tokenizer/sentencepiece_tokenizer.h"

namespace oubli::oublictl {
namespace {

namespace v1 = ::oubli::v1;
using ::oubli::tokenizer::SentencePieceTokenizer;

// The tokenizer at `path`; a usage error naming `why` when there is none.
absl::StatusOr<std::unique_ptr<SentencePieceTokenizer>> LoadTokenizer(
    const std::string& path, absl::string_view why) {
  if (path.empty()) {
    return UsageError(absl::StrCat(why, " needs --tokenizer MODEL.model"));
  }
  auto tokenizer = SentencePieceTokenizer::Load(path);
  if (!tokenizer.ok()) {
    return absl::Status(
        tokenizer.status().code(),
        absl::StrCat("--tokenizer: ", tokenizer.status().message()));
  }
  return tokenizer;
}

// Token ids given on the command line; usage errors name `what`.
absl::StatusOr<std::vector<uint32_t>> TokenArgument(absl::string_view text,
                                                    absl::string_view what) {
  absl::StatusOr<std::vector<uint32_t>> ids = ParseTokenList(text);
  if (!ids.ok()) {
    return UsageError(absl::StrCat(what, ": ", ids.status().message()));
  }
  return ids;
}

// The ids' text under `tokenizer`, for display. An id past its pieces (a
// model's vocabulary may be larger than its tokenizer's) shows as <id N>.
std::string TextOf(const SentencePieceTokenizer& tokenizer,
                   const google::protobuf::RepeatedField<uint32_t>& ids) {
  std::string text;
  std::vector<int> run;
  auto flush = [&] {
    if (run.empty()) return;
    absl::StatusOr<std::string> decoded = tokenizer.Decode(run);
    absl::StrAppend(&text, decoded.ok() ? *decoded : "<?>");
    run.clear();
  };
  for (uint32_t id : ids) {
    if (id < static_cast<uint32_t>(tokenizer.vocab_size())) {
      run.push_back(static_cast<int>(id));
    } else {
      flush();
      absl::StrAppend(&text, "<id ", id, ">");
    }
  }
  flush();
  return text;
}

// `message` as PrintJson prints it, with a "text" field added.
void PrintJsonWithText(const google::protobuf::Message& message,
                       const std::string& text) {
  std::string json;
  google::protobuf::Struct object;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  if (!google::protobuf::util::MessageToJsonString(message, &json, options)
           .ok() ||
      !google::protobuf::util::JsonStringToMessage(json, &object).ok()) {
    return PrintJson(message);
  }
  (*object.mutable_fields())["text"].set_string_value(text);
  PrintJson(object);
}

// The model that answered: its fingerprint and how many shards served.
void PrintServed(
    const std::string& fingerprint, bool from_base,
    const google::protobuf::RepeatedPtrField<v1::ServedShard>& served) {
  const int serving = static_cast<int>(std::count_if(
      served.begin(), served.end(),
      [](const v1::ServedShard& shard) { return shard.served(); }));
  std::printf(
      "model fingerprint %s  shards served %d/%d%s\n", fingerprint.c_str(),
      serving, served.size(),
      from_base ? "  (the public base model answered: base_fallback)" : "");
}

}  // namespace

absl::Status IngestJsonl(Client& client, const IngestJsonlFlags& flags) {
  OUBLI_ASSIGN_OR_RETURN(const std::string model,
                         RequireFlag(flags.model, "model"));
  OUBLI_ASSIGN_OR_RETURN(auto tokenizer,
                         LoadTokenizer(flags.tokenizer, "ingest --jsonl"));
  OUBLI_ASSIGN_OR_RETURN(const v1::Model described, GetModel(client, model));
  OUBLI_ASSIGN_OR_RETURN(const TokenModel token_model, TokenModelOf(described));
  OUBLI_ASSIGN_OR_RETURN(const std::string contents,
                         ReadWholeFile(flags.jsonl, "jsonl"));
  OUBLI_ASSIGN_OR_RETURN(
      std::vector<v1::Sample> samples,
      JsonlTokenSamples(flags.jsonl, contents, *tokenizer, token_model));
  return StreamSamples(
      client, model, samples.size(), flags.batch, flags.json,
      [&](size_t i, v1::Sample* out) { out->Swap(&samples[i]); });
}

absl::Status Score(Client& client, const ScoreFlags& flags) {
  OUBLI_ASSIGN_OR_RETURN(const std::string model,
                         RequireFlag(flags.model, "model"));
  v1::ScoreRequest request;
  request.set_model_id(model);
  for (const std::string& list : flags.sequences) {
    OUBLI_ASSIGN_OR_RETURN(const std::vector<uint32_t> ids,
                           TokenArgument(list, "score"));
    request.add_sequences()->mutable_tokens()->Add(ids.begin(), ids.end());
  }
  if (!flags.tokens_file.empty()) {
    OUBLI_ASSIGN_OR_RETURN(const std::string text,
                           ReadWholeFile(flags.tokens_file, "tokens_file"));
    absl::StatusOr<std::vector<std::vector<uint32_t>>> sequences =
        ParseTokenLines(text);
    if (!sequences.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--tokens_file ", flags.tokens_file, ": ",
                       sequences.status().message()));
    }
    for (const std::vector<uint32_t>& ids : *sequences) {
      request.add_sequences()->mutable_tokens()->Add(ids.begin(), ids.end());
    }
  }
  if (request.sequences_size() == 0) {
    return UsageError(
        "score needs token sequences: IDS... (e.g. 1,2,3 4,5) or "
        "--tokens_file FILE");
  }
  std::unique_ptr<SentencePieceTokenizer> tokenizer;
  if (!flags.tokenizer.empty()) {
    OUBLI_ASSIGN_OR_RETURN(tokenizer, LoadTokenizer(flags.tokenizer, "score"));
  }
  v1::ScoreResponse response;
  OUBLI_RETURN_IF_ERROR(
      RpcStatus(client.stub().Score(client.Context().get(), request, &response),
                "Score"));
  if (flags.json) {
    PrintJson(response);
    return absl::OkStatus();
  }
  for (int i = 0; i < response.sequences_size(); ++i) {
    const v1::ScoredSequence& scored = response.sequences(i);
    const int predicted = scored.token_log_probs_size();
    std::printf("sequence %d: %d tokens  log p %.6f  (mean %.4f per token)\n",
                i, request.sequences(i).tokens_size(), scored.total_log_prob(),
                predicted > 0 ? scored.total_log_prob() / predicted : 0.0);
    if (tokenizer != nullptr) {
      std::printf("  text   %s\n",
                  TextOf(*tokenizer, request.sequences(i).tokens()).c_str());
    }
    std::printf("  log p  %s\n", absl::StrJoin(scored.token_log_probs(), " ",
                                               [](std::string* out, float p) {
                                                 absl::StrAppendFormat(
                                                     out, "%.4f", p);
                                               })
                                     .c_str());
  }
  PrintServed(response.fingerprint(), response.from_base(), response.served());
  return absl::OkStatus();
}

absl::Status Generate(Client& client, const GenerateFlags& flags) {
  OUBLI_ASSIGN_OR_RETURN(const std::string model,
                         RequireFlag(flags.model, "model"));
  v1::GenerateRequest request;
  request.set_model_id(model);
  if (flags.prompt_tokens.empty() == flags.prompt.empty()) {
    return UsageError(
        "generate needs either --prompt_tokens 1,2,3 or --prompt TEXT (with "
        "--tokenizer)");
  }
  std::unique_ptr<SentencePieceTokenizer> tokenizer;
  if (!flags.tokenizer.empty() || !flags.prompt.empty()) {
    OUBLI_ASSIGN_OR_RETURN(tokenizer,
                           LoadTokenizer(flags.tokenizer, "generate --prompt"));
  }
  if (!flags.prompt.empty()) {
    // As ingest --jsonl starts a sequence (BOS when the tokenizer has one),
    // without EOS: the text goes on.
    OUBLI_ASSIGN_OR_RETURN(
        const std::vector<int32_t> ids,
        tokenizer->Encode(flags.prompt, SentencePieceTokenizer::Part::kPrompt));
    request.mutable_prompt()->Add(ids.begin(), ids.end());
  } else {
    OUBLI_ASSIGN_OR_RETURN(
        const std::vector<uint32_t> ids,
        TokenArgument(absl::StrJoin(flags.prompt_tokens, ","),
                      "--prompt_tokens"));
    request.mutable_prompt()->Add(ids.begin(), ids.end());
  }
  request.set_max_tokens(flags.max_tokens);
  request.set_temperature(flags.temperature);
  request.set_seed(flags.seed);
  if (!flags.stop_tokens.empty()) {
    OUBLI_ASSIGN_OR_RETURN(
        const std::vector<uint32_t> ids,
        TokenArgument(absl::StrJoin(flags.stop_tokens, ","), "--stop_tokens"));
    request.mutable_stop_tokens()->Add(ids.begin(), ids.end());
  } else if (tokenizer != nullptr && tokenizer->eos_id() >= 0) {
    // Samples from ingest --jsonl end with it: so does a continuation.
    request.add_stop_tokens(static_cast<uint32_t>(tokenizer->eos_id()));
  }
  v1::GenerateResponse response;
  OUBLI_RETURN_IF_ERROR(RpcStatus(
      client.stub().Generate(client.Context().get(), request, &response),
      "Generate"));
  const std::string text =
      tokenizer != nullptr ? TextOf(*tokenizer, response.tokens()) : "";
  if (flags.json) {
    if (tokenizer != nullptr) {
      PrintJsonWithText(response, text);
    } else {
      PrintJson(response);
    }
    return absl::OkStatus();
  }
  double total = 0;
  for (float p : response.token_log_probs()) total += p;
  std::printf(
      "generated %d tokens (%s)  log p %.6f\n", response.tokens_size(),
      v1::GenerateResponse::FinishReason_Name(response.finish_reason()).c_str(),
      total);
  std::printf("  tokens %s\n", absl::StrJoin(response.tokens(), ",").c_str());
  if (tokenizer != nullptr) std::printf("  text   %s\n", text.c_str());
  PrintServed(response.fingerprint(), response.from_base(), response.served());
  return absl::OkStatus();
}

}  // namespace oubli::oublictl
