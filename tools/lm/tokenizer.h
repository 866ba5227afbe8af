// A SentencePiece tokenizer trained in-process on the workload's public
// corpus (BPE, as Llama's): the ids the decoder reads. Trained on public
// text only, so no user's name or fact shapes the vocabulary; the tokenizer
// is public like the base and survives every deletion unchanged.
#ifndef OUBLI_TOOLS_LM_TOKENIZER_H_
#define OUBLI_TOOLS_LM_TOKENIZER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace oubli::lm {

namespace spm {
class Processor;
}  // namespace spm

// A serialized SentencePiece model (what a .model file holds) of
// `vocab_size` pieces, BPE, trained on `lines` in order. Deterministic: one
// trainer thread, every sentence used, no shuffling, identity
// normalization; the same lines give the same bytes (tokenizer_test checks
// it). InvalidArgument: no lines, or the trainer refuses (e.g. a vocabulary
// larger than the corpus supports).
absl::StatusOr<std::string> TrainTokenizer(const std::vector<std::string>& lines,
                                           int vocab_size);

class Tokenizer {
 public:
  // InvalidArgument: not a SentencePiece model.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromModel(
      std::string serialized_model);
  // A .model file. NotFound or InvalidArgument.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> Load(
      const std::string& path);
  ~Tokenizer();

  // Ids of `text`, without BOS or EOS. A word starts with SentencePiece's
  // space mark, so Encode(a) + Encode(b) equals Encode(a + " " + b) for
  // words the corpus knows: a prompt and its answer tokenize apart.
  absl::StatusOr<std::vector<int32_t>> Encode(absl::string_view text) const;
  // Text of `ids`; BOS, EOS and unknown ids decode to nothing.
  absl::StatusOr<std::string> Decode(absl::Span<const int32_t> ids) const;

  int vocab_size() const;
  int32_t bos_id() const;
  int32_t eos_id() const;
  const std::string& model() const { return model_; }

 private:
  Tokenizer(std::string model, std::unique_ptr<spm::Processor> processor);
  std::string model_;
  std::unique_ptr<spm::Processor> processor_;
};

}  // namespace oubli::lm

#endif  // OUBLI_TOOLS_LM_TOKENIZER_H_
