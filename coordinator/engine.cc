#include "coordinator/engine.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <set>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/hash.h"
#include "common/status_macros.h"
#include "coordinator/chunk_replication.h"
#include "coordinator/deletion_ledger.h"
#include "coordinator/deletion_log.h"
#include "coordinator/in_flight_drain.h"
#include "coordinator/model_base.h"
#include "coordinator/pending_deletions.h"
#include "coordinator/position_runner.h"
#include "coordinator/predictor.h"
#include "coordinator/purger.h"
#include "coordinator/retrain_queue.h"
#include "coordinator/retrain_scheduler.h"
#include "coordinator/sample_fit.h"
#include "coordinator/served_snapshot.h"
#include "coordinator/shard_set.h"
#include "coordinator/sharding_plan.h"
#include "coordinator/slice_data.h"
#include "coordinator/slice_generations.h"
#include "coordinator/verifier.h"
#include "oubli/internal/deletion.pb.h"
#include "storage/checkpoint_store.h"
#include "worker/ml/determinism.h"

namespace oubli::coordinator {
namespace {

using internal::DeletionRecord;

constexpr char kConfigMetaKey[] = "config";
constexpr char kTrainingRequestedMetaKey[] = "training_requested";

// A ShardServing query naming the model (no shards, no inputs).
ShardServing::Query ServingQueryOf(const ModelConfig& config,
                                   const std::string& config_text,
                                   const std::string& environment,
                                   bool reopened) {
  ShardServing::Query query;
  query.model_id = config.model_id;
  query.config_text = config_text;
  query.environment = environment;
  query.classes = config.backbone.num_classes;
  query.reopened = reopened;
  return query;
}

}  // namespace

// The facade's state: what Open read, the two engine locks and what they
// guard, and the parts, each with its own state, that the engine
// orchestrates. A part that takes the engine mutex is given it (and
// pointers to what it may touch under it); none calls back into State.
struct Engine::State {
  // Built by Open once everything it holds is open and read.
  State(Options opts, ModelConfig cfg, ShardingPlan sharding_plan,
        std::unique_ptr<storage::LineageStore> lineage,
        std::unique_ptr<storage::CheckpointStore> checkpoint_store,
        std::unique_ptr<const ModelBase> model_base,
        std::shared_ptr<const ml::ShardModel> base_alone,
        std::unique_ptr<DeletionLedger> deletion_ledger, bool reopened_model)
      : options(std::move(opts)),
        config(std::move(cfg)),
        environment(ml::NumericEnvironment()),
        config_text(ConfigToText(config)),
        config_fingerprint(Sha256()
                               .AddField(ConfigFingerprint(config))
                               .AddField(environment)
                               .FinishHex()),
        plan(std::move(sharding_plan)),
        base(std::move(model_base)),
        reopened(reopened_model),
        store(std::move(lineage)),
        ledger(std::move(deletion_ledger)),
        checkpoints(std::move(checkpoint_store)),
        slice_cache(options.slice_cache != nullptr
                        ? options.slice_cache
                        : std::make_shared<EncodedSliceCache>(
                              EncodedSliceCache::kDefaultBytes)),
        chunks(config.model_id, options.replicas.get(), store.get(), metrics),
        runner(config, config_text, environment, checkpoints.get(), &chunks,
               options.remote_trainer.get(), options.training_threads, metrics),
        shards(config, &plan, config_fingerprint, store.get(),
               checkpoints.get(), base.get(), &slice_generations,
               &served_snapshot, &slice_cache,
               [this](int shard) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
                 if (training_requested) {
                   retrain_queue.AddUnlessQueued(shard, absl::Now());
                   ExpediteIfUnserved(shard, absl::Now());
                 }
               }),
        pending(config.shards, config.sequences, config.slices, metrics),
        retrain_queue(config.retrain),
        generations(config.shards),
        slice_generations(config.shards, config.slices),
        restored_recorder(mu, &pending, store.get(), ledger.get()),
        predictor(&config, &served_snapshot, std::move(base_alone),
                  options.shard_serving.get(),
                  ServingQueryOf(config, config_text, environment, reopened),
                  checkpoints.get(), &predict_drain, metrics),
        verifier({
            .config = &config,
            .base = base.get(),
            .store = store.get(),
            .generations = &generations,
            .deletion_mu = &deletion_mu,
            .engine_mu = &mu,
            .shards = &shards,
            .before_unlocked_read = options.verify_before_unlocked_read,
        }),
        purger({
            .config = &config,
            .reopened = reopened,
            .engine_mu = &mu,
            .shards = &shards.table(),
            .pending = &pending,
            .slice_generations = &slice_generations,
            .served = &served_snapshot,
            .predict_drain = &predict_drain,
            .restored = &restored_recorder,
            .store = store.get(),
            .ledger = ledger.get(),
            .checkpoints = checkpoints.get(),
            .chunks = &chunks,
            .shard_serving = options.shard_serving.get(),
            .remote_trainer = options.remote_trainer.get(),
            .serving_query =
                ServingQueryOf(config, config_text, environment, reopened),
            .background_priority = options.background_priority,
        }),
        scheduler({
            .config = &config,
            .training_threads = options.training_threads,
            .background_priority = options.background_priority,
            .engine_mu = &mu,
            .shards = &shards,
            .queue = &retrain_queue,
            .pending = &pending,
            .plan = &plan,
            .base = base.get(),
            .runner = &runner,
            .slice_generations = &slice_generations,
            .generations = &generations,
            .served = &served_snapshot,
            .checkpoints = checkpoints.get(),
            .restored = &restored_recorder,
            .metrics = metrics,
            .remote_trainer = options.remote_trainer.get(),
            .environment = environment,
        }) {}

