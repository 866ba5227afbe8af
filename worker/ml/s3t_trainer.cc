#include "worker/ml/s3t_trainer.h"

#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "common/file_util.h"
#include "common/hash.h"
#include "common/status_macros.h"
#include "common/types.h"
#include "worker/ml/decoder_lm.h"
#include "worker/ml/determinism.h"
#include "worker/ml/model.h"
#include "worker/ml/model_factory.h"
#include "worker/ml/safetensors.h"
#include "worker/ml/torch_device.h"

namespace oubli::ml {
namespace {

// Runs `fn`, converting torch exceptions into Internal errors so none crosses
// the library boundary.
template <typename Fn>
auto CatchTorch(absl::string_view what, Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const c10::Error& e) {
    return absl::InternalError(
        absl::StrCat(what, ": torch error: ", e.what_without_backtrace()));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat(what, ": ", e.what()));
  }
}

absl::Status CheckTokenData(const ModelConfig& config,
                            const PositionData& data) {
  const DecoderConfig& decoder = config.backbone.decoder;
  if (!data.tokens.defined() || data.features.defined()) {
    return absl::InvalidArgumentError(
        "a decoder trains on token rows, not features");
  }
  const int64_t n = data.size();
  if (data.tokens.dim() != 2 || data.tokens.size(1) > decoder.context_length ||
      !data.attention_mask.defined() || !data.loss_mask.defined() ||
      data.attention_mask.sizes() != data.tokens.sizes() ||
      data.loss_mask.sizes() != data.tokens.sizes()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "token rows must be [n, T <= ", decoder.context_length,
        "] with masks of the same shape"));
  }
  if (!data.labels.defined() || data.labels.dim() != 1 ||
      data.labels.size(0) != n) {
    return absl::InvalidArgumentError("labels must be [n]");
  }
  for (const at::Tensor* t : {&data.tokens, &data.attention_mask,
                              &data.loss_mask, &data.labels}) {
    if (t->scalar_type() != torch::kInt64) {
      return absl::InvalidArgumentError("token rows must be int64 tensors");
    }
  }
  if (data.tokens.size(1) == 0) {
    return absl::InvalidArgumentError("token rows must hold a token each");
  }
  // Row by row, worded as the ingest and row checks word a bad id.
  const at::Tensor tokens = data.tokens.to(torch::kCPU).contiguous();
  const int64_t columns = tokens.size(1);
  for (int64_t r = 0; r < n; ++r) {
    const absl::Status vocabulary = CheckVocabulary(
        absl::MakeConstSpan(tokens.data_ptr<int64_t>() + r * columns, columns),
        decoder.vocab_size);
    if (!vocabulary.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("token row ", r, ": ", vocabulary.message()));
    }
  }
  // Batches are cut to their longest row, so a real token after padding
  // would be lost without a word.
  const at::Tensor& real = data.attention_mask;
  const bool binary = real.eq(0).logical_or(real.eq(1)).all().item<bool>() &&
                      data.loss_mask.eq(0)
                          .logical_or(data.loss_mask.eq(1))
                          .all()
                          .item<bool>();
  const int64_t width = real.size(1);
  if (!binary || !real.select(1, 0).eq(1).all().item<bool>() ||
      (width > 1 && !real.narrow(1, 1, width - 1)
                         .le(real.narrow(1, 0, width - 1))
                         .all()
                         .item<bool>())) {
    return absl::InvalidArgumentError(
        "token masks must hold 0 and 1, and every row a real first token "
        "followed only by padding (right padding)");
  }
  if (decoder.objective == DecoderObjective::kClassify &&
      (data.labels.min().item<int64_t>() < 0 ||
       data.labels.max().item<int64_t>() >= config.backbone.num_classes)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "labels must be in [0, ", config.backbone.num_classes, ")"));
  }
  return absl::OkStatus();
}

