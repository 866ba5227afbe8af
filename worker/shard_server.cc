#include "worker/shard_server.h"

#include <torch/torch.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/config.h"
#include "common/hash.h"
#include "common/status_macros.h"
#include "worker/ml/base_weights.h"
#include "worker/ml/shard_model.h"
#include "worker/position_worker.h"

namespace oubli::worker {

struct ShardServer::State {
  struct Slot {
    std::string sha256;
    std::string config_fingerprint;
    std::shared_ptr<const ml::ShardModel> model;
  };
  const std::shared_ptr<ml::BaseWeightsCache> bases;
  mutable absl::Mutex mu;
  // model id -> shard -> slot.
  absl::flat_hash_map<std::string, std::map<int, Slot>> slots
      ABSL_GUARDED_BY(mu);

  explicit State(std::shared_ptr<ml::BaseWeightsCache> b)
      : bases(std::move(b)) {}
};

ShardServer::ShardServer(std::shared_ptr<ml::BaseWeightsCache> bases)
    : state_(std::make_unique<State>(
          bases != nullptr ? std::move(bases)
                           : std::make_shared<ml::BaseWeightsCache>())) {}

ShardServer::~ShardServer() = default;

absl::Status ShardServer::Load(absl::string_view model_id,
                               absl::string_view config_text,
                               absl::string_view environment, int shard,
                               absl::string_view sha256,
                               absl::string_view checkpoint) {
  OUBLI_ASSIGN_OR_RETURN(ModelConfig config,
                         ParseCoordinatorConfig(config_text, environment));
  if (model_id.empty()) return absl::InvalidArgumentError("no model id");
  if (shard < 0 || shard >= config.shards) {
    return absl::InvalidArgumentError(
        absl::StrCat("shard ", shard, " outside [0, ", config.shards, ")"));
  }
  if (Sha256Hex(checkpoint) != sha256) {
    return absl::InvalidArgumentError(
        absl::StrCat("checkpoint of shard ", shard, " (", checkpoint.size(),
                     " bytes) does not hash to ", sha256));
  }
  const std::string fingerprint = ConfigFingerprint(config);
  OUBLI_ASSIGN_OR_RETURN(std::shared_ptr<const ml::NamedTensors> base,
                         state_->bases->For(config));
  absl::StatusOr<std::shared_ptr<const ml::ShardModel>> model =
      ml::ShardModel::Create(config, *base, checkpoint);
  if (!model.ok()) {
    // Out of (device) memory is this worker's trouble, not the checkpoint's.
    if (absl::IsResourceExhausted(model.status())) return model.status();
    return absl::InvalidArgumentError(
        absl::StrCat("checkpoint of shard ", shard,
                     " does not fit the config: ", model.status().message()));
  }
  absl::MutexLock lock(&state_->mu);
  state_->slots[std::string(model_id)][shard] = {
      std::string(sha256), fingerprint, *std::move(model)};
  return absl::OkStatus();
}

absl::StatusOr<ShardPredictions> ShardServer::Predict(
    absl::string_view model_id, absl::string_view config_text,
    absl::string_view environment, absl::Span<const ShardCheckpointRef> shards,
    absl::Span<const float> inputs, int64_t rows) {
  // First drop what the coordinator no longer serves from here: checkpoints
  // of prefixes a deletion cut (or training replaced), shards moved to
  // another worker. Before anything can fail, so a purge's sync always
  // takes effect.
  {
    absl::MutexLock lock(&state_->mu);
    auto model_slots = state_->slots.find(model_id);
    if (model_slots != state_->slots.end()) {
      std::map<int, State::Slot>& by_shard = model_slots->second;
      for (auto it = by_shard.begin(); it != by_shard.end();) {
        const bool named =
            std::any_of(shards.begin(), shards.end(), [&](const auto& ref) {
              return ref.shard == it->first &&
                     ref.checkpoint_sha256 == it->second.sha256;
            });
        it = named ? std::next(it) : by_shard.erase(it);
      }
      if (by_shard.empty()) state_->slots.erase(model_slots);
    }
  }
  OUBLI_ASSIGN_OR_RETURN(ModelConfig config,
                         ParseCoordinatorConfig(config_text, environment));
  const int64_t width = config.backbone.InputSize();
  if (rows < 0 || static_cast<uint64_t>(rows) > inputs.size() ||
      static_cast<int64_t>(inputs.size()) != rows * width) {
    return absl::InvalidArgumentError(
        absl::StrCat("predict got ", inputs.size(), " values for ", rows,
                     " rows of ", width, " features"));
  }
  absl::flat_hash_set<int> named;
  for (const ShardCheckpointRef& ref : shards) {
    if (ref.shard < 0 || ref.shard >= config.shards) {
      return absl::InvalidArgumentError(absl::StrCat(
          "shard ", ref.shard, " outside [0, ", config.shards, ")"));
    }
    if (!named.insert(ref.shard).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("shard ", ref.shard, " named twice"));
    }
  }
  const std::string fingerprint = ConfigFingerprint(config);

  ShardPredictions out;
  out.classes = config.backbone.num_classes;
  std::vector<std::shared_ptr<const ml::ShardModel>> models(shards.size());
  {
    absl::MutexLock lock(&state_->mu);
    auto model_slots = state_->slots.find(model_id);
    if (model_slots != state_->slots.end()) {
      const std::map<int, State::Slot>& by_shard = model_slots->second;
      for (size_t i = 0; i < shards.size(); ++i) {
        auto slot = by_shard.find(shards[i].shard);
        if (slot != by_shard.end() &&
            slot->second.sha256 == shards[i].checkpoint_sha256 &&
            slot->second.config_fingerprint == fingerprint) {
          models[i] = slot->second.model;
        }
      }
    }
  }

  torch::Tensor x;
  if (rows > 0) {
    x = torch::from_blob(const_cast<float*>(inputs.data()), {rows, width},
                         torch::kFloat32);
  }
  for (size_t i = 0; i < shards.size(); ++i) {
    ShardAnswer answer;
    answer.shard = shards[i].shard;
    answer.loaded = models[i] != nullptr;
    if (answer.loaded && rows > 0) {
      OUBLI_ASSIGN_OR_RETURN(torch::Tensor p, models[i]->Probabilities(x));
      try {
        p = p.contiguous();
        answer.probabilities.assign(p.data_ptr<float>(),
                                    p.data_ptr<float>() + p.numel());
      } catch (const std::exception& e) {
        return absl::ResourceExhaustedError(absl::StrCat(
            "predict: copying shard ", answer.shard, ": ", e.what()));
      }
    }
    out.shards.push_back(std::move(answer));
  }
  return out;
}

void ShardServer::DropAll() {
  absl::MutexLock lock(&state_->mu);
  state_->slots.clear();
}

int ShardServer::loaded() const {
  absl::MutexLock lock(&state_->mu);
  int n = 0;
  for (const auto& [model, by_shard] : state_->slots) {
    n += static_cast<int>(by_shard.size());
  }
  return n;
}

}  // namespace oubli::worker