  const Options options;
  // options.metrics, or nullptr.
  EngineMetrics* const metrics = options.metrics.get();
  const ModelConfig config;
  // ml::NumericEnvironment() of this process; remote workers must match.
  const std::string environment;
  const std::string config_text;  // ConfigToText(config), for workers
  // Names the weights a config produces here: the config's fingerprint plus
  // the numeric environment (library versions, CPU kernels).
  const std::string config_fingerprint;
  const ShardingPlan plan;
  const std::unique_ptr<const ModelBase> base;
  // The model existed before this process: workers may hold slices an
  // earlier coordinator sent them.
  const bool reopened;
  std::unique_ptr<storage::LineageStore> store;
  // Null without a ledger key. Every deletion-record write goes through it.
  std::unique_ptr<DeletionLedger> ledger;
  std::unique_ptr<storage::CheckpointStore> checkpoints;
  // This model's slice bytes, within the (shared) cache's budget.
  ModelSliceCache slice_cache;
  ChunkReplication chunks;
  PositionRunner runner;

  DeletionQueue delete_queue;
  // Deletion groups and ingests run one at a time, in order; before mu.
  absl::Mutex deletion_mu ABSL_ACQUIRED_BEFORE(mu);
  int64_t next_deletion_seq ABSL_GUARDED_BY(deletion_mu) = 1;

  // The engine mutex. Predict never takes it.
  absl::Mutex mu;
  ShardSet shards ABSL_GUARDED_BY(mu);
  // Mirrored in `pending` (whether RESTORED waits for retraining).
  bool training_requested ABSL_GUARDED_BY(mu) = false;
  PendingDeletions pending ABSL_GUARDED_BY(mu);
  RetrainQueue retrain_queue ABSL_GUARDED_BY(mu);
  bool stopping ABSL_GUARDED_BY(mu) = false;  // WaitForStage gives up

  // Read without a lock.
  // Bumped under deletion_mu (and mu) by deletions and ingests.
  ShardGenerations generations;
  // Per slice: a position is stale only when a slice of its own prefix
  // changed (see SliceGenerations), bumped under mu beside `generations`.
  SliceGenerations slice_generations;
  // What Predict answers with; published under mu, read without it.
  PublishedSnapshot served_snapshot;
  // Predicts that may hand workers checkpoints they read: a purge pass
  // waits for those that started before it destroyed checkpoints, so no
  // worker loads one after the pass synced their serving copies.
  InFlightDrain predict_drain;

  // The parts (threads of their own: the purger's and the scheduler's).
  RestoredRecorder restored_recorder;
  Predictor predictor;
  Verifier verifier;
  Purger purger;
  RetrainScheduler scheduler;

  std::string FingerprintLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  absl::flat_hash_set<std::string> SnapshotCurrentKeys()
      ABSL_LOCKS_EXCLUDED(mu) {
    absl::MutexLock lock(&mu);
    return shards.table().CurrentKeys();
  }

  // ---- deletion
  // Queues the request and returns its receipt once it is FORGOTTEN (or its
  // error). Concurrent requests are committed as one group: one synced
  // write, one deactivation.
  absl::StatusOr<DeletionReceipt> SubmitDeletion(DeleteRequest* request)
      ABSL_LOCKS_EXCLUDED(deletion_mu, mu);
  // Resolves, records (ACCEPTED) and deactivates (FORGOTTEN) a group; returns
  // each request's answer, in group order. Reads the requests only: their
  // `result` belongs to the DeletionQueue.
  std::vector<absl::StatusOr<DeletionReceipt>> CommitDeletions(
      absl::Span<DeleteRequest* const> group)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(deletion_mu);
  // The stored deletion that forgot `owner` earlier, as a receipt with a
  // note; NotFound if the owner never had samples.
  absl::StatusOr<DeletionReceipt> EarlierOwnerDeletion(absl::string_view owner);
  // The live (pending) or stored record of a deletion.
  absl::StatusOr<DeletionRecord> LoadRecord(absl::string_view deletion_id);
  // Sequence lengths of a shard before and after a deactivation.
  struct Cut {
    std::vector<int> before, after;
  };
  // FORGOTTEN for a group of deletions: fail-closed, see the definition.
  // `min_bytes`: what the deleted samples took at least in each slice.
  std::map<int, Cut> Deactivate(
      const std::map<SliceRef, absl::flat_hash_set<std::string>>& by_slice,
      const std::map<SliceRef, int64_t>& min_bytes,
      const std::set<int>& affected) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  // `deletions` deletions committed together cut `shards`: queued per the
  // retrain policy (a shard left serving nothing at once), then the
  // training loops are woken.
  void ScheduleRetrain(const std::set<int>& shards, int deletions)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  // ResourceExhausted, naming the slice and the limit, if storing
  // `assigned` would take a slice past options.max_slice_bytes encoded
  // (samples already in their slice count nothing).
  absl::Status CheckSliceLimits(
      absl::Span<const storage::AssignedSample> assigned)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(deletion_mu) ABSL_LOCKS_EXCLUDED(mu);
  // A queued shard that has samples but serves nothing is due now,
  // whatever the batch window (RetrainQueue::Expedite): after a deletion,
  // an ingest, a checkpoint lost, or a restart.
  void ExpediteIfUnserved(int shard, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (shards[shard].ServesNothing()) {
      retrain_queue.Expedite(shard, now);
    }
  }
};

