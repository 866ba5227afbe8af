// The single-node model registry: one Engine per model id under a root data
// directory, asynchronous training jobs, and idempotency keys for deletions.
//
// This is the domain layer behind the public API: it speaks absl::Status and
// the engine's types, never gRPC, so the transport (coordinator/grpc_service)
// and a later multi-worker deployment can sit on top of it unchanged.
//
// Layout: <root>/<model_id>/ is the engine's data dir; the engine keeps its
// own config in its lineage DB, so Open() reopens every model found there.
//
// Deletion ids handed out here are qualified by the model,
// "<model_id>/<engine deletion id>", because engines number their deletions
// independently and clients should need only the id to look one up.
//
// Thread-safe.
#ifndef OUBLI_COORDINATOR_MODEL_REGISTRY_H_
#define OUBLI_COORDINATOR_MODEL_REGISTRY_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "common/config.h"
#include "common/thread_priority.h"
#include "common/types.h"
#include "coordinator/engine.h"
#include "coordinator/metrics.h"
#include "storage/lineage_store.h"

namespace oubli::coordinator {

enum class JobState { kPending, kRunning, kSucceeded, kFailed };
const char* JobStateName(JobState state);

// A snapshot of one training job.
struct JobInfo {
  std::string job_id;  // "job-N", unique for the registry's lifetime
  std::string model_id;
  JobState state = JobState::kPending;
  // Prefixes trained so far / prefixes that were missing when the job
  // started (the job's whole workload). Deletions during the job can add
  // work; trained_prefixes is clamped to [0, total_prefixes].
  int trained_prefixes = 0;
  int total_prefixes = 0;
  std::string error;  // kFailed: the status text
  absl::Time created_at = absl::InfinitePast();
  absl::Time started_at = absl::InfinitePast();   // InfinitePast until running
  absl::Time finished_at = absl::InfinitePast();  // InfinitePast until done

  double progress() const {
    return total_prefixes == 0
               ? (state == JobState::kSucceeded ? 1.0 : 0.0)
               : static_cast<double>(trained_prefixes) / total_prefixes;
  }
};

// "<model_id>/<engine deletion id>" and back. Split fails with
// InvalidArgument when the id has no model part.
std::string QualifyDeletionId(absl::string_view model_id,
                              absl::string_view engine_deletion_id);
absl::StatusOr<std::pair<std::string, std::string>> SplitDeletionId(
    absl::string_view qualified_id);

class ModelRegistry {
 public:
  struct Options {
    std::string root_dir;
    // Passed to every engine.
    int training_threads = 1;
    bool background_retrain = true;
    // Passed to every engine (Engine::Options::background_priority);
    // training jobs' threads run at it too.
    BackgroundPriority background_priority = {};
    // Gives each engine its EngineMetrics (ForModel(model id)); nullptr:
    // no metrics.
    std::shared_ptr<ModelMetricsFactory> metrics;
    // Passed to every engine: positions train on worker processes.
    std::shared_ptr<RemoteTrainer> remote_trainer;
    std::shared_ptr<CheckpointReplicas> replicas;
    // Passed to every engine: Predict's shards are answered on workers.
    std::shared_ptr<ShardServing> shard_serving;
    // Passed to every engine: one budget for every model's slice bytes.
    // nullptr: each engine keeps a cache of its own.
    std::shared_ptr<EncodedSliceCache> slice_cache;
    // Signs every model's deletion ledger; must outlive the registry.
    // nullptr: no ledgers.
    const SigningKey* ledger_key = nullptr;
  };

  // Creates root_dir if needed and reopens every model found under it.
  // Fails if any existing model cannot be opened: serving a partial set of
  // models would turn their ids into confusing NOT_FOUNDs.
  static absl::StatusOr<std::unique_ptr<ModelRegistry>> Open(
      const Options& options);
  // Waits for running training jobs (the engine has no cancellation).
  ~ModelRegistry();
  ModelRegistry(const ModelRegistry&) = delete;
  ModelRegistry& operator=(const ModelRegistry&) = delete;

