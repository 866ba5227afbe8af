#include "tools/lm/lm_workload.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/hash.h"
#include "common/status_macros.h"
#include "worker/ml/s3t_trainer.h"
#include "worker/ml/safetensors.h"

namespace oubli::lm {
namespace {

std::vector<int32_t> Concat(std::initializer_list<absl::Span<const int32_t>> parts) {
  std::vector<int32_t> out;
  for (absl::Span<const int32_t> part : parts) {
    out.insert(out.end(), part.begin(), part.end());
  }
  return out;
}

Sample TokenSample(const std::string& id, const std::string& owner,
                   const std::vector<int32_t>& tokens, int32_t prompt_tokens) {
  Sample sample;
  sample.id = id;
  sample.owner = owner;
  const std::vector<uint32_t> ids(tokens.begin(), tokens.end());
  sample.features = EncodeTokens(ids, &sample.feature_type);
  sample.prompt_tokens = prompt_tokens;
  return sample;
}

}  // namespace

absl::StatusOr<OwnerData> TokenizeProfile(
    const Profile& profile,
    const tokenizer::SentencePieceTokenizer& tokenizer) {
  using Part = tokenizer::SentencePieceTokenizer::Part;
  OwnerData data;
  data.owner = profile.id;
  for (size_t i = 0; i < profile.statements.size(); ++i) {
    OUBLI_ASSIGN_OR_RETURN(std::vector<int32_t> ids,
                           tokenizer.Encode(profile.statements[i]));
    if (ids.size() < 2) {
      return absl::InvalidArgumentError(
          absl::StrCat("statement too short: ", profile.statements[i]));
    }
    std::vector<int32_t> tokens = tokenizer.Framed(ids, Part::kText);
    data.samples.push_back(
        TokenSample(absl::StrCat(profile.id, "/s", i), profile.id, tokens, 0));
    data.texts.push_back({std::move(tokens), 0});
    // The first half, framed as a prompt, is what the model is given; the
    // rest, without EOS, is what a memorising model says next.
    const size_t half = ids.size() / 2;
    Continuation& c = data.continuations.emplace_back();
    c.prefix = tokenizer.Framed(absl::MakeConstSpan(ids).subspan(0, half),
                                Part::kPrompt);
    c.reference.assign(ids.begin() + half, ids.end());
  }
  for (size_t i = 0; i < profile.qa.size(); ++i) {
    const QaPair& qa = profile.qa[i];
    OUBLI_ASSIGN_OR_RETURN(std::vector<int32_t> prompt,
                           tokenizer.Encode(QaPrompt(qa), Part::kPrompt));
    RankedQuestion ranked{prompt, {}, 0};
    std::vector<std::string> answers = {qa.answer};
    answers.insert(answers.end(), qa.distractors.begin(), qa.distractors.end());
    for (const std::string& answer : answers) {
      OUBLI_ASSIGN_OR_RETURN(std::vector<int32_t> ids,
                             tokenizer.Encode(answer, Part::kAnswer));
      ranked.answers.push_back(std::move(ids));
    }
    std::vector<int32_t> tokens = Concat({prompt, ranked.answers[0]});
    const auto prompt_tokens = static_cast<int32_t>(prompt.size());
    data.samples.push_back(TokenSample(absl::StrCat(profile.id, "/q", i),
                                       profile.id, tokens, prompt_tokens));
    data.texts.push_back({std::move(tokens), prompt_tokens});
    data.questions.push_back(std::move(ranked));
  }
  return data;
}

absl::StatusOr<Workload> BuildWorkload(const WorkloadOptions& options) {
  const ProfileSets sets = GenerateProfiles(options.profiles);
  Workload workload;
  OUBLI_ASSIGN_OR_RETURN(
      std::string model,
      TrainTokenizer(CorpusLines(sets.public_set), options.vocab_size));
  OUBLI_ASSIGN_OR_RETURN(
      workload.tokenizer,
      tokenizer::SentencePieceTokenizer::FromModel(std::move(model)));
  auto tokenize = [&](const std::vector<Profile>& profiles,
                      std::vector<OwnerData>& out) -> absl::Status {
    for (const Profile& profile : profiles) {
      OUBLI_ASSIGN_OR_RETURN(OwnerData data,
                             TokenizeProfile(profile, *workload.tokenizer));
      for (const ScoredText& text : data.texts) {
        workload.longest_text = std::max(
            workload.longest_text, static_cast<int>(text.tokens.size()));
      }
      out.push_back(std::move(data));
    }
    return absl::OkStatus();
  };
  OUBLI_RETURN_IF_ERROR(tokenize(sets.public_set, workload.public_set));
  OUBLI_RETURN_IF_ERROR(tokenize(sets.users, workload.users));
  OUBLI_RETURN_IF_ERROR(tokenize(sets.holdout, workload.holdout));
  return workload;
}

std::vector<ml::TokenSequence> TokenRows(const std::vector<OwnerData>& owners) {
  std::vector<ml::TokenSequence> rows;
  for (const OwnerData& owner : owners) {
    for (const ScoredText& text : owner.texts) {
      rows.push_back({text.tokens, text.prompt_tokens, 0});
    }
  }
  return rows;
}

ModelConfig LmModelConfig(const LmModelOptions& options, int vocab_size) {
  ModelConfig config;
  config.model_id = "lm-forget";
  config.backbone.kind = BackboneKind::kDecoder;
  DecoderConfig& d = config.backbone.decoder;
  d.layout = DecoderLayout::kLlama;
  d.objective = DecoderObjective::kCausalLm;
  d.vocab_size = vocab_size;
  d.context_length = options.context_length;
  d.dim = options.dim;
  d.layers = options.layers;
  d.heads = options.heads;
  d.kv_heads = options.heads;
  // Llama's 8/3 * dim, rounded up to a multiple of 8.
  d.mlp_dim = (options.dim * 8 / 3 + 7) / 8 * 8;
  d.lora_targets = {LoraTarget::kQ,    LoraTarget::kV,  LoraTarget::kO,
                    LoraTarget::kGate, LoraTarget::kUp, LoraTarget::kDown};
  config.backbone.lora.rank = options.lora_rank;
  config.backbone.lora.alpha = 2.0 * options.lora_rank;
  config.shards = options.shards;
  config.slices = options.slices;
  config.sequences = options.sequences;
  config.seed = options.seed;
  config.placement.by = Placement::kOwner;
  // A deletion that cuts every shard leaves the public base answering
  // (no user data in it) instead of no answer until retraining.
  config.serving.base_fallback = true;
  config.train.epochs_per_position = options.epochs;
  config.train.batch_size = options.batch_size;
  config.train.learning_rate = options.learning_rate;
  return config;
}

absl::Status PretrainLmBaseToFile(const std::vector<OwnerData>& public_set,
                                  const PretrainOptions& options,
                                  const std::string& path, ModelConfig* config,
                                  ml::TrainStats* stats) {
  if (public_set.empty()) {
    return absl::InvalidArgumentError("no public profiles to pretrain on");
  }
  OUBLI_ASSIGN_OR_RETURN(
      ml::PositionData data,
      ml::MakeTokenPositionData(TokenRows(public_set), config->backbone));
  // Pretraining has its own schedule; the model's train section is the
  // fine-tuning's.
  ModelConfig pretrain = *config;
  pretrain.base = BaseWeightsConfig{};
  pretrain.train.batch_size = options.batch_size;
  pretrain.train.learning_rate = options.learning_rate;
  OUBLI_ASSIGN_OR_RETURN(
      ml::NamedTensors base,
      ml::PretrainBase(pretrain, data, options.epochs, stats));
  OUBLI_ASSIGN_OR_RETURN(std::string bytes, ml::SerializeSafetensors(base));
  OUBLI_RETURN_IF_ERROR(ml::WriteSafetensorsFile(path, base));
  config->base.source = path;
  config->base.sha256 = Sha256Hex(bytes);
  config->base.provenance = absl::StrCat(
      "pretrained (every base tensor) ", options.epochs, " epochs, lr ",
      options.learning_rate, ", batch ", options.batch_size, " on ",
      data.size(), " texts of the ", public_set.size(),
      " public fictitious profiles (", public_set.front().owner, " .. ",
      public_set.back().owner, "), declared non-deletable");
  return absl::OkStatus();
}

}  // namespace oubli::lm
