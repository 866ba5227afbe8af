// A SentencePiece model (Debian's libsentencepiece), the tokenizer family
// of Llama-style models, for oublictl. The service itself takes token ids.
//
// libsentencepiece carries a protobuf runtime of its own (3.14) and exports
// its symbols; a process that also links the system's protobuf (as every
// gRPC client does) binds one library's calls to the other's code and
// aborts at load. So SentencePiece lives in a module of its own,
// liboubli_sentencepiece.so (sentencepiece_shim.h), loaded with
// RTLD_DEEPBIND: it and libsentencepiece resolve their own symbols first.
#ifndef OUBLI_TOOLS_OUBLICTL_SENTENCEPIECE_TOKENIZER_H_
#define OUBLI_TOOLS_OUBLICTL_SENTENCEPIECE_TOKENIZER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

struct OubliSpm;  // sentencepiece_shim.h

namespace oubli::oublictl {

class SentencePieceTokenizer {
 public:
  // The module's file name; oublictl looks for it beside its executable.
  static constexpr char kModuleName[] = "liboubli_sentencepiece.so";

  // The model in `model_path` (a .model file of spm_train or
  // SentencePieceTrainer). `module`: the path of kModuleName; empty: the one
  // beside this executable. FailedPrecondition when the module cannot be
  // loaded, InvalidArgument when the model cannot be read.
  static absl::StatusOr<std::unique_ptr<SentencePieceTokenizer>> Load(
      const std::string& model_path, const std::string& module = "");
  ~SentencePieceTokenizer();
  SentencePieceTokenizer(const SentencePieceTokenizer&) = delete;
  SentencePieceTokenizer& operator=(const SentencePieceTokenizer&) = delete;

  // InvalidArgument when SentencePiece fails (it takes any UTF-8 text).
  absl::StatusOr<std::vector<int>> Encode(absl::string_view text) const;
  // InvalidArgument for an id outside the vocabulary.
  absl::StatusOr<std::string> Decode(const std::vector<int>& ids) const;

  int vocab_size() const;  // pieces: ids are 0..vocab_size() - 1
  int eos_id() const;      // -1: the model has no end-of-sequence piece

 private:
  struct Module;
  static absl::StatusOr<std::shared_ptr<const Module>> LoadModule(
      std::string path);
  SentencePieceTokenizer(std::shared_ptr<const Module> module, OubliSpm* model);
  std::shared_ptr<const Module> module_;
  OubliSpm* model_;
};

}  // namespace oubli::oublictl

#endif  // OUBLI_TOOLS_OUBLICTL_SENTENCEPIECE_TOKENIZER_H_