absl::Status CheckData(const ModelConfig& config, const PositionData& data) {
  if (data.size() == 0) return absl::OkStatus();
  if (config.backbone.kind == BackboneKind::kDecoder) {
    return CheckTokenData(config, data);
  }
  if (!data.features.defined() || data.tokens.defined()) {
    return absl::InvalidArgumentError(
        "an image classifier trains on features, not token rows");
  }
  if (!data.labels.defined()) {
    return absl::InvalidArgumentError("labels are missing");
  }
  if (data.features.dim() != 2 ||
      data.features.size(1) != config.backbone.InputSize()) {
    return absl::InvalidArgumentError(
        absl::StrCat("features must be [n, ", config.backbone.InputSize(),
                     "], got ", c10::str(data.features.sizes())));
  }
  if (data.labels.dim() != 1 || data.labels.size(0) != data.size()) {
    return absl::InvalidArgumentError("labels must be [n]");
  }
  const int64_t max_label = data.labels.max().item<int64_t>();
  const int64_t min_label = data.labels.min().item<int64_t>();
  if (min_label < 0 || max_label >= config.backbone.num_classes) {
    return absl::InvalidArgumentError(
        absl::StrCat("labels must be in [0, ", config.backbone.num_classes,
                     "), found ", min_label, "..", max_label));
  }
  return absl::OkStatus();
}

// The training loss of the rows `rows` of `data`, and the real tokens they
// hold (0 for features). Decoder batches are cut to their longest row: the
// shape then depends only on which rows are in the batch.
torch::Tensor BatchLoss(AdapterModel& model, const PositionData& data,
                        const torch::Tensor& rows, const torch::Device& device,
                        int64_t* tokens_seen) {
  // The model decides (CheckData has matched the data to the config).
  auto* decoder_model = dynamic_cast<DecoderLm*>(&model);
  if (decoder_model == nullptr) {
    auto& classifier = dynamic_cast<AdapterClassifier&>(model);
    // Data stay on the CPU; each batch goes to the model's device.
    torch::Tensor x = data.features.index_select(0, rows).to(device);
    torch::Tensor y = data.labels.index_select(0, rows).to(device);
    return torch::nn::functional::cross_entropy(classifier.forward(x), y);
  }
  DecoderLm& decoder = *decoder_model;
  torch::Tensor real = data.attention_mask.index_select(0, rows);
  torch::Tensor lengths = real.sum(1);
  *tokens_seen += lengths.sum().item<int64_t>();
  const int64_t longest = lengths.max().item<int64_t>();
  real = real.narrow(1, 0, longest).to(device);
  torch::Tensor tokens =
      data.tokens.index_select(0, rows).narrow(1, 0, longest).to(device);
  torch::Tensor logits = decoder.forward(tokens, real);
  if (decoder.config().objective == DecoderObjective::kClassify) {
    return torch::nn::functional::cross_entropy(
        logits, data.labels.index_select(0, rows).to(device));
  }
  torch::Tensor learn =
      data.loss_mask.index_select(0, rows).narrow(1, 0, longest).to(device);
  return CausalLmLoss(logits, tokens, real, learn);
}

// One epoch of minibatch Adam over `data` in the given order. Returns false
// if cancelled.
bool RunEpoch(AdapterModel& model, torch::optim::Optimizer& optimizer,
              const PositionData& data, const std::vector<int64_t>& order,
              int batch_size, TrainStats* stats,
              const std::function<bool()>& cancelled = nullptr) {
  const int64_t n = static_cast<int64_t>(order.size());
  const torch::Device device = TorchDevice();
  torch::Tensor index =
      torch::from_blob(const_cast<int64_t*>(order.data()), {n}, torch::kInt64);
  // Read once at the end: on a GPU, reading it every batch would wait for
  // each batch to finish before queueing the next.
  torch::Tensor last_loss;
  for (int64_t begin = 0; begin < n; begin += batch_size) {
    if (cancelled && cancelled()) return false;
    const int64_t end = std::min<int64_t>(n, begin + batch_size);
    torch::Tensor rows = index.slice(0, begin, end);
    optimizer.zero_grad();
    torch::Tensor loss = BatchLoss(model, data, rows, device, &stats->tokens);
    loss.backward();
    optimizer.step();
    ++stats->steps;
    stats->samples += end - begin;
    last_loss = loss.detach();
  }
  if (last_loss.defined()) stats->last_loss = last_loss.item<double>();
  return true;
}

}  // namespace

