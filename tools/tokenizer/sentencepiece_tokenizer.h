// SentencePiece (Debian's libsentencepiece), the tokenizer family of
// Llama-style models, for every tool that turns text into a model's token
// ids: oublictl (ingest --jsonl, score, generate) and the language-model
// workload (tools/lm: its tokenizer is trained here). The service itself
// takes token ids.
//
// The library lives in a module of its own, liboubli_sentencepiece.so
// (sentencepiece_module.h), loaded with dlopen(RTLD_DEEPBIND) the first
// time a tokenizer is needed, because no program of ours can link it:
//  - libsentencepiece carries its own protobuf-lite (3.14) and exports it,
//    while gRPC and the engine link the system's libprotobuf (3.21): in one
//    symbol scope one library's calls bind to the other's copy and the
//    process aborts before main. Under RTLD_DEEPBIND the module and
//    libsentencepiece bind to their own symbols first;
//  - sentencepiece_processor.h declares `namespace absl { using
//    std::string_view; }`, which collides with Debian Abseil's own class:
//    no file that includes Abseil can include it.
// A program that never tokenizes never loads the module, so oublictl's
// other commands start as fast as before, and the trainer the module also
// links costs nothing there.
#ifndef OUBLI_TOOLS_TOKENIZER_SENTENCEPIECE_TOKENIZER_H_
#define OUBLI_TOOLS_TOKENIZER_SENTENCEPIECE_TOKENIZER_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

struct OubliSentencePiece;  // sentencepiece_module.h

namespace oubli::tokenizer {

// The module, loaded (it stays loaded for the process: a library with a
// protobuf runtime inside is not safely unloaded).
class SentencePieceModule;

// The module's file name, and the variable that names its path.
inline constexpr char kSentencePieceModuleName[] = "liboubli_sentencepiece.so";
inline constexpr char kSentencePieceModuleVariable[] =
    "OUBLI_SENTENCEPIECE_MODULE";

// The module at `path`. FailedPrecondition naming the path when it cannot
// be loaded or is not this release's module (it lacks the entry point).
absl::StatusOr<std::shared_ptr<const SentencePieceModule>>
LoadSentencePieceModule(const std::string& path);

// The module every call below uses when given none: the path in
// $OUBLI_SENTENCEPIECE_MODULE when set; otherwise the first that exists of
// kSentencePieceModuleName beside the executable (an installed layout, as
// the Docker image's) and the build tree's own. Loaded once per process,
// the outcome (the module or the error) kept.
absl::StatusOr<std::shared_ptr<const SentencePieceModule>>
DefaultSentencePieceModule();

// A model of SentencePiece's trainer on `sentences` (one each, in order)
// with its options as flag names (no "--") and values, serialized (what a
// .model file holds). InvalidArgument when the trainer refuses (e.g. no
// sentences, an unknown option, a vocabulary larger than the corpus
// supports); FailedPrecondition when the module cannot be loaded.
absl::StatusOr<std::string> TrainSentencePiece(
    const std::vector<std::string>& sentences,
    const std::map<std::string, std::string>& options,
    std::shared_ptr<const SentencePieceModule> module = nullptr);

class SentencePieceTokenizer {
 public:
  // Where a text stands in a token sequence, which decides the special ids
  // around its own. The rule, the same for oublictl and the workload (so a
  // text ingested with oublictl and one the workload tokenized are the
  // same ids; README, "Beginning and end of sequence: one rule"): a
  // sequence starts with the model's BOS and a text or an answer ends with
  // its EOS, each only when the model defines one (bos_id(), eos_id() >=
  // 0). A prompt has no EOS: an answer or generation continues it.
  enum class Part {
    kText,    // a text on its own: [BOS] ids [EOS]
    kPrompt,  // the start of a sequence that goes on: [BOS] ids
    kAnswer,  // what follows a prompt, to the end: ids [EOS]
  };

  // The model in the file at `path` (a .model file of spm_train or
  // TrainSentencePiece). The error names the path: NotFound (or another
  // code of reading) when the file cannot be read, InvalidArgument when it
  // is not a SentencePiece model, FailedPrecondition when the module cannot
  // be loaded. `module`: null for DefaultSentencePieceModule().
  static absl::StatusOr<std::unique_ptr<SentencePieceTokenizer>> Load(
      const std::string& path,
      std::shared_ptr<const SentencePieceModule> module = nullptr);
  // The same from the file's bytes.
  static absl::StatusOr<std::unique_ptr<SentencePieceTokenizer>> FromModel(
      std::string serialized_model,
      std::shared_ptr<const SentencePieceModule> module = nullptr);
  ~SentencePieceTokenizer();
  SentencePieceTokenizer(const SentencePieceTokenizer&) = delete;
  SentencePieceTokenizer& operator=(const SentencePieceTokenizer&) = delete;

  // The ids of `text` alone, no BOS or EOS. A word starts with
  // SentencePiece's space mark, so a prompt and its answer tokenized apart
  // join as the two together would for words the model knows.
  // InvalidArgument when SentencePiece fails (it takes any UTF-8 text).
  absl::StatusOr<std::vector<int32_t>> Encode(absl::string_view text) const;
  // `text` as `part` of a sequence: Framed(Encode(text), part).
  absl::StatusOr<std::vector<int32_t>> Encode(absl::string_view text,
                                              Part part) const;
  // `ids` with the special ids of `part` (see Part).
  std::vector<int32_t> Framed(absl::Span<const int32_t> ids, Part part) const;
  // The text of `ids`; BOS, EOS and unknown ids decode to nothing.
  // InvalidArgument for an id outside [0, vocab_size()).
  absl::StatusOr<std::string> Decode(absl::Span<const int32_t> ids) const;

  int vocab_size() const;  // pieces: ids are 0..vocab_size() - 1
  int32_t bos_id() const;  // -1: the model has no beginning-of-sequence piece
  int32_t eos_id() const;  // -1: the model has no end-of-sequence piece
  const std::string& model() const { return model_; }  // serialized

 private:
  SentencePieceTokenizer(std::shared_ptr<const SentencePieceModule> module,
                         std::string model, OubliSentencePiece* processor);
  std::shared_ptr<const SentencePieceModule> module_;
  std::string model_;
  OubliSentencePiece* processor_;  // the module's; freed by it
};

}  // namespace oubli::tokenizer

#endif  // OUBLI_TOOLS_TOKENIZER_SENTENCEPIECE_TOKENIZER_H_
