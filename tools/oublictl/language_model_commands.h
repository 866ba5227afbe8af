// oublictl's commands for decoder language models: ingest --jsonl (text
// samples tokenized with SentencePiece), score and generate. Each takes its
// flags' values (main.cc owns the flags) and prints its result.
#ifndef OUBLI_TOOLS_OUBLICTL_LANGUAGE_MODEL_COMMANDS_H_
#define OUBLI_TOOLS_OUBLICTL_LANGUAGE_MODEL_COMMANDS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "tools/oublictl/client.h"

namespace oubli::oublictl {

struct IngestJsonlFlags {
  std::string model;
  std::string jsonl;      // JSON lines, token_input.h's format
  std::string tokenizer;  // SentencePiece .model
  int batch = 1000;       // samples per streamed message
  bool json = false;
};
// Checks every line against the model before anything is sent.
absl::Status IngestJsonl(Client& client, const IngestJsonlFlags& flags);

struct ScoreFlags {
  std::string model;
  std::vector<std::string> sequences;  // "1,2,3" each
  std::string tokens_file;             // one sequence per line
  std::string tokenizer;               // optional: prints each text
  bool json = false;
};
absl::Status Score(Client& client, const ScoreFlags& flags);

struct GenerateFlags {
  std::string model;
  std::vector<std::string> prompt_tokens;  // ids, or
  std::string prompt;                      // text (needs the tokenizer)
  std::string tokenizer;  // prints the text; its EOS stops by default
  int max_tokens = 16;
  double temperature = 0;
  uint64_t seed = 0;
  std::vector<std::string> stop_tokens;
  bool json = false;
};
absl::Status Generate(Client& client, const GenerateFlags& flags);

}  // namespace oubli::oublictl

#endif  // OUBLI_TOOLS_OUBLICTL_LANGUAGE_MODEL_COMMANDS_H_
