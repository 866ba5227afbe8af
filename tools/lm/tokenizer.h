// The workload's tokenizer: SentencePiece BPE (as Llama's) trained
// in-process on the workload's public corpus, the ids the decoder reads.
// Trained on public text only, so no user's name or fact shapes the
// vocabulary; the tokenizer is public like the base and survives every
// deletion unchanged. Loaded as a tools/tokenizer SentencePieceTokenizer.
#ifndef OUBLI_TOOLS_LM_TOKENIZER_H_
#define OUBLI_TOOLS_LM_TOKENIZER_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace oubli::lm {

// A serialized SentencePiece model (what a .model file holds) of
// `vocab_size` pieces, BPE, trained on `lines` in order, with
// SentencePiece's special pieces (unk 0, bos 1, eos 2). Deterministic: one
// trainer thread, every sentence used, no shuffling, identity
// normalization; the same lines give the same bytes (tokenizer_test checks
// it). InvalidArgument: no lines, or the trainer refuses (e.g. a vocabulary
// larger than the corpus supports).
absl::StatusOr<std::string> TrainTokenizer(
    const std::vector<std::string>& lines, int vocab_size);

}  // namespace oubli::lm

#endif  // OUBLI_TOOLS_LM_TOKENIZER_H_