uint64_t PositionSeed(uint64_t seed, absl::string_view purpose, int shard,
                      absl::Span<const int> prefix_order, int epoch) {
  Sha256 h;
  h.AddU64(seed).AddField(purpose).AddU64(static_cast<uint64_t>(shard));
  h.AddU64(prefix_order.size());
  for (int slice : prefix_order) h.AddU64(static_cast<uint64_t>(slice));
  h.AddU64(static_cast<uint64_t>(epoch));
  const Sha256Digest d = h.Finish();
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | d[i];
  return v;
}

std::vector<int64_t> SeededPermutation(int64_t n, uint64_t seed) {
  std::vector<int64_t> perm(n);
  for (int64_t i = 0; i < n; ++i) perm[i] = i;
  SplitMix64 rng(seed);
  for (int64_t i = n - 1; i > 0; --i) {
    const auto j =
        static_cast<int64_t>(rng.Uniform(static_cast<uint64_t>(i) + 1));
    std::swap(perm[i], perm[j]);
  }
  return perm;
}

absl::Status RecordBaseWeightsDigest(ModelConfig* config) {
  if (config->base.source == "seeded" || !config->base.sha256.empty()) {
    return absl::OkStatus();
  }
  OUBLI_ASSIGN_OR_RETURN(std::string bytes, ReadFile(config->base.source));
  config->base.sha256 = Sha256Hex(bytes);
  return absl::OkStatus();
}

absl::StatusOr<NamedTensors> LoadBaseState(const ModelConfig& config) {
  OUBLI_RETURN_IF_ERROR(ValidateConfig(config));
  PinThreads(config.determinism);
  OUBLI_ASSIGN_OR_RETURN(
      std::shared_ptr<AdapterModel> model,
      BuildAdapterModel(config.backbone, DeriveSeed(config.seed, "base", {})));
  if (config.base.source == "seeded") return model->BaseState();

  OUBLI_ASSIGN_OR_RETURN(const std::string bytes, ReadFile(config.base.source));
  if (!config.base.sha256.empty() && Sha256Hex(bytes) != config.base.sha256) {
    return absl::DataLossError(absl::StrCat(
        "base weights file '", config.base.source,
        "' does not match the sha256 recorded in the model config"));
  }
  OUBLI_ASSIGN_OR_RETURN(NamedTensors loaded, ParseSafetensors(bytes));
  OUBLI_RETURN_IF_ERROR(LoadBaseWeights(*model, loaded));
  return model->BaseState();
}

absl::StatusOr<NamedTensors> PretrainBase(const ModelConfig& config,
                                          const PositionData& public_data,
                                          int epochs, TrainStats* stats) {
  OUBLI_RETURN_IF_ERROR(CatchTorch(
      "check data", [&] { return CheckData(config, public_data); }));
  OUBLI_ASSIGN_OR_RETURN(NamedTensors base, LoadBaseState(config));
  return CatchTorch("pretrain", [&]() -> absl::StatusOr<NamedTensors> {
    const absl::Time start = absl::Now();
    PinThreads(config.determinism);
    OUBLI_ASSIGN_OR_RETURN(std::shared_ptr<AdapterModel> model,
                           BuildModelOnBase(config, base));
    model->to(TorchDevice());
    std::vector<torch::Tensor> params = model->BaseParameters();
    model->FreezeAllExcept(params);
    model->train();
    torch::optim::Adam optimizer(
        params, torch::optim::AdamOptions(config.train.learning_rate));
    TrainStats local;
    for (int epoch = 0; epoch < epochs; ++epoch) {
      RunEpoch(*model, optimizer, public_data,
               SeededPermutation(
                   public_data.size(),
                   PositionSeed(config.seed, "pretrain-order", -1, {}, epoch)),
               config.train.batch_size, &local);
    }
    local.elapsed = absl::Now() - start;
    if (stats != nullptr) *stats = local;
    return model->BaseState();
  });
}

