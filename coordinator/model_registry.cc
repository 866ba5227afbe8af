#include "coordinator/model_registry.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "common/thread_priority.h"
#include "coordinator/backoff_retry.h"
#include "coordinator/ledger_format.h"
#include "oubli/internal/records.pb.h"

namespace oubli::coordinator {
namespace {

// What every engine of the registry shares, for the model in `dir`.
Engine::Options EngineOptionsFor(const ModelRegistry::Options& options,
                                 const std::string& model_id,
                                 const std::string& dir) {
  Engine::Options engine_options;
  engine_options.data_dir = dir;
  engine_options.training_threads = options.training_threads;
  engine_options.background_priority = options.background_priority;
  engine_options.background_retrain = options.background_retrain;
  engine_options.remote_trainer = options.remote_trainer;
  engine_options.replicas = options.replicas;
  engine_options.shard_serving = options.shard_serving;
  engine_options.ledger_key = options.ledger_key;
  engine_options.slice_cache = options.slice_cache;
  if (options.metrics != nullptr) {
    engine_options.metrics = options.metrics->ForModel(model_id);
  }
  return engine_options;
}

constexpr char kDeletionIdSeparator = '/';
// DeleteModel's records, one file per model, and the deleted models'
// ledgers ('~' is never in a model id).
constexpr char kDeletedModelsDir[] = "~deleted-models";
constexpr char kDeletedLedgersDir[] = "~deleted-ledgers";
constexpr size_t kMaxIdempotencyKeyBytes = 256;

absl::Status ModelNotFound(absl::string_view model_id) {
  return absl::NotFoundError(
      absl::StrCat("model '", model_id, "' does not exist"));
}

// Saves all of `engine`'s ledger at `path` (in `dir`) in the format of
// oublictl audit --save; nothing when it keeps none.
absl::Status SaveLedger(Engine& engine, const std::filesystem::path& dir,
                        const std::string& path) {
  std::vector<std::string> records;
  for (int64_t next = 1;;) {
    absl::StatusOr<Engine::LedgerPage> page = engine.ReadLedger(next, 1000);
    if (absl::IsFailedPrecondition(page.status())) break;  // none kept
    OUBLI_RETURN_IF_ERROR(page.status());
    next += static_cast<int64_t>(page->records.size());
    const bool last = page->records.size() < 1000;
    for (std::string& r : page->records) records.push_back(std::move(r));
    if (last) break;
  }
  if (records.empty()) return absl::OkStatus();
  std::error_code mkdir_error;
  std::filesystem::create_directories(dir, mkdir_error);
  return WriteFileAtomically(path, EncodeLedgerFile(records));
}

// Shreds every file under `dir`, then removes it and syncs `parent`.
absl::Status ShredDirectory(const std::string& dir, const std::string& parent) {
  absl::Status shredded;
  std::error_code error;
  // Every file, also behind symlinked directories; any error that could
  // hide a file stops short of removing the directory.
  std::filesystem::recursive_directory_iterator it(
      dir, std::filesystem::directory_options::follow_directory_symlink, error);
  for (; !error && it != std::filesystem::recursive_directory_iterator();
       it.increment(error)) {
    std::error_code type_error;
    if (it->is_regular_file(type_error)) {
      if (absl::Status s = ShredFile(it->path().string()); !s.ok()) {
        shredded.Update(s);
      }
    }
  }
  if (error && error != std::errc::no_such_file_or_directory) {
    shredded.Update(absl::InternalError(
        absl::StrCat("cannot list ", dir, ": ", error.message())));
  }
  OUBLI_RETURN_IF_ERROR(shredded);
  std::filesystem::remove_all(dir, error);
  if (error) {
    return absl::InternalError(
        absl::StrCat("cannot remove ", dir, ": ", error.message()));
  }
  return FsyncDirectory(parent);
}

}  // namespace

const char* JobStateName(JobState state) {
  switch (state) {
    case JobState::kPending:
      return "PENDING";
    case JobState::kRunning:
      return "RUNNING";
    case JobState::kSucceeded:
      return "SUCCEEDED";
    case JobState::kFailed:
      return "FAILED";
  }
  return "UNKNOWN";
}

std::string QualifyDeletionId(absl::string_view model_id,
                              absl::string_view engine_deletion_id) {
  if (engine_deletion_id.empty()) return "";
  return absl::StrCat(model_id, std::string(1, kDeletionIdSeparator),
                      engine_deletion_id);
}

absl::StatusOr<std::pair<std::string, std::string>> SplitDeletionId(
    absl::string_view qualified_id) {
  const size_t slash = qualified_id.find(kDeletionIdSeparator);
  if (slash == absl::string_view::npos || slash == 0 ||
      slash + 1 == qualified_id.size()) {
    return absl::InvalidArgumentError(
        "deletion_id must look like 'MODEL_ID/del-N' (as in the receipt)");
  }
  return std::make_pair(std::string(qualified_id.substr(0, slash)),
                        std::string(qualified_id.substr(slash + 1)));
}

ModelRegistry::ModelRegistry(Options options) : options_(std::move(options)) {}

absl::StatusOr<std::unique_ptr<ModelRegistry>> ModelRegistry::Open(
    const Options& options) {
  if (options.root_dir.empty()) {
    return absl::InvalidArgumentError("registry root_dir is required");
  }
  std::error_code error;
  std::filesystem::create_directories(options.root_dir, error);
  if (error) {
    return absl::PermissionDeniedError(absl::StrCat(
        "cannot create data dir '", options.root_dir, "': ", error.message()));
  }
  std::unique_ptr<ModelRegistry> registry(new ModelRegistry(options));
  std::vector<std::filesystem::path> model_dirs;
  for (const auto& entry :
       std::filesystem::directory_iterator(options.root_dir, error)) {
    // Only directories the engine created (they hold a lineage DB).
    if (entry.is_directory() &&
        std::filesystem::is_directory(entry.path() / "lineage")) {
      model_dirs.push_back(entry.path());
    }
  }
  if (error) {
    return absl::PermissionDeniedError(absl::StrCat(
        "cannot list data dir '", options.root_dir, "': ", error.message()));
  }
  std::sort(model_dirs.begin(), model_dirs.end());
  for (const auto& dir : model_dirs) {
    // The directory name is the id clients use; CreateModel makes them
    // equal, so a mismatch means someone renamed the directory.
    const std::string model_id = dir.filename().string();
    OUBLI_ASSIGN_OR_RETURN(std::optional<ModelDeletion> deletion,
                           registry->ReadDeletionRecord(model_id));
    const bool being_deleted = deletion.has_value() && !deletion->purged;
    Engine::Options engine_options =
        EngineOptionsFor(options, model_id, dir.string());
    // A model being deleted never trains again.
    if (being_deleted) engine_options.background_retrain = false;
    absl::StatusOr<std::unique_ptr<Engine>> engine =
        Engine::Open(engine_options);
    if (!engine.ok() && being_deleted) {
      // The deletion thread retries opening it until the copies on
      // workers are destroyed (or finishes the files if they are).
      std::fprintf(stderr, "oubli: deleting model '%s': %s; finishing\n",
                   model_id.c_str(), engine.status().ToString().c_str());
      absl::MutexLock lock(&registry->mu_);
      registry->deleting_[model_id] = *deletion;
      registry->deletion_threads_.emplace_back([r = registry.get(), model_id] {
        r->FinishModelDeletion(model_id, nullptr);
      });
      continue;
    }
    if (!engine.ok()) {
      return absl::Status(engine.status().code(),
                          absl::StrCat("cannot reopen model in '", dir.string(),
                                       "': ", engine.status().message()));
    }
    if ((*engine)->config().model_id != model_id) {
      std::fprintf(stderr,
                   "oubli: model dir '%s' holds config for model '%s'; "
                   "serving it as '%s'\n",
                   dir.string().c_str(), (*engine)->config().model_id.c_str(),
                   model_id.c_str());
    }
    absl::MutexLock lock(&registry->mu_);
    std::shared_ptr<Engine> opened(*std::move(engine));
    if (being_deleted) {
      // A crash interrupted DeleteModel: finish it, never serve the model.
      registry->deleting_[model_id] = *deletion;
      registry->deletion_threads_.emplace_back(
          [r = registry.get(), model_id, opened = std::move(opened)]() mutable {
            r->FinishModelDeletion(model_id, std::move(opened));
          });
    } else {
      registry->engines_[model_id] = std::move(opened);
    }
  }
  // Unfinished deletions whose directory is gone already.
  const std::filesystem::path records =
      std::filesystem::path(options.root_dir) / kDeletedModelsDir;
  for (const auto& entry :
       std::filesystem::directory_iterator(records, error)) {
    const std::string model_id = entry.path().filename().string();
    // A temp file of an interrupted write is no record.
    if (!entry.is_regular_file() ||
        model_id.find(".tmp") != std::string::npos) {
      continue;
    }
    OUBLI_ASSIGN_OR_RETURN(std::optional<ModelDeletion> deletion,
                           registry->ReadDeletionRecord(model_id));
    absl::MutexLock lock(&registry->mu_);
    if (!deletion.has_value() || deletion->purged ||
        registry->deleting_.contains(model_id)) {
      continue;
    }
    registry->deleting_[model_id] = *deletion;
    registry->deletion_threads_.emplace_back([r = registry.get(), model_id] {
      r->FinishModelDeletion(model_id, nullptr);
    });
  }
  return registry;
}

std::string ModelRegistry::DeletionRecordPath(
    absl::string_view model_id) const {
  return (std::filesystem::path(options_.root_dir) / kDeletedModelsDir /
          std::string(model_id))
      .string();
}

absl::StatusOr<std::optional<ModelRegistry::ModelDeletion>>
ModelRegistry::ReadDeletionRecord(absl::string_view model_id) const {
  const std::string path = DeletionRecordPath(model_id);
  std::error_code error;
  if (!std::filesystem::exists(path, error)) return std::nullopt;
  OUBLI_ASSIGN_OR_RETURN(std::string bytes, ReadFile(path));
  internal::ModelDeletionRecord record;
  if (!record.ParseFromString(bytes)) {
    return absl::DataLossError(absl::StrCat(path, " is corrupt"));
  }
  ModelDeletion deletion;
  deletion.model_id = record.model_id();
  deletion.accepted_at = absl::FromUnixNanos(record.accepted_unix_nanos());
  deletion.purged = record.purged_unix_nanos() != 0;
  if (deletion.purged) {
    deletion.purged_at = absl::FromUnixNanos(record.purged_unix_nanos());
  }
  deletion.note = record.note();
  deletion.remote_destroyed = record.remote_copies_destroyed();
  if (deletion.model_id != model_id) {
    return absl::DataLossError(
        absl::StrCat(path, " names model '", deletion.model_id, "'"));
  }
  return deletion;
}

absl::Status ModelRegistry::WriteDeletionRecord(
    const ModelDeletion& deletion) const {
  const std::filesystem::path dir =
      std::filesystem::path(options_.root_dir) / kDeletedModelsDir;
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot create ", dir.string(), ": ", error.message()));
  }
  internal::ModelDeletionRecord record;
  record.set_model_id(deletion.model_id);
  record.set_accepted_unix_nanos(absl::ToUnixNanos(deletion.accepted_at));
  if (deletion.purged) {
    record.set_purged_unix_nanos(absl::ToUnixNanos(deletion.purged_at));
  }
  record.set_note(deletion.note);
  record.set_remote_copies_destroyed(deletion.remote_destroyed);
  OUBLI_RETURN_IF_ERROR(WriteFileAtomically(
      DeletionRecordPath(deletion.model_id), record.SerializeAsString()));
  return FsyncDirectory(dir.string());
}

