// The in-process oubli engine: one model's lineage store, sharding plan,
// S3T training, served ensemble and deletion pipeline.
//
// Deletion stages (each timestamped in the durable deletion log):
//   ACCEPTED   the request is fsynced and the samples are out of every index
//   FORGOTTEN  every sequence of an affected shard is cut before the affected
//              slice and the served ensemble switched: no training involved
//   PURGED     sample payloads and every checkpoint containing them destroyed
//              (background purge thread; one compaction per pass)
//   RESTORED   the cut prefixes are retrained (background, per policy)
//
// Checkpoints are content addressed (see PrefixKey), so validity is derived,
// not tracked: a prefix is valid iff its current key has a checkpoint.
//
// A facade: it opens the model, owns the engine mutex and orchestrates its
// parts, none of which calls back into it (the shards in coordinator/
// shard_set, the pending deletions, the purger, the retrain scheduler, the
// predictor, the verifier; see the README's architecture).
//
// Thread-safe. Torch stays out of this header.
#ifndef OUBLI_COORDINATOR_ENGINE_H_
#define OUBLI_COORDINATOR_ENGINE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "common/config.h"
#include "common/signing_key.h"
#include "common/thread_priority.h"
#include "common/types.h"
#include "coordinator/chunk_replication.h"
#include "coordinator/encoded_slice_cache.h"
#include "coordinator/engine_types.h"
#include "coordinator/metrics.h"
#include "coordinator/remote_training.h"
#include "storage/encoded_slice.h"
#include "storage/lineage_store.h"

namespace oubli::coordinator {

class Engine {
 public:
  struct Options {
    std::string data_dir;
    // Required for a new data dir; for an existing one it must match the
    // stored config's weight-determining part (or be absent).
    std::optional<ModelConfig> config;
    int training_threads = 1;
    // The threads that train, purge and compact run at it
    // (common/thread_priority.h), so Predict gets a core first; the
    // default leaves them at the process's priority. RocksDB's threads are
    // process-wide: the first engine opened with a lowering one sets them.
    BackgroundPriority background_priority = {};
    // Off in tests that drive retraining by hand via RunPendingRetrains().
    bool background_retrain = true;
    // Deletion-stage and training events; nullptr: none. Some are called
    // with the engine's mutex held (see coordinator/metrics.h).
    std::shared_ptr<EngineMetrics> metrics;
    // Trains positions on worker processes when it has live ones of this
    // process's numeric environment (so checkpoint bits do not depend on
    // where they were trained); nullptr or none alive: train here.
    std::shared_ptr<RemoteTrainer> remote_trainer;
    // Erasure-coded copies of every new checkpoint on workers; a lost
    // checkpoint with a copy is rebuilt instead of retrained, and purges
    // destroy the copies too. nullptr: none.
    std::shared_ptr<CheckpointReplicas> replicas;
    // Answers Predict's shards on workers of this process's numeric
    // environment (so the probabilities are the bits it would compute
    // itself); a shard no worker answers is computed here. nullptr or
    // none alive: all here.
    std::shared_ptr<ShardServing> shard_serving;
    // Holds the model's slice bytes between the positions that train on
    // them, within a budget shared by every model given the same cache
    // (the coordinator's --slice_cache_bytes). nullptr: a cache of
    // EncodedSliceCache::kDefaultBytes for this engine alone.
    std::shared_ptr<EncodedSliceCache> slice_cache;
    // Largest encoded slice: an ingest that would take a slice past it is
    // refused whole (ResourceExhausted). Tests set a small one.
    int64_t max_slice_bytes = storage::EncodedSlice::kMaxBytes;
    // Signs the model's deletion ledger (coordinator/deletion_ledger.h);
    // must outlive the engine. nullptr: no ledger is kept.
    const SigningKey* ledger_key = nullptr;
    // Test seam: runs in Verify between capturing a shard's served
    // checkpoint and reading its data without the deletion lock, so a test
    // can land a deletion exactly there. Empty in production.
    std::function<void(int shard)> verify_before_unlocked_read;
  };

