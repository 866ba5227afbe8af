#include "worker/position_worker.h"

#include <torch/torch.h>

#include <cstring>
#include <list>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/config.h"
#include "common/status_macros.h"
#include "worker/ml/base_weights.h"
#include "worker/ml/determinism.h"
#include "worker/ml/s3t_trainer.h"

namespace oubli::worker {

struct PositionWorker::Trainers {
  struct Entry {
    std::string fingerprint;  // ConfigFingerprint: what the weights depend on
    std::shared_ptr<ml::S3tTrainer> trainer;
  };
  const size_t capacity;
  const std::shared_ptr<ml::BaseWeightsCache> bases;
  absl::Mutex mu;
  std::list<Entry> entries ABSL_GUARDED_BY(mu);  // most recent first

  Trainers(size_t n, std::shared_ptr<ml::BaseWeightsCache> b)
      : capacity(n < 1 ? 1 : n), bases(std::move(b)) {}

  absl::StatusOr<std::shared_ptr<ml::S3tTrainer>> For(
      const ModelConfig& config) {
    const std::string fingerprint = ConfigFingerprint(config);
    {
      absl::MutexLock lock(&mu);
      for (auto it = entries.begin(); it != entries.end(); ++it) {
        if (it->fingerprint == fingerprint) {
          entries.splice(entries.begin(), entries, it);
          return entries.front().trainer;
        }
      }
    }
    OUBLI_ASSIGN_OR_RETURN(std::shared_ptr<const ml::NamedTensors> base,
                           bases->For(config));
    // The trainer's copy shares the tensors' storage with the cache.
    OUBLI_ASSIGN_OR_RETURN(std::unique_ptr<ml::S3tTrainer> created,
                           ml::S3tTrainer::Create(config, *base));
    std::shared_ptr<ml::S3tTrainer> trainer = std::move(created);
    absl::MutexLock lock(&mu);
    entries.push_front({fingerprint, trainer});
    if (entries.size() > capacity) entries.pop_back();
    return trainer;
  }
};

absl::StatusOr<ModelConfig> ParseCoordinatorConfig(
    absl::string_view config_text, absl::string_view environment) {
  if (environment != ml::NumericEnvironment()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "numeric environment differs: coordinator has '", environment,
        "', this worker '", ml::NumericEnvironment(), "'"));
  }
  // A config this worker does not understand (another release) is not the
  // request's fault: FailedPrecondition, so the coordinator trains it
  // elsewhere instead of discarding the parent checkpoint.
  // A coordinator's config text; an older one names no placement.
  absl::StatusOr<ModelConfig> config = ParseStoredConfig(config_text);
  if (config.ok()) {
    if (absl::Status valid = ValidateConfig(*config); !valid.ok()) {
      config = valid;
    }
  }
  if (!config.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("config: ", config.status().message()));
  }
  return config;
}

std::shared_ptr<ml::BaseWeightsCache> NewBaseWeightsCache(int capacity) {
  return std::make_shared<ml::BaseWeightsCache>(capacity);
}

PositionWorker::PositionWorker(int cached_trainers,
                               std::shared_ptr<ml::BaseWeightsCache> bases)
    : trainers_(std::make_unique<Trainers>(
          static_cast<size_t>(cached_trainers),
          bases != nullptr ? std::move(bases)
                           : std::make_shared<ml::BaseWeightsCache>())) {}

PositionWorker::~PositionWorker() = default;

absl::StatusOr<PositionResult> PositionWorker::Train(
    const PositionRequest& request, const std::function<bool()>& cancelled) {
  OUBLI_ASSIGN_OR_RETURN(
      ModelConfig config,
      ParseCoordinatorConfig(request.config_text, request.environment));
  if (request.shard < 0 || request.shard >= config.shards) {
    return absl::InvalidArgumentError(absl::StrCat(
        "shard ", request.shard, " outside [0, ", config.shards, ")"));
  }
  std::vector<bool> seen(config.slices, false);
  for (int slice : request.prefix) {
    if (slice < 0 || slice >= config.slices || seen[slice]) {
      return absl::InvalidArgumentError(absl::StrCat(
          "prefix must name distinct slices in [0, ", config.slices, ")"));
    }
    seen[slice] = true;
  }
  OUBLI_ASSIGN_OR_RETURN(std::shared_ptr<ml::S3tTrainer> trainer,
                         trainers_->For(config));
  absl::StatusOr<ml::PositionData> decoded =
      ml::PositionDataFromSlices(request.slices, config.backbone);
  if (absl::IsInvalidArgument(decoded.status())) {
    // The cached slices do not fit the request: not the parent's fault.
    return absl::DataLossError(decoded.status().message());
  }
  OUBLI_ASSIGN_OR_RETURN(ml::PositionData data, std::move(decoded));
  const int64_t classes = config.backbone.num_classes;
  try {
    if (data.size() > 0 && (data.labels.min().item<int64_t>() < 0 ||
                            data.labels.max().item<int64_t>() >= classes)) {
      return absl::DataLossError(
          absl::StrCat("slice labels outside [0, ", classes, ")"));
    }
  } catch (const std::exception& e) {
    return absl::ResourceExhaustedError(
        absl::StrCat("checking training labels: ", e.what()));
  }

  ml::TrainStats stats;
  OUBLI_ASSIGN_OR_RETURN(
      std::string checkpoint,
      trainer->TrainPosition(request.shard, request.prefix, request.parent,
                             data, &stats, cancelled));
  PositionResult result;
  result.checkpoint = std::move(checkpoint);
  result.samples = stats.samples;
  result.steps = stats.steps;
  return result;
}

}  // namespace oubli::worker