absl::StatusOr<ModelRegistry::ModelDeletion> ModelRegistry::DeleteModel(
    absl::string_view model_id) {
  absl::MutexLock create_lock(&create_mu_);
  std::shared_ptr<Engine> engine;
  {
    absl::MutexLock lock(&mu_);
    if (auto it = deleting_.find(model_id); it != deleting_.end()) {
      return it->second;
    }
    if (auto it = engines_.find(model_id); it != engines_.end()) {
      engine = it->second;
    }
  }
  if (engine == nullptr) {
    OUBLI_ASSIGN_OR_RETURN(std::optional<ModelDeletion> done,
                           ReadDeletionRecord(model_id));
    if (!done.has_value()) return ModelNotFound(model_id);
    return *done;
  }
  ModelDeletion deletion;
  deletion.model_id = std::string(model_id);
  deletion.accepted_at = absl::Now();
  // Durable before anything changes: a crash from here on resumes it.
  OUBLI_RETURN_IF_ERROR(WriteDeletionRecord(deletion));
  absl::MutexLock lock(&mu_);
  engines_.erase(deletion.model_id);
  deleting_[deletion.model_id] = deletion;
  // The thread holds the only reference besides calls in flight.
  deletion_threads_.emplace_back(
      [this, id = deletion.model_id, engine = std::move(engine)]() mutable {
        FinishModelDeletion(id, std::move(engine));
      });
  return deletion;
}