std::string Engine::State::FingerprintLocked() {
  // Every change to what a shard serves is published before mu is
  // released, so the snapshot's fingerprint is the current one.
  return served_snapshot.Get()->fingerprint;
}

absl::StatusOr<DeletionRecord> Engine::State::LoadRecord(
    absl::string_view deletion_id) {
  {
    absl::MutexLock lock(&mu);
    if (const DeletionRecord* live = pending.Find(deletion_id)) return *live;
  }
  return ReadDeletion(*store, deletion_id);
}

// -------------------------------------------------------------- deletion

absl::StatusOr<DeletionReceipt> Engine::State::SubmitDeletion(
    DeleteRequest* request) {
  return delete_queue.Submit(
      request, [this](absl::Span<DeleteRequest* const> group) {
        absl::MutexLock dlock(&deletion_mu);
        return CommitDeletions(group);
      });
}

absl::StatusOr<DeletionReceipt> Engine::State::EarlierOwnerDeletion(
    absl::string_view owner) {
  OUBLI_ASSIGN_OR_RETURN(std::optional<DeletionRecord> earlier,
                         FindOwnerDeletion(*store, owner));
  if (!earlier.has_value()) {
    // Deletions by sample id do not keep the owner (purged samples must not
    // name them), so an owner deleted that way looks like an unknown one.
    return absl::NotFoundError(absl::StrCat(
        "owner '", owner,
        "' has no active samples: never ingested, or every sample was "
        "already deleted by id"));
  }
  // The live record, if still pending, has the latest stage.
  OUBLI_ASSIGN_OR_RETURN(DeletionRecord latest,
                         LoadRecord(earlier->deletion_id()));
  DeletionReceipt receipt = ReceiptFromRecord(latest);
  receipt.note = absl::StrCat("owner already forgotten by ",
                              latest.deletion_id(), "; nothing new to do");
  return receipt;
}

std::vector<absl::StatusOr<DeletionReceipt>> Engine::State::CommitDeletions(
    absl::Span<DeleteRequest* const> group) {
  using Work = ResolvedRequest;  // one per request, in group order
  int64_t seq = next_deletion_seq;
  std::vector<Work> work = ResolveGroup(
      *store, group, SliceRef{config.shards, config.slices}, &seq);
  for (Work& w : work) {
    if (w.owner_already_forgotten) {
      // Idempotent repeat, or an owner we never had.
      w.result = EarlierOwnerDeletion(w.request->owner);
    }
  }
  auto results = [&work]() {
    std::vector<absl::StatusOr<DeletionReceipt>> out;
    out.reserve(work.size());
    for (Work& w : work) out.push_back(*std::move(w.result));
    return out;
  };

  std::vector<Work*> committing;
  for (Work& w : work) {
    if (!w.result.has_value() && !w.repeat) committing.push_back(&w);
  }
  if (!committing.empty()) {
    // ACCEPTED: every record and index removal of the group, one synced
    // batch. Nothing is acknowledged before it is on disk.
    std::string fingerprint_before;
    {
      absl::MutexLock lock(&mu);
      fingerprint_before = FingerprintLocked();
    }
    const int64_t accepted_at = absl::ToUnixNanos(absl::Now());
    std::vector<storage::LineageStore::NewDeletion> entries;
    for (Work* w : committing) {
      w->record.set_fingerprint_before(fingerprint_before);
      w->record.set_accepted_unix_nanos(accepted_at);
      storage::LineageStore::NewDeletion& entry = entries.emplace_back();
      entry.deletion_id = w->record.deletion_id();
      w->record.SerializeToString(&entry.record);
      entry.sample_ids.assign(w->record.resolved_ids().begin(),
                              w->record.resolved_ids().end());
    }
    auto record_deletions = [&](const storage::LineageStore::MetaPuts& ledger_puts) {
      return store->RecordDeletions(entries, ledger_puts);
    };
    std::vector<DeletionRecord> accepted;
    if (ledger != nullptr) {
      for (Work* w : committing) accepted.push_back(w->record);
    }
    if (absl::Status s = ledger != nullptr
                             ? ledger->Append(accepted, record_deletions)
                             : record_deletions({});
        !s.ok()) {
      for (Work* w : committing) w->result = s;
      // In-group repeats may point at these unrecorded deletions.
      for (Work& w : work) {
        if (w.repeat) w.result = s;
      }
      return results();
    }
    next_deletion_seq = seq;
    if (metrics != nullptr) {
      for (Work* w : committing) {
        metrics->DeletionAccepted(w->record.resolved_ids_size());
      }
    }

    // FORGOTTEN: one deactivation for the whole group.
    std::map<SliceRef, absl::flat_hash_set<std::string>> by_slice;
    std::map<SliceRef, int64_t> min_bytes;
    std::set<int> affected;
    for (Work* w : committing) {
      for (const auto& [where, ids] : w->by_slice) {
        by_slice[where].insert(ids.begin(), ids.end());
        affected.insert(where.shard);
      }
      for (const auto& [where, bytes] : w->min_bytes) min_bytes[where] += bytes;
    }
    absl::MutexLock lock(&mu);
    const std::map<int, Cut> cuts = Deactivate(by_slice, min_bytes, affected);
    const int64_t forgotten_at = absl::ToUnixNanos(absl::Now());
    const std::string fingerprint_forgotten = FingerprintLocked();
    const auto& orders = plan.orders();
    for (Work* w : committing) {
      DeletionRecord& record = w->record;
      for (const auto& [where, ids] : w->by_slice) {
        const Cut& cut = cuts.at(where.shard);
        for (size_t b = 0; b < orders.size(); ++b) {
          const int position = static_cast<int>(
              std::find(orders[b].begin(), orders[b].end(), where.slice) -
              orders[b].begin());
          if (cut.before[b] <= position) continue;
          auto* a = record.add_affected();
          a->set_shard(where.shard);
          a->set_slice(where.slice);
          a->set_sequence(static_cast<int>(b));
          a->set_valid_length_before(cut.before[b]);
          a->set_valid_length_after(cut.after[b]);
        }
      }
      record.set_forgotten_unix_nanos(forgotten_at);
      record.set_fingerprint_forgotten(fingerprint_forgotten);
      // Tracked from here on; the purge thread takes it (and retries any
      // failure), Open re-derives it after a crash.
      PendingDeletion& p = pending.Track(record);
      for (int s : p.shards) p.applied_at[s] = generations.Get(s);
      w->result = ReceiptFromRecord(record);
      if (metrics != nullptr) {
        metrics->DeletionForgotten(absl::FromUnixNanos(forgotten_at) -
                                   w->request->arrived);
      }
    }
    if (training_requested) {
      ScheduleRetrain(affected, static_cast<int>(committing.size()));
    }
  }

  // Requests with nothing new: the least advanced earlier deletion's stage.
  for (Work& w : work) {
    if (!w.repeat) continue;
    DeletionReceipt receipt = ReceiptFromRecord(w.record);
    receipt.stage = DeletionStage::kRestored;
    absl::Status status;
    for (const auto& already : w.record.already_deleted()) {
      absl::StatusOr<DeletionRecord> earlier =
          LoadRecord(already.deletion_id());
      if (!earlier.ok()) {
        status = earlier.status();
        break;
      }
      receipt.stage =
          std::min(receipt.stage, ReceiptFromRecord(*earlier).stage);
    }
    receipt.note =
        w.request->by_owner
            ? "owner already forgotten by an earlier deletion; "
              "nothing new to do"
            : "nothing to delete: every known id was already deleted";
    if (status.ok()) {
      w.result = std::move(receipt);
    } else {
      w.result = status;
    }
  }
  return results();
}