  // Creates the model `config.model_id`. Idempotent for an identical config
  // (ConfigToText equal); AlreadyExists for a different one.
  absl::StatusOr<ModelConfig> CreateModel(const ModelConfig& config);
  std::vector<std::string> ModelIds() const;
  // The model's config (cheap; GetModelStatus computes much more).
  absl::StatusOr<ModelConfig> GetConfig(absl::string_view model_id) const;

  absl::StatusOr<storage::IngestResult> Ingest(
      absl::string_view model_id, absl::Span<const Sample> samples);

  // Starts Engine::Train on a thread. If a job of this model is pending or
  // running, returns it instead. FailedPrecondition when the model has no
  // samples (the job could only fail).
  absl::StatusOr<JobInfo> StartTraining(absl::string_view model_id);
  absl::StatusOr<JobInfo> GetJob(absl::string_view job_id);

  // `idempotency_key` empty: none. A repeated key returns the current
  // receipt of the deletion it created; a key reused for a different request
  // is a FailedPrecondition. Keys live in memory only, for the lifetime of
  // this registry: after a restart a repeated key runs the request again,
  // which the engine answers idempotently (already-deleted ids, or the
  // owner's earlier deletion), so no data is deleted twice.
  absl::StatusOr<DeletionReceipt> DeleteSamples(
      absl::string_view model_id, absl::Span<const std::string> sample_ids,
      absl::string_view idempotency_key);
  absl::StatusOr<DeletionReceipt> ForgetOwner(
      absl::string_view model_id, absl::string_view owner,
      absl::string_view idempotency_key);
  absl::StatusOr<DeletionReceipt> GetDeletion(absl::string_view deletion_id);
  // Returns the receipt as soon as its stage differs from `seen_stage` or it
  // is RESTORED, or after `timeout` with the unchanged receipt. Lets a
  // watcher wake for changes without polling the store in a tight loop.
  absl::StatusOr<DeletionReceipt> AwaitDeletionChange(
      absl::string_view deletion_id, DeletionStage seen_stage,
      absl::Duration timeout);

  // DeleteModel's receipt.
  struct ModelDeletion {
    std::string model_id;
    bool purged = false;  // every copy destroyed
    absl::Time accepted_at;
    absl::Time purged_at = absl::InfinitePast();
    std::string note;  // why PURGED waits, when it does
    // Every serving copy and chunk on workers is gone (durable).
    bool remote_destroyed = false;
  };
  // Deletes the model: durable (DATA_DIR/~deleted-models/ID) before it
  // returns ACCEPTED; from then on its calls answer FailedPrecondition and
  // its training stops. In the background: every serving copy and chunk on
  // workers is destroyed (waiting for unreachable holders, retried), then
  // every file of the model is shredded and its directory removed, and the
  // record says PURGED. A restart finishes a deletion a crash interrupted.
  // The model's deletion ledger (digests only) is kept
  // (DATA_DIR/~deleted-ledgers/ID, readable by oublictl audit --ledger_file).
  // Idempotent: a repeat returns the current receipt, also after PURGED
  // (until the id is created again). NotFound: no such model and no record;
  // other codes: the record could not be written (nothing was deleted).
  absl::StatusOr<ModelDeletion> DeleteModel(absl::string_view model_id);
  // DeleteModel's receipt without starting one. NotFound: no deletion of
  // this model is known.
  absl::StatusOr<ModelDeletion> GetModelDeletion(absl::string_view model_id);