absl::StatusOr<ModelRegistry::ModelDeletion> ModelRegistry::GetModelDeletion(
    absl::string_view model_id) {
  {
    absl::MutexLock lock(&mu_);
    if (auto it = deleting_.find(model_id); it != deleting_.end()) {
      return it->second;
    }
  }
  OUBLI_ASSIGN_OR_RETURN(std::optional<ModelDeletion> done,
                         ReadDeletionRecord(model_id));
  if (!done.has_value()) {
    return absl::NotFoundError(
        absl::StrCat("no deletion of model '", model_id, "' is known"));
  }
  return *done;
}

void ModelRegistry::FinishModelDeletion(std::string model_id,
                                        std::shared_ptr<Engine> engine) {
  // Waits `wait` or until the registry stops; false when it stops.
  auto pause = [this](absl::Duration wait) {
    absl::MutexLock lock(&mu_);
    const int64_t retries = deletion_retries_;
    auto wake = [this, retries]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return stopping_ || deletion_retries_ != retries;
    };
    mu_.AwaitWithTimeout(absl::Condition(&wake), wait);
    return !stopping_;
  };
  auto note = [&](const absl::Status& why) {
    std::fprintf(stderr, "oubli: deleting model '%s': %s (retrying)\n",
                 model_id.c_str(), why.ToString().c_str());
    absl::MutexLock lock(&mu_);
    deleting_[model_id].note = std::string(why.message());
  };
  // Every step below is retried until it succeeds: a deletion accepted is
  // never given up, only interrupted by the registry stopping.
  BackoffRetry retry(pause, note);
  ModelDeletion record;
  {
    absl::MutexLock lock(&mu_);
    record = deleting_[model_id];
  }
  // Copies on workers live only where the model's lineage DB says: until
  // they are destroyed the engine must open, however long that takes.
  auto open = [&]() -> absl::Status {
    Engine::Options options =
        EngineOptionsFor(options_, model_id, ModelDir(model_id));
    options.background_retrain = false;
    OUBLI_ASSIGN_OR_RETURN(engine, Engine::Open(options));
    return absl::OkStatus();
  };
  if (engine == nullptr && !record.remote_destroyed && !retry.Until(open)) {
    return;
  }
  if (engine != nullptr) {
    absl::MutexLock lock(&mu_);
    deleting_engines_[model_id] = engine;
  }
  if (engine != nullptr) {
    // Nothing may use the model from here on: its training stops, a job
    // still running ends at its next position, and calls that found the
    // engine before it left engines_ finish. Only then are the copies
    // listed and destroyed, so none can appear behind the listing.
    engine->Stop();
    absl::MutexLock lock(&mu_);
    auto settled = [this, &model_id]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return stopping_ || !active_jobs_.contains(model_id);
    };
    mu_.Await(absl::Condition(&settled));
    if (stopping_) return;
  }
  while (engine != nullptr && engine.use_count() > 1) {
    if (!pause(absl::Milliseconds(20))) return;
  }
  if (engine != nullptr && !record.remote_destroyed) {
    if (!retry.Until([&] { return engine->DestroyRemoteCopies(); })) return;
    record.remote_destroyed = true;
    // Durable, so a restart that cannot open the half-shredded engine
    // knows the workers hold nothing any more.
    if (!retry.Until([&] { return WriteDeletionRecord(record); })) return;
    absl::MutexLock lock(&mu_);
    deleting_[model_id].remote_destroyed = true;
  }
  // The ledger holds digests, not data: kept for auditors (the format of
  // oublictl audit --save), whole, before the lineage DB goes.
  const std::filesystem::path ledger_dir =
      std::filesystem::path(options_.root_dir) / kDeletedLedgersDir;
  const std::string ledger_path = (ledger_dir / model_id).string();
  if (engine != nullptr && !retry.Until([&] {
        return SaveLedger(*engine, ledger_dir, ledger_path);
      })) {
    return;
  }
  {
    absl::MutexLock lock(&mu_);
    deleting_engines_.erase(model_id);
  }
  engine.reset();  // closes the lineage DB and checkpoint store
  const std::string dir = ModelDir(model_id);
  if (!retry.Until([&] { return ShredDirectory(dir, options_.root_dir); })) {
    return;
  }
  ModelDeletion done;
  {
    absl::MutexLock lock(&mu_);
    done = deleting_[model_id];
  }
  done.purged = true;
  done.purged_at = absl::Now();
  done.note.clear();
  if (!retry.Until([&] { return WriteDeletionRecord(done); })) return;
  absl::MutexLock lock(&mu_);
  deleting_.erase(model_id);
}