std::map<int, Engine::State::Cut> Engine::State::Deactivate(
    const std::map<SliceRef, absl::flat_hash_set<std::string>>& by_slice,
    const std::map<SliceRef, int64_t>& min_bytes,
    const std::set<int>& affected) {
  // Drop the samples from the in-memory slices and recompute keys: every
  // prefix containing an affected slice gets a new key without a
  // checkpoint, so each sequence is cut before it and serving switches.
  // Fail-closed: if the in-memory edit fails, the shard is reloaded from the
  // store (which already excludes the samples) or blanked.
  std::map<int, Cut> cuts;
  for (int s : affected) {
    generations.Bump(s);
    ShardState& state = shards[s];
    Cut& cut = cuts[s];
    cut.before = state.valid_length;
    absl::Status edited = absl::OkStatus();
    for (const auto& [where, gone] : by_slice) {
      if (where.shard != s) continue;
      auto freed = min_bytes.find(where);
      edited = shards.RemoveSamples(
          s, where.slice, gone, freed != min_bytes.end() ? freed->second : 0);
      if (!edited.ok()) break;
    }
    if (edited.ok()) {
      shards.table().RecomputeKeys(s);
      shards.ChooseServed(s);
    } else {
      std::fprintf(stderr, "oubli: deactivating shard %d in memory: %s\n", s,
                   edited.ToString().c_str());
      shards.ReloadOrBlankShard(s);
    }
    cut.after = state.valid_length;
  }
  // Every shard of the group switches at once.
  shards.PublishServed();
  return cuts;
}

absl::Status Engine::State::CheckSliceLimits(
    absl::Span<const storage::AssignedSample> assigned) {
  std::map<SliceRef, int64_t> growth;
  {
    absl::MutexLock lock(&mu);
    for (const storage::AssignedSample& a : assigned) {
      const std::vector<std::string>& ids =
          shards[a.where.shard].slices[a.where.slice].ids;
      if (!std::binary_search(ids.begin(), ids.end(), a.sample.id)) {
        growth[a.where] += EncodedSampleBytes(a.sample);
      }
    }
    for (auto& [where, bytes] : growth) {
      bytes += shards.SliceBytes(where.shard, where.slice);
    }
  }
  for (const auto& [where, bytes] : growth) {
    if (bytes > options.max_slice_bytes) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "samples: slice ", where.slice, " of shard ", where.shard,
          " of model '", config.model_id, "' would take about ", bytes,
          " bytes encoded with this batch, over the limit of ",
          options.max_slice_bytes,
          " bytes per slice; nothing of the batch was stored (a model with "
          "more shards or slices spreads its samples thinner)"));
    }
  }
  return absl::OkStatus();
}

void Engine::State::ScheduleRetrain(const std::set<int>& affected,
                                    int deletions) {
  const absl::Time now = absl::Now();
  retrain_queue.AddDeletion(affected, now, deletions);
  for (int s : affected) ExpediteIfUnserved(s, now);
  scheduler.Wake();
}

