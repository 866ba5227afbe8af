// The SentencePiece library behind an interface of standard types only.
//
// Debian's sentencepiece_processor.h declares `namespace absl { using
// std::string_view; }`, which collides with Debian Abseil's own
// absl::string_view class: no translation unit can include both. This
// bridge's .cc includes SentencePiece and no Abseil header; everything else
// (tools/lm/tokenizer.h) talks to it through this header, which includes
// neither.
#ifndef OUBLI_TOOLS_LM_SENTENCEPIECE_BRIDGE_H_
#define OUBLI_TOOLS_LM_SENTENCEPIECE_BRIDGE_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace oubli::lm::spm {

// Trains a model on `sentences` (one each, in order) with trainer options
// given as key/value pairs (the names of SentencePiece's --flags). Returns
// an empty string and fills *model (the serialized ModelProto) on success,
// otherwise the trainer's error.
std::string Train(const std::vector<std::string>& sentences,
                  const std::map<std::string, std::string>& options,
                  std::string* model);

class Processor {
 public:
  Processor();
  ~Processor();
  Processor(const Processor&) = delete;
  Processor& operator=(const Processor&) = delete;

  // Each returns an empty string on success, otherwise the error.
  std::string Load(const std::string& serialized_model);
  std::string Encode(const std::string& text, std::vector<int>* ids) const;
  std::string Decode(const std::vector<int>& ids, std::string* text) const;

  int vocab_size() const;
  int bos_id() const;
  int eos_id() const;
  int unk_id() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace oubli::lm::spm

#endif  // OUBLI_TOOLS_LM_SENTENCEPIECE_BRIDGE_H_