ModelRegistry::~ModelRegistry() {
  std::vector<std::thread> threads;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [id, job] : jobs_) {
      if (job->thread.joinable()) threads.push_back(std::move(job->thread));
    }
  }
  for (std::thread& t : threads) t.join();
  std::vector<std::thread> deletions;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    deletions = std::move(deletion_threads_);
  }
  for (std::thread& t : deletions) t.join();
}

std::string ModelRegistry::ModelDir(absl::string_view model_id) const {
  return (std::filesystem::path(options_.root_dir) / std::string(model_id))
      .string();
}

absl::StatusOr<std::shared_ptr<Engine>> ModelRegistry::FindEngine(
    absl::string_view model_id) const {
  absl::MutexLock lock(&mu_);
  auto it = engines_.find(model_id);
  if (it == engines_.end()) {
    if (auto deleting = deleting_.find(model_id); deleting != deleting_.end()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "model '", model_id, "' is being deleted (DeleteModel accepted at ",
          absl::FormatTime(deleting->second.accepted_at), ")"));
    }
    return ModelNotFound(model_id);
  }
  return it->second;
}

std::vector<std::string> ModelRegistry::ModelIds() const {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> ids;
  for (const auto& [id, engine] : engines_) ids.push_back(id);
  std::sort(ids.begin(), ids.end());
  return ids;
}