// ---------------------------------------------------------------- Engine

Engine::Engine(std::unique_ptr<State> state) : state_(std::move(state)) {}

Engine::~Engine() { Stop(); }

void Engine::Stop() {
  {
    absl::MutexLock lock(&state_->mu);
    state_->stopping = true;
  }
  // Both parts first, so neither starts new work while the other winds
  // down.
  state_->scheduler.RequestStop();
  state_->purger.RequestStop();
  state_->scheduler.Join();
  state_->purger.Join();
}

absl::Status Engine::DestroyRemoteCopies() {
  // Nothing new may reach a worker after the listing below.
  Stop();
  return state_->purger.DestroyRemoteCopies();
}

absl::StatusOr<std::unique_ptr<Engine>> Engine::Open(const Options& options) {
  if (options.data_dir.empty()) {
    return absl::InvalidArgumentError("data_dir is required");
  }
  std::error_code mkdir_error;
  std::filesystem::create_directories(options.data_dir, mkdir_error);
  if (mkdir_error) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot create data dir '", options.data_dir,
                     "': ", mkdir_error.message()));
  }
  OUBLI_ASSIGN_OR_RETURN(
      std::unique_ptr<storage::LineageStore> store,
      storage::LineageStore::Open(
          {.path = options.data_dir + "/lineage",
           .create_if_missing = true,
           .background_priority = options.background_priority}));

  OUBLI_ASSIGN_OR_RETURN(std::optional<std::string> stored_text,
                         store->GetMeta(kConfigMetaKey));
  ModelConfig config;
  if (stored_text.has_value()) {
    OUBLI_ASSIGN_OR_RETURN(config, ParseStoredConfig(*stored_text));
    std::optional<ModelConfig> requested_config = options.config;
    if (requested_config.has_value() && requested_config->base.sha256.empty() &&
        requested_config->base.source == config.base.source) {
      // Recorded at first open; the caller need not repeat it.
      requested_config->base.sha256 = config.base.sha256;
    }
    if (requested_config.has_value() &&
        ConfigFingerprint(*requested_config) != ConfigFingerprint(config)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "data dir '", options.data_dir, "' holds model '", config.model_id,
          "' with a different config; use a new data dir for a new config"));
    }
    if (options.config.has_value()) {
      // Weight-neutral settings may change between runs: the retrain
      // policy, and the erasure code of checkpoints coded from now on
      // (each manifest records the code its chunks were made with).
      config.retrain = options.config->retrain;
      config.erasure = options.config->erasure;
      config.serving = options.config->serving;
      config.model_id = options.config->model_id;
    }
  } else {
    if (!options.config.has_value()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "data dir '", options.data_dir, "' holds no model; give a config"));
    }
    config = *options.config;
    OUBLI_RETURN_IF_ERROR(ModelBase::RecordWeightsDigest(&config));
  }
  OUBLI_RETURN_IF_ERROR(ValidateConfig(config));
  OUBLI_RETURN_IF_ERROR(store->PutMeta(kConfigMetaKey, ConfigToText(config)));
  OUBLI_ASSIGN_OR_RETURN(ShardingPlan plan, ShardingPlan::Create(config));
  OUBLI_ASSIGN_OR_RETURN(
      std::unique_ptr<storage::CheckpointStore> checkpoints,
      storage::CheckpointStore::Open(options.data_dir + "/checkpoints"));
  OUBLI_ASSIGN_OR_RETURN(std::unique_ptr<const ModelBase> base,
                         ModelBase::Load(config));
  std::shared_ptr<const ml::ShardModel> base_model;
  if (config.serving.base_fallback) {
    // A convenience: a model whose base cannot be built here still opens
    // (Predict then refuses as without the option, and says why).
    absl::StatusOr<std::shared_ptr<const ml::ShardModel>> base_alone =
        base->BaseAlone();
    if (base_alone.ok()) {
      base_model = *std::move(base_alone);
    } else {
      std::fprintf(stderr,
                   "oubli: model %s: base_fallback off, the base model "
                   "cannot be built: %s\n",
                   config.model_id.c_str(),
                   base_alone.status().ToString().c_str());
    }
  }
  OUBLI_ASSIGN_OR_RETURN(std::vector<std::string> stored, checkpoints->List());

  // Recover the deletion log: finish what a crash interrupted.
  OUBLI_ASSIGN_OR_RETURN(RecoveredDeletions recovered,
                         RecoverDeletions(*store));
  std::unique_ptr<DeletionLedger> ledger;
  if (options.ledger_key != nullptr) {
    OUBLI_ASSIGN_OR_RETURN(
        ledger,
        DeletionLedger::Open(store.get(), config.model_id, options.ledger_key));
  }
  std::vector<DeletionRecord>& unfinished = recovered.unfinished;
  const int64_t last_seq = recovered.last_seq;
  OUBLI_ASSIGN_OR_RETURN(std::optional<std::string> requested,
                         store->GetMeta(kTrainingRequestedMetaKey));

  auto state = std::make_unique<State>(
      options, config, std::move(plan), std::move(store),
      std::move(checkpoints), std::move(base), std::move(base_model),
      std::move(ledger), /*reopened_model=*/stored_text.has_value());
  {
    absl::MutexLock dlock(&state->deletion_mu);
    state->next_deletion_seq = last_seq + 1;
  }

  {
    absl::MutexLock lock(&state->mu);
    state->training_requested = requested.has_value();
    state->pending.set_training_requested(state->training_requested);
    for (const std::string& key : stored) state->shards.table().MarkStored(key);
    for (int s = 0; s < config.shards; ++s) {
      OUBLI_RETURN_IF_ERROR(state->shards.LoadShard(s));
      state->pending.NoteWhole(s, state->shards[s], state->generations.Get(s));
    }
    state->shards.PublishServed();
    for (DeletionRecord& record : unfinished) {
      // The samples left every index in the ACCEPTED batch, so keys computed
      // from the store already exclude them: deactivation is implicit.
      if (record.forgotten_unix_nanos() == 0) {
        record.set_forgotten_unix_nanos(absl::ToUnixNanos(absl::Now()));
        record.set_fingerprint_forgotten(state->FingerprintLocked());
      }
      state->pending.Track(std::move(record));
    }
    if (state->training_requested) {
      // The deletions not RESTORED yet are replayed into the queue in
      // ACCEPTED order, at their ACCEPTED times, so their batches (windows,
      // max_batch, the batch still open) are what they were before the
      // restart. Other incomplete shards (new samples, lost checkpoints)
      // are due now.
      std::set<int> incomplete;
      for (int s = 0; s < config.shards; ++s) {
        if (!state->shards.table().Complete(s)) incomplete.insert(s);
      }
      std::set<int> owed;
      for (const PendingDeletion* p : state->pending.ByAcceptance()) {
        std::set<int> cut;
        std::set_intersection(p->shards.begin(), p->shards.end(),
                              incomplete.begin(), incomplete.end(),
                              std::inserter(cut, cut.begin()));
        state->retrain_queue.AddDeletion(
            cut, absl::FromUnixNanos(p->record.accepted_unix_nanos()));
        owed.insert(cut.begin(), cut.end());
      }
      for (int s : incomplete) {
        if (!owed.contains(s)) {
          state->retrain_queue.Add(s, absl::Now(), absl::Now());
        }
        state->ExpediteIfUnserved(s, absl::Now());
      }
    }
  }
  // Finish purges a crash interrupted; a failure here is an open error, so
  // nothing starts serving with unpurged data of an acknowledged deletion.
  {
    // Chunk holders may not have registered yet: the purge thread retries
    // destroying their chunks (the deletions stay short of PURGED).
    bool chunks_only = false;
    if (absl::Status s = state->purger.PurgeUnfinished(&chunks_only);
        !s.ok() && !chunks_only) {
      return s;
    }
    // Leftovers of a crash between training and purge are garbage too.
    OUBLI_ASSIGN_OR_RETURN(std::vector<std::string> on_disk,
                           state->checkpoints->List());
    std::vector<std::string> garbage;
    std::vector<DeletionRecord> restored;
    {
      absl::MutexLock lock(&state->mu);
      garbage = state->shards.table().TakeGarbage(on_disk);
      restored = state->pending.TakeRestored(state->FingerprintLocked());
    }
    state->restored_recorder.Record(std::move(restored));
    for (const std::string& key : garbage) {
      OUBLI_RETURN_IF_ERROR(state->checkpoints->Destroy(key));
    }
  }

  std::unique_ptr<Engine> engine(new Engine(std::move(state)));
  engine->state_->purger.Start();
  if (options.background_retrain) engine->state_->scheduler.Start();
  return engine;
}