S3tTrainer::S3tTrainer(ModelConfig config, NamedTensors base_state,
                       std::shared_ptr<AdapterModel> model)
    : config_(std::move(config)),
      base_state_(std::move(base_state)),
      groups_(AdapterGroups(model->num_adapter_layers(), config_.slices)),
      model_(std::move(model)) {}

absl::StatusOr<std::unique_ptr<S3tTrainer>> S3tTrainer::Create(
    const ModelConfig& config, NamedTensors base_state) {
  OUBLI_RETURN_IF_ERROR(ValidateConfig(config));
  PinThreads(config.determinism);
  OUBLI_ASSIGN_OR_RETURN(std::shared_ptr<AdapterModel> model,
                         BuildModelOnBase(config, base_state));
  OUBLI_RETURN_IF_ERROR(CatchTorch("move model to the compute device", [&] {
    model->to(TorchDevice());
    return absl::OkStatus();
  }));
  return std::unique_ptr<S3tTrainer>(
      new S3tTrainer(config, std::move(base_state), std::move(model)));
}

absl::StatusOr<std::string> S3tTrainer::TrainPosition(
    int shard, absl::Span<const int> prefix_order, absl::string_view parent,
    const PositionData& data, TrainStats* stats,
    const std::function<bool()>& cancelled) {
  const int position = static_cast<int>(prefix_order.size()) - 1;
  if (position < 0 || position >= config_.slices) {
    return absl::InvalidArgumentError(
        absl::StrCat("prefix length must be 1..", config_.slices));
  }
  if (position == 0 && !parent.empty()) {
    return absl::InvalidArgumentError("a length-1 prefix has no parent");
  }
  if (position > 0 && parent.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a length-", position + 1, " prefix needs its parent checkpoint"));
  }
  OUBLI_RETURN_IF_ERROR(
      CatchTorch("check data", [&] { return CheckData(config_, data); }));
  NamedTensors parent_state;
  if (!parent.empty()) {
    OUBLI_ASSIGN_OR_RETURN(parent_state, ParseSafetensors(parent));
  }

  absl::MutexLock lock(&mu_);
  return CatchTorch("train position", [&]() -> absl::StatusOr<std::string> {
    const absl::Time start = absl::Now();
    PinThreads(config_.determinism);
    AdapterModel& model = *model_;
    // Restore the exact starting point: base + initial head, then either the
    // shard's seeded adapters or the whole parent checkpoint (head included:
    // S3T exactness needs the full prefix state, not just its adapters).
    OUBLI_RETURN_IF_ERROR(model.LoadBaseState(base_state_));
    if (parent.empty()) {
      model.InitAdapters(
          DeriveSeed(config_.seed, "adapters", {static_cast<uint64_t>(shard)}));
    } else {
      OUBLI_RETURN_IF_ERROR(model.LoadAdapterState(parent_state));
    }

    std::vector<torch::Tensor> params;
    for (int layer : groups_[position]) {
      for (torch::Tensor& t : model.AdapterParameters(layer)) {
        params.push_back(t);
      }
    }
    for (torch::Tensor& t : model.HeadParameters()) params.push_back(t);
    model.FreezeAllExcept(params);
    model.train();
    torch::optim::Adam optimizer(
        params, torch::optim::AdamOptions(config_.train.learning_rate)
                    .weight_decay(config_.train.weight_decay));

    TrainStats local;
    for (int epoch = 0; epoch < config_.train.epochs_per_position; ++epoch) {
      at::Generator dropout = at::make_generator<at::CPUGeneratorImpl>(
          PositionSeed(config_.seed, "dropout", shard, prefix_order, epoch));
      model.SetDropoutGenerator(&dropout);
      const bool completed = RunEpoch(
          model, optimizer, data,
          SeededPermutation(
              data.size(),
              PositionSeed(config_.seed, "order", shard, prefix_order, epoch)),
          config_.train.batch_size, &local, cancelled);
      model.SetDropoutGenerator(nullptr);
      if (!completed) {
        return absl::CancelledError("training position cancelled");
      }
    }
    model.eval();
    local.elapsed = absl::Now() - start;
    if (stats != nullptr) *stats = local;
    return SerializeSafetensors(model.AdapterState());
  });
}

}  // namespace oubli::ml