absl::StatusOr<ModelConfig> ModelRegistry::GetConfig(
    absl::string_view model_id) const {
  OUBLI_ASSIGN_OR_RETURN(std::shared_ptr<Engine> engine, FindEngine(model_id));
  return engine->config();
}

absl::StatusOr<ModelConfig> ModelRegistry::CreateModel(
    const ModelConfig& config) {
  // Validated before touching the filesystem: the id becomes a path.
  OUBLI_RETURN_IF_ERROR(ValidateConfig(config));
  absl::MutexLock create_lock(&create_mu_);
  {
    absl::MutexLock lock(&mu_);
    if (deleting_.contains(config.model_id)) {
      return absl::FailedPreconditionError(
          absl::StrCat("model '", config.model_id,
                       "' is being deleted; create it again once "
                       "DeleteModel reports PURGED"));
    }
    auto it = engines_.find(config.model_id);
    if (it != engines_.end()) {
      const ModelConfig& existing = it->second->config();
      if (ConfigToText(existing) == ConfigToText(config)) return existing;
      return absl::AlreadyExistsError(absl::StrCat(
          "model '", config.model_id,
          "' already exists with a different config (",
          absl::StrJoin(ConfigDifferences(existing, config), "; "), ")"));
    }
  }
  const std::string dir = ModelDir(config.model_id);
  const bool dir_existed = std::filesystem::exists(dir);
  Engine::Options engine_options =
      EngineOptionsFor(options_, config.model_id, dir);
  engine_options.config = config;
  absl::StatusOr<std::unique_ptr<Engine>> engine = Engine::Open(engine_options);
  if (!engine.ok()) {
    // Leave no half-created model behind for the next startup scan.
    if (!dir_existed) {
      std::error_code ignored;
      std::filesystem::remove_all(dir, ignored);
    }
    return engine.status();
  }
  ModelConfig created = (*engine)->config();
  absl::MutexLock lock(&mu_);
  engines_[config.model_id] = std::shared_ptr<Engine>(*std::move(engine));
  return created;
}

absl::StatusOr<storage::IngestResult> ModelRegistry::Ingest(
    absl::string_view model_id, absl::Span<const Sample> samples) {
  OUBLI_ASSIGN_OR_RETURN(std::shared_ptr<Engine> engine, FindEngine(model_id));
  return engine->Ingest(samples);
}