const ModelConfig& Engine::config() const { return state_->config; }

std::string Engine::lineage_dir() const { return state_->store->path(); }
std::string Engine::checkpoint_dir() const {
  return state_->checkpoints->dir();
}

absl::StatusOr<storage::IngestResult> Engine::Ingest(
    absl::Span<const Sample> samples) {
  State& st = *state_;
  std::vector<storage::AssignedSample> assigned;
  storage::IngestResult misfits;
  for (const Sample& sample : samples) {
    if (absl::Status fits =
            CheckSampleFits(sample, st.config.backbone, st.config.model_id);
        !fits.ok()) {
      misfits.rejected.emplace_back(sample.id, std::string(fits.message()));
      continue;
    }
    assigned.push_back({sample, st.plan.Assign(sample)});
  }
  // Serialized with deletions so a deletion never sees half an ingest.
  absl::MutexLock dlock(&st.deletion_mu);
  // Refused here, whole, rather than when the slice is next encoded, long
  // after the samples were acknowledged.
  OUBLI_RETURN_IF_ERROR(st.CheckSliceLimits(assigned));
  OUBLI_ASSIGN_OR_RETURN(storage::IngestResult result,
                         st.store->Ingest(assigned));
  result.rejected.insert(result.rejected.end(), misfits.rejected.begin(),
                         misfits.rejected.end());
  if (result.accepted > 0) {
    // The accepted samples join the in-memory slices as they are: exactly
    // what the store added when nothing was rejected and no id came twice
    // (duplicates of stored samples are already in their slice). Otherwise,
    // and for a shard that awaits a reload, the touched slices are read
    // back from the store, without mu (deletion_mu keeps them as stored
    // until installed). Only commits under deletion_mu set needs_reload,
    // so it cannot become set after this look.
    absl::flat_hash_set<absl::string_view> batch_ids;
    bool merge_in_memory = result.rejected.empty();
    for (const auto& a : assigned) {
      merge_in_memory = merge_in_memory && batch_ids.insert(a.sample.id).second;
    }
    std::map<int, std::set<int>> touched;  // shard -> slices, read back
    // In memory: the samples join their slices' ids (`assigned` holds them).
    std::map<int, std::map<int, std::vector<const Sample*>>> added;
    {
      absl::MutexLock lock(&st.mu);
      for (const auto& a : assigned) {
        const int s = a.where.shard;
        if (!merge_in_memory || st.shards[s].needs_reload) {
          touched[s].insert(a.where.slice);
          continue;
        }
        const std::vector<std::string>& ids =
            st.shards[s].slices[a.where.slice].ids;
        if (std::binary_search(ids.begin(), ids.end(), a.sample.id)) {
          continue;  // a duplicate of a stored sample
        }
        added[s][a.where.slice].push_back(&a.sample);
      }
      for (auto& [s, slices] : touched) {
        if (!st.shards[s].needs_reload) continue;
        for (int slice = 0; slice < st.config.slices; ++slice) {
          slices.insert(slice);
        }
      }
    }
    std::map<int, absl::StatusOr<std::vector<std::pair<int, LoadedSlice>>>>
        read;
    for (const auto& [s, slices] : touched) {
      read.emplace(
          s, ReadSlices(*st.store, s, slices, st.config.backbone.InputSize()));
    }
    absl::Status failure = absl::OkStatus();
    absl::MutexLock lock(&st.mu);
    for (auto& [s, by_slice] : added) {
      st.generations.Bump(s);
      for (auto& [slice, samples] : by_slice) {
        st.shards.AddSamples(s, slice, samples);
      }
      st.shards.table().RecomputeKeys(s);
      st.shards.ChooseServed(s);
      if (st.training_requested) {
        st.retrain_queue.AddUnlessQueued(s, absl::Now());
        st.ExpediteIfUnserved(s, absl::Now());
      }
    }
    for (auto& [s, slices] : read) {
      st.generations.Bump(s);
      if (slices.ok()) {
        st.shards.InstallSlices(s, *std::move(slices));
      } else {
        // Stored but not in memory: training reloads the shard before it
        // touches it, and serving goes on with what it had (ingest removes
        // nothing, so that is no one's deleted data).
        st.shards[s].needs_reload = true;
        failure.Update(slices.status());
      }
      if (st.training_requested) {
        st.retrain_queue.AddUnlessQueued(s, absl::Now());
        st.ExpediteIfUnserved(s, absl::Now());
      }
    }
    st.shards.PublishServed();
    st.scheduler.Wake();
    OUBLI_RETURN_IF_ERROR(failure);
  }
  return result;
}