  // Opens the model in options.data_dir (creating it with options.config),
  // finishes what a crash interrupted (purges of unfinished deletions) and
  // starts the purge and retrain threads. InvalidArgument: no data_dir, or
  // an invalid config (given, or stored and unparsable); PermissionDenied:
  // the dir cannot be created; FailedPrecondition: a new dir without a
  // config, a stored model of another (weight-determining) config, or base
  // weights that cannot be loaded; DataLoss: a corrupt deletion record;
  // other codes: storage errors (RocksDB, checkpoint files).
  static absl::StatusOr<std::unique_ptr<Engine>> Open(const Options& options);
  ~Engine();  // Stop()
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  const ModelConfig& config() const;

  // Assigns each sample to (shard, slice) and stores it. Samples that do
  // not fit the model (feature count, label), are invalid (id, owner,
  // deletion_risk), differ from a stored one with the same id, or reuse a
  // deleted id are rejected per sample, with reasons, not as an error.
  // ResourceExhausted: the batch would take a slice past
  // options.max_slice_bytes encoded (the message names the slice and the
  // limit; nothing of the batch is stored). Other errors: storage failures
  // (Internal/DataLoss from RocksDB).
  absl::StatusOr<storage::IngestResult> Ingest(
      absl::Span<const Sample> samples);

  // Trains every prefix of every sequence that lacks a checkpoint, blocking
  // until done. Idempotent: existing prefixes are reused.
  // FailedPrecondition: no samples; Cancelled: the engine is closing;
  // ResourceExhausted: out of memory assembling or training a position;
  // other codes: checkpoint or storage failures.
  absl::StatusOr<TrainSummary> Train();

  // inputs: rows x input_size floats, row-major. InvalidArgument for a
  // row count < 1 or an input size other than rows x the model's;
  // FailedPrecondition when no shard has a valid prefix (unless
  // serving.base_fallback: then the base model answers, from_base);
  // Internal/ResourceExhausted when computing fails.
  absl::StatusOr<Prediction> Predict(absl::Span<const float> inputs,
                                     int64_t rows);
  // A classifying decoder's prediction for token rows. InvalidArgument:
  // not a classifying decoder, no rows, more than 4096, a row empty or
  // longer than the context, a token outside the vocabulary; otherwise as
  // Predict.
  absl::StatusOr<Prediction> PredictTokens(
      absl::Span<const std::vector<int32_t>> sequences);
  // Causal language models: per-token log-likelihoods of `sequences` under
  // the ensemble (mean of the served shards' next-token distributions).
  // InvalidArgument: not a causal LM, no sequences, more than 256, one
  // shorter than 2 tokens or longer than the context, a token outside the
  // vocabulary; FailedPrecondition/Internal/ResourceExhausted as Predict.
  absl::StatusOr<TokenScores> Score(
      absl::Span<const std::vector<int32_t>> sequences);
  // Continues options.prompt from the ensemble's next-token distribution
  // (see GenerateOptions). InvalidArgument: not a causal LM, an empty
  // prompt or one that fills the context, max_tokens outside 1..1024, a
  // negative or non-finite temperature, a token (prompt or stop) outside
  // the vocabulary; otherwise as Predict.
  absl::StatusOr<Generation> Generate(const GenerateOptions& options);

  // Both return once the deletion is durable (ACCEPTED, fsynced) and
  // FORGOTTEN (the served ensemble no longer depends on the data). Purge and
  // retraining follow in the background; watch them with GetDeletion or
  // WaitForStage. Concurrent calls are group-committed: they share one
  // synced write and one deactivation. Already deleted and unknown ids are
  // listed in the receipt, not errors. InvalidArgument: no ids, or an
  // invalid id or owner; NotFound: none of the ids is known / the owner has
  // no active samples; other codes: the durable write failed (nothing was
  // deleted).
  absl::StatusOr<DeletionReceipt> DeleteSamples(
      absl::Span<const std::string> sample_ids);
  absl::StatusOr<DeletionReceipt> ForgetOwner(absl::string_view owner);
  // NotFound: no such deletion; DataLoss: its record is corrupt.
  absl::StatusOr<DeletionReceipt> GetDeletion(absl::string_view deletion_id);