absl::StatusOr<JobInfo> ModelRegistry::StartTraining(
    absl::string_view model_id) {
  OUBLI_ASSIGN_OR_RETURN(std::shared_ptr<Engine> engine, FindEngine(model_id));
  // Outside mu_: GetModelStatus takes the engine's lock.
  const ModelStatus status = engine->GetModelStatus();
  if (status.active_samples == 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "model '", model_id, "' has no samples: ingest before training"));
  }
  absl::MutexLock lock(&mu_);
  auto active = active_jobs_.find(model_id);
  if (active != active_jobs_.end()) {
    return jobs_.at(active->second)->info;
  }
  auto job = std::make_unique<Job>();
  job->info.job_id = absl::StrCat("job-", next_job_number_++);
  job->info.model_id = std::string(model_id);
  job->info.total_prefixes = status.missing_prefixes;
  job->info.created_at = absl::Now();
  job->engine = engine;
  Job* raw = job.get();
  const std::string job_id = job->info.job_id;
  active_jobs_[std::string(model_id)] = job_id;
  jobs_[job_id] = std::move(job);
  // Started under mu_ so the thread handle is stored before anyone joins.
  raw->thread = std::thread([this, raw] { RunJob(raw); });
  return raw->info;
}

void ModelRegistry::RunJob(Job* job) {
  StartBackgroundThread("oubli-train", options_.background_priority);
  {
    absl::MutexLock lock(&mu_);
    job->info.state = JobState::kRunning;
    job->info.started_at = absl::Now();
  }
  const absl::StatusOr<TrainSummary> summary = job->engine->Train();
  absl::MutexLock lock(&mu_);
  job->info.finished_at = absl::Now();
  if (summary.ok()) {
    job->info.state = JobState::kSucceeded;
    job->info.trained_prefixes = job->info.total_prefixes;
  } else {
    job->info.state = JobState::kFailed;
    job->info.error = summary.status().ToString();
  }
  active_jobs_.erase(job->info.model_id);
  job->engine.reset();  // a finished job keeps no model open
}

absl::StatusOr<JobInfo> ModelRegistry::GetJob(absl::string_view job_id) {
  JobInfo info;
  std::shared_ptr<Engine> engine;
  {
    absl::MutexLock lock(&mu_);
    auto it = jobs_.find(job_id);
    if (it == jobs_.end()) {
      return absl::NotFoundError(
          absl::StrCat("job '", job_id, "' does not exist"));
    }
    info = it->second->info;
    engine = it->second->engine;
  }
  if (info.state == JobState::kPending || info.state == JobState::kRunning) {
    const int missing = engine->GetModelStatus().missing_prefixes;
    info.trained_prefixes =
        std::clamp(info.total_prefixes - missing, 0, info.total_prefixes);
  }
  return info;
}

absl::StatusOr<DeletionReceipt> ModelRegistry::DeleteWithKey(
    absl::string_view model_id, absl::string_view idempotency_key,
    const std::string& request_digest,
    const std::function<absl::StatusOr<DeletionReceipt>(Engine&)>& run) {
  OUBLI_ASSIGN_OR_RETURN(std::shared_ptr<Engine> engine, FindEngine(model_id));
  auto qualify = [&](DeletionReceipt receipt) {
    receipt.deletion_id = QualifyDeletionId(model_id, receipt.deletion_id);
    for (auto& [id, by] : receipt.already_deleted) {
      by = QualifyDeletionId(model_id, by);
    }
    return receipt;
  };
  if (idempotency_key.empty()) {
    OUBLI_ASSIGN_OR_RETURN(DeletionReceipt receipt, run(*engine));
    return qualify(std::move(receipt));
  }
  if (idempotency_key.size() > kMaxIdempotencyKeyBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("idempotency_key is ", idempotency_key.size(),
                     " bytes; the limit is ", kMaxIdempotencyKeyBytes));
  }
  const std::string map_key =
      absl::StrCat(model_id, std::string(1, '\0'), idempotency_key);
  bool first_use = false;
  std::string earlier_deletion;
  {
    absl::MutexLock lock(&idempotency_mu_);
    auto settled = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(idempotency_mu_) {
      auto it = idempotency_keys_.find(map_key);
      return it == idempotency_keys_.end() || !it->second.running;
    };
    idempotency_mu_.Await(absl::Condition(&settled));
    auto [it, inserted] = idempotency_keys_.try_emplace(map_key);
    if (inserted) {
      it->second.request_digest = request_digest;
      first_use = true;
    } else if (it->second.request_digest != request_digest) {
      return absl::FailedPreconditionError(
          absl::StrCat("idempotency_key '", idempotency_key,
                       "' was already used for a different request on model '",
                       model_id, "'"));
    }
    earlier_deletion = it->second.deletion_id;
    // An earlier no-op answer is recomputed (a no-op again); otherwise
    // this request runs, and others with the key wait for it.
    if (earlier_deletion.empty()) it->second.running = true;
  }
  if (!earlier_deletion.empty()) return GetDeletion(earlier_deletion);
  absl::StatusOr<DeletionReceipt> receipt = run(*engine);
  absl::MutexLock lock(&idempotency_mu_);
  auto it = idempotency_keys_.find(map_key);
  if (!receipt.ok()) {
    // Nothing was deleted: the key stays free for a retry.
    if (first_use) {
      idempotency_keys_.erase(it);
    } else {
      it->second.running = false;
    }
    return receipt.status();
  }
  *receipt = qualify(*std::move(receipt));
  it->second.deletion_id = receipt->deletion_id;
  it->second.running = false;
  return receipt;
}

