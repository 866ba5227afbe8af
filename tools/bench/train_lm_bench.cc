// oubli-bench train --lm: the S3T trainer on a decoder language model
// against a bare LibTorch loop over the same model, batches and loss, in one
// run. Tokens are generated (deterministic, no downloads): sequences of
// varied length drawn from a small Markov chain, so there is something to
// learn, with the first quarter of each as the prompt.
#include <algorithm>
#include <array>
#include <cstdio>
#include <random>

#include "absl/strings/str_cat.h"
#include "tools/bench/bench.h"
#include "tools/bench/bench_util.h"
#include "tools/bench/trainer_comparison.h"
#include "worker/ml/decoder_lm.h"
#include "worker/ml/determinism.h"
#include "worker/ml/position_data.h"

namespace oubli::bench {
namespace {

struct LmFlags {
  std::string layout = "llama";
  int64_t sequences = 2000;
  int max_length = 64;
  int vocab = 512;
  int dim = 128;
  int layers = 4;
  int epochs = 1;
  int batch_size = 16;
  int rounds = 3;
};

bool ParseLmFlags(const std::vector<std::string>& args, LmFlags* flags) {
  // "--lm" chose this benchmark (RunTrainBench); the rest are --key=value.
  std::vector<std::string> rest;
  for (const std::string& arg : args) {
    if (arg != "--lm" && arg != "--lm=true") rest.push_back(arg);
  }
  const FlagSetters setters = {
      {"layout", [flags](const std::string& v) {
         flags->layout = v;
         return v == "llama" || v == "gpt2";
       }},
      {"sequences", NumberFlag(&flags->sequences)},
      {"max_length", NumberFlag(&flags->max_length)},
      {"vocab", NumberFlag(&flags->vocab)},
      {"dim", NumberFlag(&flags->dim)},
      {"layers", NumberFlag(&flags->layers)},
      {"epochs", NumberFlag(&flags->epochs)},
      {"batch_size", NumberFlag(&flags->batch_size)},
      {"rounds", NumberFlag(&flags->rounds)},
  };
  return ParseKeyValueFlags(rest, setters) && flags->sequences > 0 &&
         flags->max_length >= 2 && flags->rounds > 0;
}

ModelConfig LmConfig(const LmFlags& flags) {
  ModelConfig config;
  config.model_id = "bench-lm";
  config.backbone.kind = BackboneKind::kDecoder;
  DecoderConfig& d = config.backbone.decoder;
  d.layout =
      flags.layout == "gpt2" ? DecoderLayout::kGpt2 : DecoderLayout::kLlama;
  d.vocab_size = flags.vocab;
  d.context_length = flags.max_length;
  d.dim = flags.dim;
  d.layers = flags.layers;
  d.heads = 4;
  d.kv_heads = d.layout == DecoderLayout::kLlama ? 2 : 4;
  d.mlp_dim = d.layout == DecoderLayout::kLlama ? flags.dim * 8 / 3
                                                : flags.dim * 4;
  d.lora_targets = {LoraTarget::kQ, LoraTarget::kK, LoraTarget::kV,
                    LoraTarget::kO};
  config.slices = std::min(4, flags.layers);
  config.train.epochs_per_position = flags.epochs;
  config.train.batch_size = flags.batch_size;
  config.train.learning_rate = 1e-3;
  return config;
}

// Each next token is one of four successors of the current one (a fixed
// random table), so the text has structure a model can learn.
std::vector<ml::TokenSequence> MarkovSequences(const LmFlags& flags) {
  std::mt19937_64 rng(20261207);
  std::vector<std::array<int32_t, 4>> successors(flags.vocab);
  for (auto& next : successors) {
    for (int32_t& token : next) token = static_cast<int32_t>(rng() % flags.vocab);
  }
  std::vector<ml::TokenSequence> rows(flags.sequences);
  for (ml::TokenSequence& row : rows) {
    const int length =
        2 + static_cast<int>(rng() % static_cast<uint64_t>(flags.max_length - 1));
    int32_t token = static_cast<int32_t>(rng() % flags.vocab);
    for (int t = 0; t < length; ++t) {
      row.tokens.push_back(token);
      token = successors[token][rng() % 4];
    }
    row.prompt_tokens = length / 4;
  }
  return rows;
}

}  // namespace

int RunTrainLmBench(const std::vector<std::string>& args) {
  LmFlags flags;
  if (!ParseLmFlags(args, &flags)) return 2;
  const ModelConfig config = LmConfig(flags);
  if (absl::Status valid = ValidateConfig(config); !valid.ok()) {
    return Fail("train --lm", valid);
  }
  auto data =
      ml::MakeTokenPositionData(MarkovSequences(flags), config.backbone);
  if (!data.ok()) return Fail("train --lm", data.status());
  const int64_t real_tokens = data->attention_mask.sum().item<int64_t>();
  // The bare loop cuts each batch to its longest row, as the trainer does.
  auto compared = CompareTrainerWithBareLoop(
      config, *data, flags.rounds, real_tokens,
      [](ml::AdapterModel& model, const ml::PositionData& rows_of,
         const torch::Tensor& rows, const torch::Device& device) {
        auto& decoder = dynamic_cast<ml::DecoderLm&>(model);
        torch::Tensor mask = rows_of.attention_mask.index_select(0, rows);
        const int64_t longest = mask.sum(1).max().item<int64_t>();
        mask = mask.narrow(1, 0, longest).to(device);
        torch::Tensor tokens = rows_of.tokens.index_select(0, rows)
                                   .narrow(1, 0, longest)
                                   .to(device);
        torch::Tensor learn = rows_of.loss_mask.index_select(0, rows)
                                  .narrow(1, 0, longest)
                                  .to(device);
        return ml::CausalLmLoss(decoder.forward(tokens, mask), tokens, mask,
                                learn);
      },
      [](const ml::TrainStats& stats) { return stats.tokens; });
  if (!compared.ok()) return Fail("train --lm", compared.status());
  const double best_ours = compared->trainer_per_s;
  const double best_bare = compared->bare_per_s;
  const double last_loss = compared->last_loss;
  std::printf(
      "{\"bench\":\"train_lm\",\"layout\":\"%s\",\"sequences\":%lld,"
      "\"tokens\":%lld,\"max_length\":%d,\"dim\":%d,\"layers\":%d,"
      "\"epochs\":%d,\"batch_size\":%d,\"trainer_tokens_per_s\":%.0f,"
      "\"bare_libtorch_tokens_per_s\":%.0f,\"overhead\":%.4f,"
      "\"last_loss\":%.4f,\"threads\":\"%s\",\"machine\":%s}\n",
      flags.layout.c_str(), static_cast<long long>(data->size()),
      static_cast<long long>(real_tokens), flags.max_length, flags.dim,
      flags.layers, config.train.epochs_per_position, config.train.batch_size,
      best_ours, best_bare, 1.0 - best_ours / best_bare, last_loss,
      ml::DescribeThreads().c_str(), MachineJson().c_str());
  return 0;
}

}  // namespace oubli::bench