absl::StatusOr<TrainSummary> Engine::Train() {
  State& st = *state_;
  {
    absl::MutexLock lock(&st.mu);
    int64_t total = 0;
    for (const ShardState& shard : st.shards.table()) total += shard.samples;
    if (total == 0) {
      return absl::FailedPreconditionError(
          "no samples ingested: nothing to train on");
    }
    if (!st.training_requested) {
      OUBLI_RETURN_IF_ERROR(st.store->PutMeta(kTrainingRequestedMetaKey, "1"));
      st.training_requested = true;
      st.pending.set_training_requested(true);
    }
  }
  std::vector<int> all(st.config.shards);
  for (int s = 0; s < st.config.shards; ++s) all[s] = s;
  return st.scheduler.TrainShards(all, st.scheduler.TrainingParallelism());
}

absl::StatusOr<TrainSummary> Engine::RunPendingRetrains(bool ignore_policy) {
  State& st = *state_;
  if (absl::Status purged = st.purger.PurgeUnfinished(); !purged.ok()) {
    std::fprintf(stderr, "oubli: purge failed, retried in the background: %s\n",
                 purged.ToString().c_str());
  }
  std::vector<int> due;
  {
    absl::MutexLock lock(&st.mu);
    due = st.retrain_queue.Due(absl::Now(), ignore_policy);
  }
  return st.scheduler.TrainShards(due, st.scheduler.TrainingParallelism());
}

absl::StatusOr<Prediction> Engine::Predict(absl::Span<const float> inputs,
                                           int64_t rows) {
  return state_->predictor.Predict(inputs, rows);
}

absl::StatusOr<Prediction> Engine::PredictTokens(
    absl::Span<const std::vector<int32_t>> sequences) {
  return state_->predictor.PredictTokens(sequences);
}

absl::StatusOr<TokenScores> Engine::Score(
    absl::Span<const std::vector<int32_t>> sequences) {
  return state_->predictor.Score(sequences);
}

absl::StatusOr<Generation> Engine::Generate(const GenerateOptions& options) {
  return state_->predictor.Generate(options);
}

absl::StatusOr<DeletionReceipt> Engine::DeleteSamples(
    absl::Span<const std::string> sample_ids) {
  const absl::Time arrived = absl::Now();
  if (sample_ids.empty()) {
    return absl::InvalidArgumentError("no sample ids given");
  }
  DeleteRequest request;
  absl::flat_hash_set<std::string> seen;
  for (const std::string& id : sample_ids) {
    OUBLI_RETURN_IF_ERROR(ValidateSampleId(id));
    if (seen.insert(id).second) request.ids.push_back(id);
  }
  request.requested.assign(sample_ids.begin(), sample_ids.end());
  request.arrived = arrived;
  return state_->SubmitDeletion(&request);
}

absl::StatusOr<DeletionReceipt> Engine::ForgetOwner(absl::string_view owner) {
  const absl::Time arrived = absl::Now();
  OUBLI_RETURN_IF_ERROR(ValidateOwner(owner));
  DeleteRequest request;
  request.arrived = arrived;
  request.owner = std::string(owner);
  request.by_owner = true;
  return state_->SubmitDeletion(&request);
}