absl::StatusOr<DeletionReceipt> ModelRegistry::DeleteSamples(
    absl::string_view model_id, absl::Span<const std::string> sample_ids,
    absl::string_view idempotency_key) {
  // Ids cannot contain NUL (ValidateSampleId), so this join is unambiguous.
  const std::string digest =
      absl::StrCat("ids:", absl::StrJoin(sample_ids, std::string(1, '\0')));
  return DeleteWithKey(model_id, idempotency_key, digest, [&](Engine& engine) {
    return engine.DeleteSamples(sample_ids);
  });
}

absl::StatusOr<DeletionReceipt> ModelRegistry::ForgetOwner(
    absl::string_view model_id, absl::string_view owner,
    absl::string_view idempotency_key) {
  const std::string digest = absl::StrCat("owner:", owner);
  return DeleteWithKey(model_id, idempotency_key, digest, [&](Engine& engine) {
    return engine.ForgetOwner(owner);
  });
}

absl::StatusOr<DeletionReceipt> ModelRegistry::GetDeletion(
    absl::string_view deletion_id) {
  OUBLI_ASSIGN_OR_RETURN(auto parts, SplitDeletionId(deletion_id));
  OUBLI_ASSIGN_OR_RETURN(std::shared_ptr<Engine> engine,
                         FindEngine(parts.first));
  OUBLI_ASSIGN_OR_RETURN(DeletionReceipt receipt,
                         engine->GetDeletion(parts.second));
  receipt.deletion_id = QualifyDeletionId(parts.first, receipt.deletion_id);
  for (auto& [id, by] : receipt.already_deleted) {
    by = QualifyDeletionId(parts.first, by);
  }
  return receipt;
}

absl::StatusOr<DeletionReceipt> ModelRegistry::AwaitDeletionChange(
    absl::string_view deletion_id, DeletionStage seen_stage,
    absl::Duration timeout) {
  OUBLI_ASSIGN_OR_RETURN(DeletionReceipt receipt, GetDeletion(deletion_id));
  if (receipt.stage != seen_stage ||
      receipt.stage == DeletionStage::kRestored) {
    return receipt;
  }
  // Every stage before RESTORED is reached before the deletion request
  // returns, so the only change left to wait for is RESTORED.
  OUBLI_ASSIGN_OR_RETURN(auto parts, SplitDeletionId(deletion_id));
  OUBLI_ASSIGN_OR_RETURN(std::shared_ptr<Engine> engine,
                         FindEngine(parts.first));
  const absl::Status waited = engine->WaitForRestored(parts.second, timeout);
  if (!waited.ok() && !absl::IsDeadlineExceeded(waited)) return waited;
  return GetDeletion(deletion_id);
}

absl::StatusOr<Prediction> ModelRegistry::Predict(
    absl::string_view model_id, absl::Span<const float> inputs, int64_t rows) {
  OUBLI_ASSIGN_OR_RETURN(std::shared_ptr<Engine> engine, FindEngine(model_id));
  return engine->Predict(inputs, rows);
}