  absl::StatusOr<Prediction> Predict(absl::string_view model_id,
                                     absl::Span<const float> inputs,
                                     int64_t rows);
  // Engine::PredictTokens, Score and Generate of the model.
  absl::StatusOr<Prediction> PredictTokens(
      absl::string_view model_id,
      absl::Span<const std::vector<int32_t>> sequences);
  absl::StatusOr<TokenScores> Score(
      absl::string_view model_id,
      absl::Span<const std::vector<int32_t>> sequences);
  absl::StatusOr<Generation> Generate(absl::string_view model_id,
                                      const GenerateOptions& options);
  absl::StatusOr<ModelStatus> GetModelStatus(absl::string_view model_id);
  absl::StatusOr<StorageStats> GetStorageStats(absl::string_view model_id);
  absl::StatusOr<std::vector<ChunkPlacement>> ChunkPlacements(
      absl::string_view model_id);
  absl::StatusOr<VerifyReport> Verify(absl::string_view model_id);
  // Engine::ListDeletions of the model, with qualified deletion ids
  // ("MODEL_ID/del-N"; next_below_id stays unqualified). NotFound: no
  // such model.
  absl::StatusOr<DeletionPage> ListDeletions(absl::string_view model_id,
                                             const DeletionQuery& query);
  absl::StatusOr<Engine::LedgerPage> ReadLedger(absl::string_view model_id,
                                                int64_t from_sequence,
                                                size_t limit);
  // Engine::NamesChunkHolder of any model.
  absl::StatusOr<bool> NamesChunkHolder(absl::string_view holder);
  // Engine::RetryPurgesNow on every model.
  void RetryPurgesNow();

 private:
  struct Job {
    JobInfo info;
    std::shared_ptr<Engine> engine;
    std::thread thread;
  };
  struct IdempotencyEntry {
    std::string request_digest;  // what the key was first used for
    std::string deletion_id;     // qualified; empty for a no-op receipt
    // A request with this key is running: others with it wait for its
    // answer, while requests with other keys go on (and group-commit).
    bool running = false;
  };

  explicit ModelRegistry(Options options);
  absl::StatusOr<std::shared_ptr<Engine>> FindEngine(
      absl::string_view model_id) const;
  std::string ModelDir(absl::string_view model_id) const;
  void RunJob(Job* job);
  // Shared path of DeleteSamples / ForgetOwner.
  absl::StatusOr<DeletionReceipt> DeleteWithKey(
      absl::string_view model_id, absl::string_view idempotency_key,
      const std::string& request_digest,
      const std::function<absl::StatusOr<DeletionReceipt>(Engine&)>& run);

  const Options options_;

  // Serializes CreateModel so two creators of one id cannot both open it;
  // held across Engine::Open, which mu_ must not be (lookups would stall).
  absl::Mutex create_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  // Guards the key map only (never held across a deletion): a key maps to
  // exactly one deletion because a second request with it waits while the
  // first is `running`.
  absl::Mutex idempotency_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  absl::flat_hash_map<std::string, IdempotencyEntry> idempotency_keys_
      ABSL_GUARDED_BY(idempotency_mu_);  // "<model_id>\0<key>" -> entry

  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::shared_ptr<Engine>> engines_
      ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::unique_ptr<Job>> jobs_
      ABSL_GUARDED_BY(mu_);
  // model id -> its pending or running job id.
  absl::flat_hash_map<std::string, std::string> active_jobs_
      ABSL_GUARDED_BY(mu_);
  int64_t next_job_number_ ABSL_GUARDED_BY(mu_) = 1;
  // Models being deleted (out of engines_), with their receipts.
  absl::flat_hash_map<std::string, ModelDeletion> deleting_
      ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> deletion_threads_ ABSL_GUARDED_BY(mu_);
  // Their engines while copies on workers are destroyed: RetireWorker must
  // see the holders they name.
  absl::flat_hash_map<std::string, std::weak_ptr<Engine>> deleting_engines_
      ABSL_GUARDED_BY(mu_);
  // Bumped by RetryPurgesNow: deletion threads waiting out a back-off wake.
  int64_t deletion_retries_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;

  std::string DeletionRecordPath(absl::string_view model_id) const;
  absl::StatusOr<std::optional<ModelDeletion>> ReadDeletionRecord(
      absl::string_view model_id) const;
  absl::Status WriteDeletionRecord(const ModelDeletion& deletion) const;
  // Runs on its own thread until the model is PURGED or the registry stops.
  void FinishModelDeletion(std::string model_id,
                           std::shared_ptr<Engine> engine);
};

}  // namespace oubli::coordinator

#endif  // OUBLI_COORDINATOR_MODEL_REGISTRY_H_