absl::StatusOr<DeletionReceipt> Engine::GetDeletion(
    absl::string_view deletion_id) {
  OUBLI_ASSIGN_OR_RETURN(DeletionRecord record,
                         state_->LoadRecord(deletion_id));
  return ReceiptFromRecord(record);
}

absl::Status Engine::WaitForStage(absl::string_view deletion_id,
                                  DeletionStage stage, absl::Duration timeout) {
  State& st = *state_;
  const std::string id(deletion_id);
  {
    absl::MutexLock lock(&st.mu);
    auto reached = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(st.mu) {
      const DeletionRecord* live = st.pending.Find(id);
      return st.stopping || live == nullptr || StageOf(*live) >= stage;
    };
    if (!st.mu.AwaitWithTimeout(absl::Condition(&reached), timeout)) {
      return absl::DeadlineExceededError(
          absl::StrCat("deletion ", id, " not ", DeletionStageName(stage),
                       " within ", absl::FormatDuration(timeout)));
    }
  }
  OUBLI_ASSIGN_OR_RETURN(DeletionReceipt receipt, GetDeletion(id));
  if (receipt.stage < stage) {
    return absl::FailedPreconditionError(absl::StrCat(
        "deletion ", id, " is at stage ", DeletionStageName(receipt.stage)));
  }
  return absl::OkStatus();
}

absl::Status Engine::WaitForRestored(absl::string_view deletion_id,
                                     absl::Duration timeout) {
  return WaitForStage(deletion_id, DeletionStage::kRestored, timeout);
}

absl::StatusOr<bool> Engine::NamesChunkHolder(absl::string_view holder) {
  return state_->chunks.NamesHolder(holder);
}

void Engine::RetryPurgesNow() { state_->purger.RetryNow(); }

absl::StatusOr<DeletionPage> Engine::ListDeletions(
    const DeletionQuery& query) {
  State& st = *state_;
  return coordinator::ListDeletions(
      *st.store, query, [&st](DeletionRecord record) {
        absl::MutexLock lock(&st.mu);
        const DeletionRecord* live = st.pending.Find(record.deletion_id());
        return live != nullptr ? *live : record;
      });
}

absl::StatusOr<Engine::LedgerPage> Engine::ReadLedger(int64_t from_sequence,
                                                      size_t limit) const {
  State& st = *state_;
  if (st.ledger == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        "model '", st.config.model_id, "' keeps no deletion ledger"));
  }
  LedgerPage page;
  page.head_sequence = st.ledger->head_sequence();
  OUBLI_ASSIGN_OR_RETURN(page.records,
                         st.ledger->Read(from_sequence, limit));
  page.public_key_pem = st.ledger->key().public_key_pem();
  return page;
}

absl::StatusOr<VerifyReport> Engine::Verify() {
  return state_->verifier.Verify();
}

ModelStatus Engine::GetModelStatus() {
  State& st = *state_;
  ModelStatus status;
  status.config = st.config;
  status.threads = ml::DescribeThreads();
  absl::MutexLock lock(&st.mu);
  status.training_requested = st.training_requested;
  status.fingerprint = st.FingerprintLocked();
  st.pending.Summarize(&status);
  status.retrain_queue_shards = st.retrain_queue.size();
  for (int s = 0; s < st.config.shards; ++s) {
    const ShardState& shard = st.shards[s];
    ShardStatus out;
    out.served = st.shards.table().Describe(s);
    status.active_samples += shard.samples;
    for (const SliceData& slice : shard.slices) {
      out.slice_samples.push_back(static_cast<int64_t>(slice.ids.size()));
    }
    absl::flat_hash_set<std::string> missing;
    for (size_t b = 0; b < shard.keys.size(); ++b) {
      out.sequences.push_back({st.plan.orders()[b], shard.valid_length[b]});
      int64_t prefix_samples = 0;
      for (size_t p = 0; p < shard.keys[b].size(); ++p) {
        const int slice = st.plan.orders()[b][p];
        if (slice < static_cast<int>(shard.slices.size())) {
          prefix_samples +=
              static_cast<int64_t>(shard.slices[slice].ids.size());
        }
        if (!st.shards.table().IsStored(shard.keys[b][p]) &&
            missing.insert(shard.keys[b][p]).second) {
          status.retrain_backlog_sample_visits +=
              prefix_samples * st.config.train.epochs_per_position;
        }
      }
    }
    status.missing_prefixes += static_cast<int>(missing.size());
    status.shards.push_back(std::move(out));
  }
  status.slice_imbalance = SliceImbalance(status.shards);
  return status;
}

std::string Engine::Fingerprint() {
  return state_->served_snapshot.Get()->fingerprint;
}

absl::StatusOr<std::vector<ChunkPlacement>> Engine::ChunkPlacements() {
  // Garbage awaiting the next purge pass protects nothing.
  return state_->chunks.Placements(state_->SnapshotCurrentKeys());
}

absl::StatusOr<StorageStats> Engine::GetStorageStats() {
  StorageStats stats;
  OUBLI_ASSIGN_OR_RETURN(stats.lineage_db_bytes, state_->store->DiskBytes());
  OUBLI_ASSIGN_OR_RETURN(stats.checkpoint_bytes,
                         state_->checkpoints->TotalBytes());
  return stats;
}

}  // namespace oubli::coordinator