absl::StatusOr<Prediction> ModelRegistry::PredictTokens(
    absl::string_view model_id,
    absl::Span<const std::vector<int32_t>> sequences) {
  OUBLI_ASSIGN_OR_RETURN(std::shared_ptr<Engine> engine, FindEngine(model_id));
  return engine->PredictTokens(sequences);
}

absl::StatusOr<TokenScores> ModelRegistry::Score(
    absl::string_view model_id,
    absl::Span<const std::vector<int32_t>> sequences) {
  OUBLI_ASSIGN_OR_RETURN(std::shared_ptr<Engine> engine, FindEngine(model_id));
  return engine->Score(sequences);
}

absl::StatusOr<Generation> ModelRegistry::Generate(
    absl::string_view model_id, const GenerateOptions& options) {
  OUBLI_ASSIGN_OR_RETURN(std::shared_ptr<Engine> engine, FindEngine(model_id));
  return engine->Generate(options);
}

absl::StatusOr<ModelStatus> ModelRegistry::GetModelStatus(
    absl::string_view model_id) {
  OUBLI_ASSIGN_OR_RETURN(std::shared_ptr<Engine> engine, FindEngine(model_id));
  return engine->GetModelStatus();
}

absl::StatusOr<StorageStats> ModelRegistry::GetStorageStats(
    absl::string_view model_id) {
  OUBLI_ASSIGN_OR_RETURN(std::shared_ptr<Engine> engine, FindEngine(model_id));
  return engine->GetStorageStats();
}

absl::StatusOr<std::vector<ChunkPlacement>> ModelRegistry::ChunkPlacements(
    absl::string_view model_id) {
  OUBLI_ASSIGN_OR_RETURN(std::shared_ptr<Engine> engine, FindEngine(model_id));
  return engine->ChunkPlacements();
}

absl::StatusOr<VerifyReport> ModelRegistry::Verify(absl::string_view model_id) {
  OUBLI_ASSIGN_OR_RETURN(std::shared_ptr<Engine> engine, FindEngine(model_id));
  return engine->Verify();
}

absl::StatusOr<DeletionPage> ModelRegistry::ListDeletions(
    absl::string_view model_id, const DeletionQuery& query) {
  OUBLI_ASSIGN_OR_RETURN(std::shared_ptr<Engine> engine, FindEngine(model_id));
  OUBLI_ASSIGN_OR_RETURN(DeletionPage page, engine->ListDeletions(query));
  for (DeletionReceipt& receipt : page.receipts) {
    receipt.deletion_id = QualifyDeletionId(model_id, receipt.deletion_id);
    for (auto& [id, by] : receipt.already_deleted) {
      by = QualifyDeletionId(model_id, by);
    }
  }
  return page;
}

absl::StatusOr<Engine::LedgerPage> ModelRegistry::ReadLedger(
    absl::string_view model_id, int64_t from_sequence, size_t limit) {
  OUBLI_ASSIGN_OR_RETURN(std::shared_ptr<Engine> engine, FindEngine(model_id));
  return engine->ReadLedger(from_sequence, limit);
}

absl::StatusOr<bool> ModelRegistry::NamesChunkHolder(absl::string_view holder) {
  std::vector<std::shared_ptr<Engine>> engines;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, engine] : engines_) engines.push_back(engine);
    // Models being deleted still wait for their holders.
    for (const auto& [id, weak] : deleting_engines_) {
      if (std::shared_ptr<Engine> engine = weak.lock()) {
        engines.push_back(std::move(engine));
      }
    }
  }
  for (const std::shared_ptr<Engine>& engine : engines) {
    OUBLI_ASSIGN_OR_RETURN(const bool named, engine->NamesChunkHolder(holder));
    if (named) return true;
  }
  return false;
}

void ModelRegistry::RetryPurgesNow() {
  std::vector<std::shared_ptr<Engine>> engines;
  {
    absl::MutexLock lock(&mu_);
    ++deletion_retries_;  // model deletions waiting for a holder, too
    for (const auto& [id, engine] : engines_) engines.push_back(engine);
  }
  for (const std::shared_ptr<Engine>& engine : engines) {
    engine->RetryPurgesNow();
  }
}

}  // namespace oubli::coordinator
