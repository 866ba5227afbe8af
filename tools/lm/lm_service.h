// What the language-model forgetting study asks of the oubli service: the
// public API's calls it makes (CreateModel, IngestSamples, Train and
// GetJob, GetModel, ForgetOwner, WatchDeletion, Verify, Score and
// Generate), in domain types. Its implementation talks gRPC to a real
// coordinator (tools/lm/grpc_lm_service.h); this header stays free of gRPC
// and torch so the study's library keeps the torch PCH.
#ifndef OUBLI_TOOLS_LM_LM_SERVICE_H_
#define OUBLI_TOOLS_LM_LM_SERVICE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "common/config.h"
#include "common/types.h"
#include "tools/lm/forget_metrics.h"

namespace oubli::lm {

// One training job: the positions it trained and their sample-visits (the
// coordinator's training counters over the job), its wall time.
struct TrainCost {
  int64_t positions = 0;
  int64_t sample_visits = 0;
  absl::Duration elapsed;
};

// A ForgetOwner receipt, watched to FORGOTTEN.
struct ForgetReceipt {
  std::string deletion_id;
  absl::Duration to_forgotten;  // ACCEPTED -> FORGOTTEN, server clock
  std::vector<int> affected_shards;
};

struct VerifyResult {
  bool match = false;
  bool restored = false;
  absl::Duration elapsed;  // the server's
  std::string served_fingerprint;
};

class LmService {
 public:
  virtual ~LmService() = default;

  // Where the service runs, for people ("coordinator HOST:PORT, 1 worker").
  virtual std::string Describe() const = 0;

  // CreateModel of `config` as `model_id`. Errors: the RPC's.
  virtual absl::Status CreateModel(const std::string& model_id,
                                   const ModelConfig& config) = 0;
  // IngestSamples of token samples; Internal unless every one is accepted.
  virtual absl::Status Ingest(const std::string& model_id,
                              absl::Span<const Sample> samples) = 0;
  // Train, waiting for the job; Internal when the job fails.
  virtual absl::StatusOr<TrainCost> Train(const std::string& model_id) = 0;
  // Positions and sample-visits trained for the model since the service
  // started, whoever started them (a Train job, or retraining the service
  // began on its own, e.g. for a shard a deletion left serving nothing);
  // elapsed is not set. Internal when the service does not say.
  virtual absl::StatusOr<TrainCost> TrainedSoFar(
      const std::string& model_id) = 0;
  // GetModel's fingerprint of the served model.
  virtual absl::StatusOr<std::string> Fingerprint(
      const std::string& model_id) = 0;
  // ForgetOwner, then WatchDeletion until the receipt says FORGOTTEN.
  virtual absl::StatusOr<ForgetReceipt> ForgetOwner(
      const std::string& model_id, const std::string& owner) = 0;
  // WatchDeletion until RESTORED; DeadlineExceeded after `timeout`.
  virtual absl::Status WaitForRestored(const std::string& deletion_id,
                                       absl::Duration timeout) = 0;
  virtual absl::StatusOr<VerifyResult> Verify(const std::string& model_id) = 0;
  // Score and greedy Generate of `model_id`'s served ensemble (or its base,
  // when the model has base_fallback and serves nothing).
  virtual std::unique_ptr<LmScorer> Scorer(const std::string& model_id) = 0;
};

}  // namespace oubli::lm

#endif  // OUBLI_TOOLS_LM_LM_SERVICE_H_
