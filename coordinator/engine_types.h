// Plain values the engine takes and returns: deletion receipts and stages,
// what a shard serves, model status, reports. No behaviour, no torch.
#ifndef OUBLI_COORDINATOR_ENGINE_TYPES_H_
#define OUBLI_COORDINATOR_ENGINE_TYPES_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "absl/types/span.h"
#include "common/config.h"

namespace oubli::coordinator {

enum class DeletionStage { kAccepted, kForgotten, kPurged, kRestored };
const char* DeletionStageName(DeletionStage stage);

struct AffectedPrefix {
  int shard = 0;
  int slice = 0;
  int sequence = 0;
  int valid_length_before = 0;  // prefix length served/valid before
  int valid_length_after = 0;   // cut to this length
};

struct DeletionReceipt {
  std::string deletion_id;  // empty for a no-op request
  std::string owner;        // ForgetOwner only
  std::vector<std::string> resolved_ids;
  std::vector<std::string> unknown_ids;  // NOT_FOUND, listed not fatal
  std::vector<std::pair<std::string, std::string>> already_deleted;  // id, by
  std::vector<int> affected_shards;
  std::vector<AffectedPrefix> affected;
  DeletionStage stage = DeletionStage::kAccepted;
  // absl::InfinitePast() until reached.
  absl::Time accepted_at = absl::InfinitePast();
  absl::Time forgotten_at = absl::InfinitePast();
  absl::Time purged_at = absl::InfinitePast();
  absl::Time restored_at = absl::InfinitePast();
  // Model fingerprints (SHA-256 over served adapter tensors).
  std::string fingerprint_before;
  std::string fingerprint_forgotten;
  std::string fingerprint_restored;
  std::string note;  // e.g. why there is nothing to retrain
};

// Which deletions ListDeletions returns, newest first.
struct DeletionQuery {
  std::vector<DeletionStage> stages;  // at any of these; empty: any stage
  std::string owner;  // ForgetOwner deletions of this owner; empty: any
  absl::Time accepted_from = absl::InfinitePast();  // inclusive
  absl::Time accepted_to = absl::InfiniteFuture();  // exclusive
  int page_size = 100;
  std::string below_id;  // continue with ids below this one; "": newest
};

struct DeletionPage {
  std::vector<DeletionReceipt> receipts;
  // Where the next page starts (below_id); "" when nothing more matches.
  std::string next_below_id;
};

struct ServedShard {
  int shard = 0;
  bool served = false;  // false: no valid prefix, dropped from the ensemble
  int sequence = -1;
  std::vector<int> prefix;  // slice order of the served prefix
  std::string key;          // its checkpoint key
  int64_t samples = 0;      // active samples in the shard
  // Predict only: the worker that computed this shard's probabilities;
  // empty when the coordinator did.
  std::string worker;
};

// Most rows one Predict answers, sequences one Score scores, tokens one
// Generate makes.
inline constexpr int kMaxPredictRows = 4096;
inline constexpr int kMaxScoredSequences = 256;
inline constexpr int kMaxGeneratedTokens = 1024;

struct Prediction {
  int64_t rows = 0;
  int64_t classes = 0;
  std::vector<float> probabilities;  // rows x classes, row-major
  std::string fingerprint;
  std::vector<ServedShard> served;
  // No shard served and the config's serving.base_fallback is on: the
  // public base model answered (no user data in it).
  bool from_base = false;
};

// Engine::Score: per sequence, log p(token i | tokens before i) for
// i = 1..n-1 under the ensemble.
struct TokenScores {
  std::vector<std::vector<float>> token_log_probs;
  std::string fingerprint;
  std::vector<ServedShard> served;
  bool from_base = false;
};

struct GenerateOptions {
  std::vector<int32_t> prompt;
  int max_tokens = 16;
  double temperature = 0;  // 0: greedy
  uint64_t seed = 0;
  std::vector<int32_t> stop_tokens;
};

enum class FinishReason { kMaxTokens, kStopToken, kContext };

struct Generation {
  std::vector<int32_t> tokens;  // generated, the prompt excluded
  std::vector<float> token_log_probs;  // the ensemble's, before temperature
  FinishReason finish_reason = FinishReason::kMaxTokens;
  std::string fingerprint;
  std::vector<ServedShard> served;
  bool from_base = false;
};

struct SequenceStatus {
  std::vector<int> order;
  int valid_length = 0;
};

struct ShardStatus {
  ServedShard served;
  std::vector<SequenceStatus> sequences;
  std::vector<int64_t> slice_samples;  // active samples per slice
};

// The largest slice's active samples over the mean slice's (1: perfectly
// even); 0 for a model without samples. Placement by owner makes it grow
// with the largest owners (every sample of an owner shares one slice).
double SliceImbalance(absl::Span<const ShardStatus> shards);

struct ModelStatus {
  ModelConfig config;
  bool training_requested = false;
  int64_t active_samples = 0;
  std::string fingerprint;
  std::vector<ShardStatus> shards;
  double slice_imbalance = 0;  // SliceImbalance(shards)
  int missing_prefixes = 0;   // current prefixes without a checkpoint
  int pending_deletions = 0;  // not yet restored
  // pending_deletions by current stage. A deletion goes from ACCEPTED to
  // FORGOTTEN inside one group commit, so pending_accepted is 0 whenever
  // the status can be read; it is kept for a stage-complete breakdown.
  int pending_accepted = 0;
  int pending_forgotten = 0;
  int pending_purged = 0;
  // ACCEPTED time of the oldest pending deletion; InfinitePast if none.
  absl::Time oldest_pending_accepted_at = absl::InfinitePast();
  // Shards queued for (re)training, due now or later (batched policy);
  // shards being trained right now are not counted.
  int retrain_queue_shards = 0;
  // Training owed, in sample-visits: every current prefix without a
  // checkpoint (first training, new samples and deletions alike; also those
  // that erasure-coded chunks will rebuild), its samples times
  // epochs_per_position, shared prefixes once.
  int64_t retrain_backlog_sample_visits = 0;
  std::string threads;  // pinned thread settings
};

// On-disk footprint of one model.
struct StorageStats {
  int64_t lineage_db_bytes = 0;  // every file of the lineage DB
  int64_t checkpoint_bytes = 0;  // every checkpoint file
};

struct VerifyReport {
  bool restored = false;  // every shard served at full length
  bool match = false;     // served checkpoints == from-scratch, bitwise
  std::string served_fingerprint;
  std::string scratch_fingerprint;
  std::vector<std::pair<int, bool>> shard_matches;
  absl::Duration elapsed;
};

struct TrainSummary {
  int positions_trained = 0;
  int positions_restored = 0;  // rebuilt from erasure-coded chunks
  int64_t samples = 0;         // sample-visits
  int64_t steps = 0;
  absl::Duration elapsed;
};

}  // namespace oubli::coordinator

#endif  // OUBLI_COORDINATOR_ENGINE_TYPES_H_