  // Blocks until the deletion reaches `stage`. DeadlineExceeded: not within
  // `timeout`; FailedPrecondition: the engine closed first; NotFound: no
  // such deletion.
  absl::Status WaitForStage(absl::string_view deletion_id, DeletionStage stage,
                            absl::Duration timeout);
  absl::Status WaitForRestored(absl::string_view deletion_id,
                               absl::Duration timeout);
  // Runs due retrains in the calling thread (any policy window ignored when
  // `ignore_policy`). For tests and tools with background_retrain off.
  // Errors as Train (a failed purge before it is logged and retried in the
  // background, not returned).
  absl::StatusOr<TrainSummary> RunPendingRetrains(bool ignore_policy);

  // Trains the served prefixes from scratch on the retained data, in memory,
  // and compares them bitwise with what is served. A mismatch is a report
  // (match false), not an error. Errors: ResourceExhausted (memory),
  // storage failures reading checkpoints or samples.
  absl::StatusOr<VerifyReport> Verify();

  // Stops training and the purge and retrain threads for good
  // (idempotent); a Train running returns at its next position.
  void Stop();

  // For DeleteModel: Stop, then destroys every copy of the model outside
  // its data dir (call it once nothing else uses the engine): the
  // serving copies in workers' memory and the erasure-coded chunks of every
  // checkpoint on workers. Idempotent; call again after a failure.
  // Unavailable while a worker holding chunks is unreachable; other codes:
  // storage failures reading manifests.
  absl::Status DestroyRemoteCopies();

  // Deletions matching `query`, newest first, a page at a time
  // (coordinator/deletion_log.h ListDeletions). DataLoss: a corrupt
  // record; other codes: storage failures.
  absl::StatusOr<DeletionPage> ListDeletions(const DeletionQuery& query);

  // A page of the deletion ledger: serialized oubli.v1.LedgerRecords from
  // `from_sequence` (>= 1) on, at most `limit`, and the public key that
  // signs them. FailedPrecondition: this engine keeps no ledger (opened
  // without a ledger key); other codes: storage failures.
  struct LedgerPage {
    std::vector<std::string> records;
    std::string public_key_pem;
    int64_t head_sequence = 0;
  };
  absl::StatusOr<LedgerPage> ReadLedger(int64_t from_sequence,
                                        size_t limit) const;

  // Whether any chunk manifest of this model, current or garbage, names
  // `holder` (as a holder, or as one whose chunk awaits destruction).
  // DataLoss: a manifest is unreadable; other codes: storage failures.
  absl::StatusOr<bool> NamesChunkHolder(absl::string_view holder);

  // Starts the next purge pass now instead of after the failure back-off
  // (up to 30 s): something that held purges back is gone.
  void RetryPurgesNow();

  ModelStatus GetModelStatus();
  std::string Fingerprint();
  // Walks the data dir (no engine lock): cost grows with the file count.
  // Fails when a file vanishes mid-walk (compaction, checkpoint GC): ask
  // again.
  absl::StatusOr<StorageStats> GetStorageStats();
  // Chunk manifests of the model's current checkpoints. DataLoss: a
  // manifest is unreadable; other codes: storage failures.
  absl::StatusOr<std::vector<ChunkPlacement>> ChunkPlacements();

  // Where the lineage DB and the checkpoints live (tests check erasure).
  std::string lineage_dir() const;
  std::string checkpoint_dir() const;

 private:
  struct State;
  explicit Engine(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace oubli::coordinator

#endif  // OUBLI_COORDINATOR_ENGINE_H_
