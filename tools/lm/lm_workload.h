// The language-model forgetting workload as model inputs: profiles
// tokenized into the samples owners ingest and the items the metrics read,
// the decoder config the demo and the benchmark fine-tune, and the public
// base pretrained into a safetensors file a model config can name.
#ifndef OUBLI_TOOLS_LM_LM_WORKLOAD_H_
#define OUBLI_TOOLS_LM_LM_WORKLOAD_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/config.h"
#include "common/types.h"
#include "tools/lm/forget_metrics.h"
#include "tools/lm/profiles.h"
#include "tools/lm/tokenizer.h"
#include "tools/tokenizer/sentencepiece_tokenizer.h"
#include "worker/ml/position_data.h"

namespace oubli::lm {

// One profile as token data, framed as oublictl frames text
// (SentencePieceTokenizer::Part): a statement is [BOS] ids [EOS], a
// question [BOS] ids and each of its answers ids [EOS].
struct OwnerData {
  std::string owner;  // the profile's id
  // Its statements (every token learned) then its QA pairs (the question
  // is the prompt, the answer learned): what the owner ingests, ids
  // "OWNER/s0", "OWNER/q0", ...
  std::vector<Sample> samples;
  std::vector<ScoredText> texts;  // the same rows, for losses and MIA
  // Each statement's first half continued, second half the reference.
  std::vector<Continuation> continuations;
  // Each QA pair's answer (index 0) among its distractors.
  std::vector<RankedQuestion> questions;
};

struct WorkloadOptions {
  ProfileOptions profiles;
  int vocab_size = 1024;
};

struct Workload {
  // Trained on the public set only (TrainTokenizer).
  std::unique_ptr<tokenizer::SentencePieceTokenizer> tokenizer;
  std::vector<OwnerData> public_set, users, holdout;
  int longest_text = 0;  // tokens, over every set
};

// Generates the profiles, trains the tokenizer on the public corpus and
// tokenizes all three sets. Errors of TrainTokenizer and Encode.
absl::StatusOr<Workload> BuildWorkload(const WorkloadOptions& options);

absl::StatusOr<OwnerData> TokenizeProfile(
    const Profile& profile,
    const tokenizer::SentencePieceTokenizer& tokenizer);

// The training rows of `owners`' samples, in order.
std::vector<ml::TokenSequence> TokenRows(const std::vector<OwnerData>& owners);

struct LmModelOptions {
  int dim = 64;
  int layers = 4;
  int heads = 4;
  int context_length = 64;
  int lora_rank = 8;
  int shards = 4;     // S
  int slices = 2;     // L
  int sequences = 1;  // B
  int epochs = 8;     // per S3T position
  int batch_size = 16;
  double learning_rate = 3e-3;
  uint64_t seed = 1;
};

// A Llama-layout causal LM over `vocab_size` tokens, LoRA on q, v, o and
// the MLP (gate, up, down), placement by owner, the base answering when
// deletions cut every shard. The base is seeded until PretrainLmBaseToFile
// names a file.
ModelConfig LmModelConfig(const LmModelOptions& options, int vocab_size);

struct PretrainOptions {
  int epochs = 10;
  int batch_size = 32;
  double learning_rate = 3e-3;
};

// Full-parameter training of `config`'s base (every non-adapter tensor)
// on the public set's samples, written as safetensors (our names, which
// LoadBaseWeights reads) to `path`; records source, sha256 and provenance
// in config->base. Deterministic (seeded order, pinned threads): the same
// inputs write the same bytes. `stats` may be null.
absl::Status PretrainLmBaseToFile(const std::vector<OwnerData>& public_set,
                                  const PretrainOptions& options,
                                  const std::string& path, ModelConfig* config,
                                  ml::TrainStats* stats);

}  // namespace oubli::lm

#endif  // OUBLI_TOOLS_LM_LM_WORKLOAD_H_
