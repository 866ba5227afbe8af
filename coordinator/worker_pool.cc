#include "coordinator/worker_pool.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>
#include <random>
#include <thread>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"
#include "common/cluster_protocol.h"
#include "common/file_util.h"
#include "common/grpc_security.h"
#include "common/grpc_status.h"
#include "common/hash.h"
#include "common/status_macros.h"
#include "coordinator/chunk_manifest.h"
#include "oubli/cluster/cluster.grpc.pb.h"
#include "oubli/internal/records.pb.h"
#include "storage/erasure_code.h"

namespace oubli::coordinator {

namespace {

absl::Status CheckWorkerName(absl::string_view name) {
  if (name.empty() || name.size() > 256 ||
      std::any_of(name.begin(), name.end(), [](char c) {
        return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
      })) {
    return absl::InvalidArgumentError(
        "a worker name is 1 to 256 bytes without control characters");
  }
  return absl::OkStatus();
}

}  // namespace

struct WorkerPool::Worker {
  // Immutable after Register.
  std::string id;
  std::string name;
  std::string address;
  std::string environment;
  bool holds_chunks = false;
  absl::Time registered_at;
  std::unique_ptr<cluster::Worker::Stub> stub;
  // Guarded by the pool's mu_.
  absl::Time last_heartbeat;
  bool dead = false;  // declared dead; only a new registration revives
  int busy = 0;
  int64_t positions_trained = 0;
  // Slices ("model/digest") uploaded to it and not dropped by a purge
  // since: a hint for placing positions where their slices already are
  // (the worker may have evicted some).
  absl::flat_hash_set<std::string> sent_slices;
  // Models any slice of which was ever uploaded to it (never forgotten:
  // a purge waits for its lease if it stops answering).
  absl::flat_hash_set<std::string> models_sent;
  // Models it was ever asked to serve shards of (never forgotten either).
  absl::flat_hash_set<std::string> models_served;
  // Model id -> until when its shards are not placed here: loading one
  // failed for a reason of this worker's (base weights missing, config not
  // understood), which every request would hit again.
  absl::flat_hash_map<std::string, absl::Time> cannot_serve_until;
};

namespace {

// How often a running call checks for cancellation and worker death.
constexpr absl::Duration kWatchPeriod = absl::Milliseconds(20);
// Largest piece of a slice upload.
constexpr size_t kSlicePieceBytes = size_t{1} << 20;
// Slices remembered per worker for placing positions near their data.
constexpr size_t kMaxSliceHints = 100000;

// How long a worker that could not load a model's shard gets none of its
// shards (CannotServe).
constexpr absl::Duration kCannotServeBackoff = absl::Seconds(30);

}  // namespace

WorkerPool::WorkerPool(Options options)
    : options_(std::move(options)),
      // Ids of an earlier coordinator process must not name workers of this
      // one: a worker heartbeating with a stale id is told to register.
      incarnation_(absl::StrFormat("%08x", std::random_device()())) {
  grpc::ChannelArguments unused;
  channel_credentials_ = ChannelCredentialsFor(options_.tls, &unused);
}

void WorkerPool::PrepareCall(grpc::ClientContext* context,
                             absl::Time deadline) const {
  context->set_deadline(absl::ToChronoTime(deadline));
  if (!options_.cluster_token.empty()) {
    context->AddMetadata(kClusterTokenMetadata, options_.cluster_token);
  }
}

WorkerPool::~WorkerPool() = default;

absl::StatusOr<std::string> WorkerPool::Register(absl::string_view address,
                                                 absl::string_view environment,
                                                 absl::string_view name,
                                                 bool holds_chunks) {
  if (address.empty()) {
    return absl::InvalidArgumentError("worker address is empty");
  }
  if (environment.empty()) {
    return absl::InvalidArgumentError("worker environment is empty");
  }
  if (!name.empty()) OUBLI_RETURN_IF_ERROR(CheckWorkerName(name));
  auto worker = std::make_shared<Worker>();
  worker->address = std::string(address);
  worker->environment = std::string(environment);
  worker->name = name.empty() ? worker->address : std::string(name);
  worker->holds_chunks = holds_chunks;
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(static_cast<int>(options_.max_message_bytes));
  args.SetMaxSendMessageSize(static_cast<int>(options_.max_message_bytes));
  // A worker that restarts registers anew; but a blip must not park the
  // channel in gRPC's default reconnect backoff (up to two minutes).
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  SetTlsServerName(options_.tls, &args);
  worker->stub = cluster::Worker::NewStub(
      grpc::CreateCustomChannel(worker->address, channel_credentials_, args));
  const absl::Time now = absl::Now();
  worker->registered_at = now;
  worker->last_heartbeat = now;

  absl::MutexLock lock(&mu_);
  if (RetiredLocked(worker->name)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "worker name '", worker->name, "' was retired at ",
        absl::FormatTime(retired_.at(worker->name)),
        " (its chunks count as destroyed); start this worker with a new "
        "--name and an empty --data_dir"));
  }
  // Chunks are named by worker name: two live workers must not share one.
  for (const auto& [id, other] : workers_) {
    if (other->name == worker->name && other->address != worker->address &&
        AliveLocked(*other, now)) {
      return absl::AlreadyExistsError(absl::StrCat(
          "a live worker named '", worker->name, "' is registered from ",
          other->address, "; names must be unique (retry once it is gone)"));
    }
  }
  // A worker restarted at the same address, or under the same name (its
  // chunks are named by it), replaces its old entry.
  for (auto it = workers_.begin(); it != workers_.end();) {
    auto next = std::next(it);
    if (it->second->address == worker->address ||
        it->second->name == worker->name) {
      workers_.erase(it);
    }
    it = next;
  }
  worker->id = absl::StrFormat("w%04d-%s", next_id_++, incarnation_);
  workers_[worker->id] = worker;
  std::fprintf(stderr, "oubli: worker %s registered: %s at %s\n",
               worker->id.c_str(), worker->name.c_str(),
               worker->address.c_str());
  return worker->id;
}

bool WorkerPool::Heartbeat(absl::string_view worker_id) {
  absl::MutexLock lock(&mu_);
  auto it = workers_.find(worker_id);
  if (it == workers_.end()) return false;
  Worker& worker = *it->second;
  const absl::Time now = absl::Now();
  if (!AliveLocked(worker, now)) {
    if (!worker.dead) {
      std::fprintf(stderr,
                   "oubli: worker %s came back after %s without heartbeats; "
                   "it must register again\n",
                   worker.id.c_str(),
                   absl::FormatDuration(now - worker.last_heartbeat).c_str());
    }
    worker.dead = true;
    return false;
  }
  worker.last_heartbeat = now;
  return true;
}

bool WorkerPool::AliveLocked(const Worker& worker, absl::Time now) const {
  return !worker.dead && now - worker.last_heartbeat <= options_.worker_timeout;
}

bool WorkerPool::RetiredLocked(absl::string_view name) const {
  return retired_.contains(name);
}

bool WorkerPool::Retired(absl::string_view name) {
  absl::MutexLock lock(&mu_);
  return RetiredLocked(name);
}

absl::Status WorkerPool::OpenRetiredHolders(const std::string& path) {
  absl::flat_hash_map<std::string, absl::Time> retired;
  std::error_code error;
  const bool exists = std::filesystem::exists(path, error);
  if (error) {
    return absl::DataLossError(
        absl::StrCat("retired workers file ", path, ": ", error.message()));
  }
  if (exists) {
    absl::StatusOr<std::string> text = ReadFile(path);
    if (!text.ok()) {
      return absl::DataLossError(absl::StrCat("retired workers file ", path,
                                              ": ", text.status().message()));
    }
    int line_number = 0;
    for (absl::string_view line : absl::StrSplit(*text, '\n')) {
      ++line_number;
      if (line.empty()) continue;
      const size_t space = line.find(' ');
      int64_t nanos = 0;
      if (space == absl::string_view::npos || space + 1 == line.size() ||
          !absl::SimpleAtoi(line.substr(0, space), &nanos)) {
        return absl::DataLossError(absl::StrCat("retired workers file ", path,
                                                " line ", line_number,
                                                " is not 'unix_nanos name'"));
      }
      retired[line.substr(space + 1)] = absl::FromUnixNanos(nanos);
    }
  }
  absl::MutexLock lock(&mu_);
  retired_path_ = path;
  retired_ = std::move(retired);
  return absl::OkStatus();
}

absl::Status WorkerPool::CheckRetirableLocked(absl::string_view name,
                                              absl::Time now, bool* known) {
  for (const auto& [id, worker] : workers_) {
    if (worker->name != name) continue;
    *known = true;
    if (AliveLocked(*worker, now)) {
      return absl::FailedPreconditionError(
          absl::StrCat("worker '", name, "' is alive (", worker->id,
                       "); stop it for good before retiring it"));
    }
  }
  // Until every live worker has had a worker timeout to register again,
  // absence proves nothing.
  if (now < started_ + options_.worker_timeout) {
    const absl::Duration tenth = absl::Milliseconds(100);
    return absl::UnavailableError(
        absl::StrCat("the coordinator started ",
                     absl::FormatDuration(absl::Trunc(now - started_, tenth)),
                     " ago; workers are still registering again: retry in ",
                     absl::FormatDuration(absl::Ceil(
                         started_ + options_.worker_timeout - now, tenth))));
  }
  return absl::OkStatus();
}

absl::StatusOr<WorkerPool::RetiredHolder> WorkerPool::RetireHolder(
    absl::string_view name,
    const std::function<absl::StatusOr<bool>()>& named_by_a_manifest) {
  OUBLI_RETURN_IF_ERROR(CheckWorkerName(name));
  // One retirement at a time; the file is written without mu_, which
  // heartbeats need.
  absl::MutexLock retire_lock(&retire_mu_);
  bool known = false;
  {
    absl::MutexLock lock(&mu_);
    if (auto it = retired_.find(name); it != retired_.end()) {
      return RetiredHolder{std::string(name), it->second};
    }
    OUBLI_RETURN_IF_ERROR(CheckRetirableLocked(name, absl::Now(), &known));
  }
  if (!known && named_by_a_manifest) {
    OUBLI_ASSIGN_OR_RETURN(known, named_by_a_manifest());
  }
  if (!known) {
    return absl::NotFoundError(absl::StrCat(
        "no registered worker and no chunk manifest names '", name,
        "': nothing to retire (oublictl model lists the workers)"));
  }
  std::string text, path;
  const absl::Time now = absl::Now();
  {
    absl::MutexLock lock(&mu_);
    path = retired_path_;
    // It may have registered while the manifests were read.
    OUBLI_RETURN_IF_ERROR(CheckRetirableLocked(name, now, &known));
    // From here on Register refuses the name, before it is durable: a
    // failed write below only makes the refusal temporary.
    retired_[name] = now;
    absl::erase_if(workers_, [&](const auto& entry) {
      return entry.second->name == name;
    });
    std::vector<std::pair<std::string, absl::Time>> sorted(retired_.begin(),
                                                           retired_.end());
    std::sort(sorted.begin(), sorted.end());
    for (const auto& [holder, at] : sorted) {
      absl::StrAppend(&text, absl::ToUnixNanos(at), " ", holder, "\n");
    }
  }
  if (!path.empty()) {
    if (absl::Status written = WriteFileAtomically(path, text); !written.ok()) {
      // Not acknowledged, so not in force (the rename may have landed, in
      // which case the next start honours it: the safe direction).
      absl::MutexLock lock(&mu_);
      retired_.erase(std::string(name));
      return written;
    }
  }
  std::fprintf(stderr,
               "oubli: worker %s retired: its chunks count as destroyed\n",
               std::string(name).c_str());
  return RetiredHolder{std::string(name), now};
}

std::vector<WorkerPool::RetiredHolder> WorkerPool::RetiredHolders() {
  absl::MutexLock lock(&mu_);
  std::vector<RetiredHolder> out;
  for (const auto& [name, at] : retired_) out.push_back({name, at});
  std::sort(out.begin(), out.end(),
            [](const RetiredHolder& a, const RetiredHolder& b) {
              return a.name < b.name;
            });
  return out;
}

std::vector<WorkerPool::WorkerInfo> WorkerPool::Workers() {
  std::vector<WorkerInfo> out;
  absl::MutexLock lock(&mu_);
  const absl::Time now = absl::Now();
  for (const auto& [id, worker] : workers_) {
    WorkerInfo& info = out.emplace_back();
    info.id = worker->id;
    info.name = worker->name;
    info.address = worker->address;
    info.environment = worker->environment;
    info.holds_chunks = worker->holds_chunks;
    info.alive = AliveLocked(*worker, now);
    info.busy = worker->busy;
    info.positions_trained = worker->positions_trained;
    info.registered_at = worker->registered_at;
    info.last_heartbeat = worker->last_heartbeat;
  }
  std::sort(
      out.begin(), out.end(),
      [](const WorkerInfo& a, const WorkerInfo& b) { return a.id < b.id; });
  return out;
}

int WorkerPool::Capacity(const std::string& environment) {
  absl::MutexLock lock(&mu_);
  const absl::Time now = absl::Now();
  int live = 0;
  for (const auto& [id, worker] : workers_) {
    if (worker->environment == environment && AliveLocked(*worker, now)) {
      ++live;
    }
  }
  return live;
}

std::shared_ptr<WorkerPool::Worker> WorkerPool::Acquire(
    const std::string& environment, const std::vector<std::string>& excluded,
    const std::vector<std::string>& slice_keys) {
  absl::MutexLock lock(&mu_);
  const absl::Time now = absl::Now();
  std::shared_ptr<Worker> best;
  int best_cached = 0;
  for (const auto& [id, worker] : workers_) {
    if (worker->environment != environment || !AliveLocked(*worker, now) ||
        std::find(excluded.begin(), excluded.end(), worker->address) !=
            excluded.end()) {
      continue;
    }
    // Least busy first; among those, the one holding most of the
    // position's slices, so a shard's data stays where it was sent.
    int cached = 0;
    for (const std::string& key : slice_keys) {
      cached += worker->sent_slices.contains(key) ? 1 : 0;
    }
    if (best == nullptr || worker->busy < best->busy ||
        (worker->busy == best->busy &&
         (cached > best_cached ||
          (cached == best_cached && worker->id < best->id)))) {
      best = worker;
      best_cached = cached;
    }
  }
  if (best != nullptr) ++best->busy;
  return best;
}

void WorkerPool::Release(const std::shared_ptr<Worker>& worker, bool trained) {
  absl::MutexLock lock(&mu_);
  --worker->busy;
  if (trained) ++worker->positions_trained;
}

void WorkerPool::MarkDead(const std::shared_ptr<Worker>& worker,
                          absl::string_view why) {
  absl::MutexLock lock(&mu_);
  if (!worker->dead) {
    std::fprintf(stderr, "oubli: worker %s (%s) declared dead: %s\n",
                 worker->id.c_str(), worker->address.c_str(),
                 std::string(why).c_str());
  }
  worker->dead = true;
}

// Cancels the calls of one training attempt on one worker once the engine
// no longer wants the result or the worker stops heartbeating.
class WorkerPool::AttemptWatch {
 public:
  // `cancelled` outlives this.
  AttemptWatch(const std::function<bool()>& cancelled,
               std::function<bool()> alive)
      : thread_([this, cancelled = &cancelled, alive = std::move(alive)] {
          while (!done_.WaitForNotificationWithTimeout(kWatchPeriod)) {
            if (*cancelled && (*cancelled)()) {
              Cancel(&we_cancelled_);
              return;
            }
            if (!alive()) {
              Cancel(&worker_lost_);
              return;
            }
          }
        }) {}
  ~AttemptWatch() {
    done_.Notify();
    thread_.join();
  }

  // The next call of the attempt runs under `context`; false: the attempt
  // is already cancelled, do not start it.
  bool Begin(grpc::ClientContext* context) {
    absl::MutexLock lock(&mu_);
    if (we_cancelled_ || worker_lost_) return false;
    current_ = context;
    return true;
  }
  void End() {
    absl::MutexLock lock(&mu_);
    current_ = nullptr;
  }
  bool we_cancelled() {
    absl::MutexLock lock(&mu_);
    return we_cancelled_;
  }
  bool worker_lost() {
    absl::MutexLock lock(&mu_);
    return worker_lost_;
  }

 private:
  void Cancel(bool* why) {
    absl::MutexLock lock(&mu_);
    *why = true;
    if (current_ != nullptr) current_->TryCancel();
  }

  absl::Mutex mu_;
  grpc::ClientContext* current_ ABSL_GUARDED_BY(mu_) = nullptr;
  bool we_cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool worker_lost_ ABSL_GUARDED_BY(mu_) = false;
  absl::Notification done_;
  std::thread thread_;  // last: started once the rest is built
};

grpc::Status WorkerPool::UploadSlice(Worker& worker,
                                     const std::string& model_id,
                                     const storage::EncodedSlice& slice,
                                     AttemptWatch& watch) {
  grpc::ClientContext context;
  // At least 8 MiB/s, however large the slice.
  PrepareCall(&context,
              absl::Now() + options_.chunk_deadline +
                  absl::Seconds(static_cast<double>(slice.bytes().size()) /
                                (8 << 20)));
  if (!watch.Begin(&context)) {
    return grpc::Status(grpc::StatusCode::CANCELLED, "attempt cancelled");
  }
  cluster::PutSliceResponse response;
  std::unique_ptr<grpc::ClientWriter<cluster::SlicePiece>> writer =
      worker.stub->PutSlice(&context, &response);
  const std::string& bytes = slice.bytes();
  cluster::SlicePiece piece;
  piece.set_model_id(model_id);
  piece.set_digest(slice.digest());
  piece.set_total_bytes(static_cast<int64_t>(bytes.size()));
  // Read when the upload begins: a purge pass after this one refuses it.
  piece.set_epoch(slice_epoch_.load());
  size_t at = 0;
  do {
    const size_t n = std::min(kSlicePieceBytes, bytes.size() - at);
    piece.set_data(bytes.data() + at, n);
    at += n;
    if (!writer->Write(piece)) break;  // Finish says why
    piece.clear_model_id();
    piece.clear_digest();
    piece.clear_total_bytes();
    piece.clear_epoch();
  } while (at < bytes.size());
  writer->WritesDone();
  const grpc::Status status = writer->Finish();
  watch.End();
  if (status.ok()) {
    slice_bytes_sent_ += static_cast<int64_t>(bytes.size());
    absl::MutexLock lock(&mu_);
    // A hint only: bounded however long the model lives.
    if (worker.sent_slices.size() >= kMaxSliceHints) {
      worker.sent_slices.clear();
    }
    worker.sent_slices.insert(absl::StrCat(model_id, "/", slice.digest()));
    worker.models_sent.insert(model_id);
  }
  return status;
}

absl::StatusOr<RemoteResult> WorkerPool::TrainPosition(
    const RemotePosition& position, const std::function<bool()>& cancelled) {
  cluster::TrainPositionRequest request;
  request.set_config(position.config_text);
  request.set_environment(position.environment);
  request.set_shard(position.shard);
  for (int slice : position.prefix) request.add_prefix(slice);
  request.set_parent(position.parent);
  request.set_model_id(position.model_id);
  absl::flat_hash_map<std::string, const storage::EncodedSlice*> by_digest;
  std::vector<std::string> slice_keys;
  for (const auto& slice : position.slices) {
    request.add_slice_digests(slice->digest());
    by_digest[slice->digest()] = slice.get();
    slice_keys.push_back(absl::StrCat(position.model_id, "/", slice->digest()));
  }
  // Slices travel apart, in pieces; what is left is mostly the parent
  // checkpoint.
  if (request.ByteSizeLong() >
      static_cast<size_t>(options_.max_message_bytes)) {
    return absl::UnavailableError(absl::StrCat(
        "position of ", request.ByteSizeLong(),
        " bytes exceeds max_message_bytes ", options_.max_message_bytes));
  }

  // Addresses that failed this position: a worker that re-registers after
  // failing gets a new id but keeps its address, and must not be retried
  // in a loop.
  std::vector<std::string> excluded;
  constexpr int kMaxAttempts = 4;
  // Rounds of "these slices are missing, here they are" on one worker: a
  // slice evicted again before training (a cache too small for the
  // position) or refused by a purge pass needs another.
  constexpr int kUploadRounds = 3;
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    if (cancelled && cancelled()) return absl::CancelledError("cancelled");
    std::shared_ptr<Worker> worker =
        Acquire(position.environment, excluded, slice_keys);
    if (worker == nullptr) break;
    cluster::TrainPositionResponse response;
    grpc::Status status;
    bool we_cancelled = false, worker_lost = false;
    {
      AttemptWatch watch(cancelled, [this, &worker] {
        absl::MutexLock lock(&mu_);
        return AliveLocked(*worker, absl::Now());
      });
      for (int round = 0;; ++round) {
        response.Clear();
        grpc::ClientContext context;
        PrepareCall(&context, absl::Now() + options_.train_deadline);
        if (!watch.Begin(&context)) {
          status = grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
          break;
        }
        status = worker->stub->TrainPosition(&context, request, &response);
        watch.End();
        if (!status.ok() || response.missing_slices().empty()) break;
        if (round == kUploadRounds) {
          status = grpc::Status(
              grpc::StatusCode::RESOURCE_EXHAUSTED,
              absl::StrCat("slices still missing after ", kUploadRounds,
                           " uploads (is the worker's --slice_cache_bytes "
                           "smaller than one position's slices?)"));
          break;
        }
        for (const std::string& digest : response.missing_slices()) {
          auto it = by_digest.find(digest);
          if (it == by_digest.end()) {
            status = grpc::Status(grpc::StatusCode::INTERNAL,
                                  "worker asked for a slice not named");
            break;
          }
          status = UploadSlice(*worker, position.model_id, *it->second, watch);
          // Refused as older than a purge pass: the next round uploads it
          // again under the new epoch.
          if (status.error_code() == grpc::StatusCode::FAILED_PRECONDITION) {
            status = grpc::Status::OK;
          }
          // Our own slice refused: never blamed on the parent.
          if (status.error_code() == grpc::StatusCode::INVALID_ARGUMENT ||
              status.error_code() == grpc::StatusCode::DATA_LOSS) {
            status = grpc::Status(
                grpc::StatusCode::INTERNAL,
                absl::StrCat("slice upload refused: ", status.error_message()));
          }
          if (!status.ok()) break;
        }
        if (!status.ok()) break;
      }
      we_cancelled = watch.we_cancelled();
      worker_lost = watch.worker_lost();
    }
    Release(worker, status.ok());

    if (status.ok()) {
      RemoteResult result;
      result.checkpoint = std::move(*response.mutable_checkpoint());
      result.samples = response.samples();
      result.steps = response.steps();
      result.worker = worker->id;
      return result;
    }
    if (we_cancelled) return absl::CancelledError("cancelled");
    excluded.push_back(worker->address);
    switch (status.error_code()) {
      case grpc::StatusCode::INVALID_ARGUMENT:
        // The position's own problem (a corrupt parent): final.
        return FromGrpcStatus(status);
      case grpc::StatusCode::DATA_LOSS:
      case grpc::StatusCode::INTERNAL:
        // Its slices do not fit (a bug, not the worker's state): final,
        // and not the parent's fault.
        return absl::InternalError(
            absl::StrCat("worker ", worker->id, ": ", status.error_message()));
      case grpc::StatusCode::DEADLINE_EXCEEDED:
      case grpc::StatusCode::RESOURCE_EXHAUSTED:
        // Too slow or too big over there; nothing says the worker is bad.
        return absl::UnavailableError(
            absl::StrCat("worker ", worker->id, ": ", status.error_message()));
      case grpc::StatusCode::FAILED_PRECONDITION:
        // E.g. this worker cannot read the base weights file: others may.
        std::fprintf(stderr, "oubli: worker %s cannot train shard %d: %s\n",
                     worker->id.c_str(), position.shard,
                     status.error_message().c_str());
        continue;
      default:
        MarkDead(worker, worker_lost ? "no heartbeat while training"
                                     : absl::StrCat("TrainPosition: ",
                                                    status.error_message()));
        continue;
    }
  }
  return absl::UnavailableError("no live worker could train this position");
}

absl::Status WorkerPool::DropStaleSlices(
    const std::string& model_id, const absl::flat_hash_set<std::string>& keep,
    bool reopened) {
  OUBLI_RETURN_IF_ERROR(WaitForUnreachableCopies(model_id, reopened, true));
  const int64_t epoch = ++slice_epoch_;
  std::vector<std::shared_ptr<Worker>> told;
  {
    absl::MutexLock lock(&mu_);
    const absl::Time now = absl::Now();
    const std::string prefix = absl::StrCat(model_id, "/");
    for (const auto& [id, worker] : workers_) {
      if (AliveLocked(*worker, now)) told.push_back(worker);
      absl::erase_if(worker->sent_slices, [&](const std::string& key) {
        return absl::StartsWith(key, prefix) &&
               !keep.contains(key.substr(prefix.size()));
      });
    }
  }
  cluster::DropSlicesRequest request;
  request.set_model_id(model_id);
  for (const std::string& digest : keep) request.add_keep(digest);
  request.set_epoch(epoch);
  return ConfirmDropOnAll(told, "cached slices", [&](size_t w) {
    grpc::ClientContext context;
    PrepareCall(&context, absl::Now() + options_.chunk_deadline);
    cluster::DropSlicesResponse response;
    return told[w]->stub->DropSlices(&context, request, &response);
  });
}

absl::Status WorkerPool::ConfirmDropOnAll(
    const std::vector<std::shared_ptr<Worker>>& told, absl::string_view what,
    const std::function<grpc::Status(size_t w)>& drop) {
  std::vector<std::string> failures(told.size());
  std::vector<std::thread> threads;
  for (size_t w = 0; w < told.size(); ++w) {
    threads.emplace_back([&, w] {
      const grpc::Status status = drop(w);
      if (!status.ok()) {
        failures[w] = absl::StrCat(what, " not confirmed dropped: ",
                                   status.error_message());
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  // Declared dead, a worker holds nothing once its lease runs out; until
  // then WaitForUnreachableCopies holds the next pass back.
  bool all_confirmed = true;
  for (size_t w = 0; w < told.size(); ++w) {
    if (!failures[w].empty()) {
      MarkDead(told[w], failures[w]);
      all_confirmed = false;
    }
  }
  if (!all_confirmed) {
    return absl::UnavailableError(
        absl::StrCat("a worker did not confirm dropping ", what));
  }
  return absl::OkStatus();
}

// ------------------------------------------------------------ chunks

grpc::Status WorkerPool::PutChunk(const Worker& holder, const std::string& key,
                                  int index, absl::string_view bytes,
                                  uint32_t crc32c) {
  cluster::PutChunkRequest request;
  request.set_checkpoint_key(key);
  request.set_index(index);
  request.set_data(std::string(bytes));
  request.set_crc32c(crc32c);
  grpc::ClientContext context;
  PrepareCall(&context, absl::Now() + options_.chunk_deadline);
  cluster::PutChunkResponse response;
  return holder.stub->PutChunk(&context, request, &response);
}

std::shared_ptr<WorkerPool::Worker> WorkerPool::LiveHolder(
    const std::string& name) {
  absl::MutexLock lock(&mu_);
  const absl::Time now = absl::Now();
  for (const auto& [id, worker] : workers_) {
    if (worker->name == name && worker->holds_chunks &&
        AliveLocked(*worker, now)) {
      return worker;
    }
  }
  return nullptr;
}

namespace {

// Chunk holders a checkpoint coded with `code` needs.
size_t HoldersNeeded(const ErasureCodeConfig& code) {
  return code.automatic()
             ? 2
             : static_cast<size_t>(code.data_chunks + code.parity_chunks);
}

}  // namespace

std::vector<std::shared_ptr<WorkerPool::Worker>>
WorkerPool::LiveChunkHolders() {
  std::vector<std::shared_ptr<Worker>> holders;
  absl::MutexLock lock(&mu_);
  const absl::Time now = absl::Now();
  for (const auto& [id, worker] : workers_) {
    if (worker->holds_chunks && AliveLocked(*worker, now)) {
      holders.push_back(worker);
    }
  }
  return holders;
}

bool WorkerPool::CanProtect(const ErasureCodeConfig& code) {
  return LiveChunkHolders().size() >= HoldersNeeded(code);
}

absl::Status WorkerPool::Protect(
    const std::string& key, absl::string_view bytes,
    const ErasureCodeConfig& code_config,
    const std::function<absl::Status(const std::string&)>& persist) {
  // Live holders by name, rotated by the key so chunks spread evenly.
  std::vector<std::shared_ptr<Worker>> holders = LiveChunkHolders();
  const size_t needed = HoldersNeeded(code_config);
  if (holders.size() < needed) {
    return absl::FailedPreconditionError(absl::StrCat(
        holders.size(), " chunk-holding worker(s) alive; need ", needed));
  }
  std::sort(holders.begin(), holders.end(),
            [](const auto& a, const auto& b) { return a->name < b->name; });
  std::rotate(holders.begin(),
              holders.begin() + std::hash<std::string>()(key) % holders.size(),
              holders.end());
  const auto [k, m] =
      code_config.automatic()
          ? storage::DefaultCodeFor(static_cast<int>(holders.size()))
          : std::make_pair(code_config.data_chunks, code_config.parity_chunks);
  OUBLI_ASSIGN_OR_RETURN(storage::ReedSolomonCode code,
                         storage::ReedSolomonCode::Create(k, m));
  // Borrowing: the only copy of the data is the one into each message.
  storage::BorrowedEncodedBlob encoded;
  OUBLI_RETURN_IF_ERROR(code.EncodeBlobBorrowing(bytes, &encoded));

  internal::ChunkManifest manifest;
  manifest.set_data_chunks(k);
  manifest.set_parity_chunks(m);
  manifest.set_original_size(encoded.layout.original_size);
  manifest.set_chunk_size(encoded.layout.chunk_size);
  const Sha256Digest digest = Sha256().Add(bytes).Finish();
  manifest.set_checkpoint_sha256(digest.data(), digest.size());
  for (int i = 0; i < k + m; ++i) {
    manifest.add_chunk_crc32c(encoded.layout.chunk_crc32c[i]);
    manifest.add_holders(holders[i]->name);
  }
  const std::string manifest_bytes = manifest.SerializeAsString();
  OUBLI_RETURN_IF_ERROR(persist(manifest_bytes));
  for (int i = 0; i < k + m; ++i) {
    const grpc::Status status = PutChunk(*holders[i], key, i, encoded.chunks[i],
                                         encoded.layout.chunk_crc32c[i]);
    if (!status.ok()) {
      // Even a timed-out put may land: the persisted manifest names every
      // holder, so the caller's Forget reaches it.
      return absl::UnavailableError(absl::StrCat("storing chunk ", i, " on ",
                                                 holders[i]->name, ": ",
                                                 status.error_message()));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> WorkerPool::Restore(const std::string& key,
                                                const std::string& bytes) {
  internal::ChunkManifest manifest;
  OUBLI_ASSIGN_OR_RETURN(const storage::BlobLayout layout,
                         ParseChunkManifest(key, bytes, &manifest));
  const int total = layout.total_chunks();
  OUBLI_ASSIGN_OR_RETURN(storage::ReedSolomonCode code,
                         storage::ReedSolomonCode::Create(
                             layout.data_chunks, layout.parity_chunks));
  // Fetch until k chunks pass their CRC; the rest stay erasures.
  std::vector<std::string> fetched(total);
  std::vector<std::optional<storage::ChunkView>> views(total);
  std::vector<std::string> problems;
  const int good = FetchChunks(
      key, {manifest.holders().begin(), manifest.holders().end()},
      layout.chunk_crc32c, layout.chunk_size, layout.data_chunks, {},
      /*wait_at_start=*/true, &fetched, &views, &problems);
  if (good < layout.data_chunks) {
    return absl::DataLossError(absl::StrCat(
        "checkpoint ", key, ": ", good, " of the ", layout.data_chunks,
        " chunks needed are readable (", absl::StrJoin(problems, "; "), ")"));
  }
  OUBLI_ASSIGN_OR_RETURN(std::string blob, code.DecodeBlob(layout, views));
  const Sha256Digest digest = Sha256().Add(blob).Finish();
  if (manifest.checkpoint_sha256() !=
      absl::string_view(reinterpret_cast<const char*>(digest.data()),
                        digest.size())) {
    return absl::DataLossError(
        absl::StrCat("checkpoint ", key, " decodes to the wrong SHA-256"));
  }
  if (!problems.empty()) {
    std::fprintf(stderr, "oubli: restored checkpoint %s despite: %s\n",
                 key.c_str(), absl::StrJoin(problems, "; ").c_str());
  }
  return blob;
}

int WorkerPool::FetchChunks(
    const std::string& key, const std::vector<std::string>& holders,
    const std::vector<uint32_t>& crcs, uint64_t chunk_size, int needed,
    const std::vector<int>& skip, bool wait_at_start,
    std::vector<std::string>* fetched,
    std::vector<std::optional<storage::ChunkView>>* views,
    std::vector<std::string>* problems) {
  int good = 0;
  for (int i = 0; i < static_cast<int>(holders.size()) && good < needed; ++i) {
    if (std::find(skip.begin(), skip.end(), i) != skip.end()) continue;
    std::shared_ptr<Worker> holder = LiveHolder(holders[i]);
    // Right after a coordinator restart the workers have not registered
    // again yet: give them one worker timeout before calling them lost.
    while (wait_at_start && holder == nullptr &&
           absl::Now() < started_ + options_.worker_timeout &&
           !Retired(holders[i])) {
      absl::SleepFor(absl::Milliseconds(100));
      holder = LiveHolder(holders[i]);
    }
    if (holder == nullptr) {
      problems->push_back(
          absl::StrCat("chunk ", i, ": ", holders[i], " not alive"));
      continue;
    }
    cluster::GetChunkRequest request;
    request.set_checkpoint_key(key);
    request.set_index(i);
    grpc::ClientContext context;
    PrepareCall(&context, absl::Now() + options_.chunk_deadline);
    std::unique_ptr<grpc::ClientReader<cluster::ChunkPiece>> reader =
        holder->stub->GetChunk(&context, request);
    cluster::ChunkPiece piece;
    std::string& data = (*fetched)[i];
    while (reader->Read(&piece) && data.size() <= chunk_size) {
      data += piece.data();
    }
    const grpc::Status status = reader->Finish();
    if (!status.ok() || data.size() != chunk_size ||
        storage::Crc32c(data) != crcs[i]) {
      problems->push_back(absl::StrCat(
          "chunk ", i, " on ", holder->name, ": ",
          status.ok() ? "size or CRC32C mismatch" : status.error_message()));
      continue;
    }
    (*views)[i] = storage::ChunkView{data};
    ++good;
  }
  return good;
}

absl::StatusOr<int> WorkerPool::Repair(
    const std::string& key, const std::string& bytes,
    const std::function<absl::Status(const std::string&)>& persist) {
  internal::ChunkManifest manifest;
  OUBLI_ASSIGN_OR_RETURN(const storage::BlobLayout layout,
                         ParseChunkManifest(key, bytes, &manifest));
  const int total = layout.total_chunks();
  std::vector<int> lost;
  for (int i = 0; i < total; ++i) {
    if (LiveHolder(manifest.holders(i)) == nullptr) lost.push_back(i);
  }
  if (lost.empty()) return 0;
  // Spares: live holders without a chunk of this checkpoint (one chunk per
  // worker keeps every worker loss a single erasure).
  std::vector<std::shared_ptr<Worker>> spares = LiveChunkHolders();
  std::erase_if(spares, [&](const std::shared_ptr<Worker>& worker) {
    return std::find(manifest.holders().begin(), manifest.holders().end(),
                     worker->name) != manifest.holders().end();
  });
  std::sort(spares.begin(), spares.end(),
            [](const auto& a, const auto& b) { return a->name < b->name; });
  if (spares.size() < lost.size()) lost.resize(spares.size());
  if (lost.empty()) return 0;

  std::vector<std::string> fetched(total);
  std::vector<std::optional<storage::ChunkView>> views(total);
  std::vector<std::string> problems;
  const int good = FetchChunks(
      key, {manifest.holders().begin(), manifest.holders().end()},
      layout.chunk_crc32c, layout.chunk_size, layout.data_chunks, lost,
      /*wait_at_start=*/false, &fetched, &views, &problems);
  if (good < layout.data_chunks) {
    return absl::DataLossError(absl::StrCat(
        "checkpoint ", key, ": ", good, " of the ", layout.data_chunks,
        " chunks needed are readable (", absl::StrJoin(problems, "; "), ")"));
  }
  OUBLI_ASSIGN_OR_RETURN(storage::ReedSolomonCode code,
                         storage::ReedSolomonCode::Create(
                             layout.data_chunks, layout.parity_chunks));
  OUBLI_ASSIGN_OR_RETURN(std::vector<storage::Chunk> regenerated,
                         code.RepairChunks(layout, views, lost));

  internal::ChunkManifest repaired = manifest;
  for (size_t j = 0; j < lost.size(); ++j) {
    repaired.add_also_destroy(manifest.holders(lost[j]));
    repaired.set_holders(lost[j], spares[j]->name);
  }
  // Named before placed, as in Protect.
  OUBLI_RETURN_IF_ERROR(persist(repaired.SerializeAsString()));
  for (size_t j = 0; j < lost.size(); ++j) {
    const grpc::Status status =
        PutChunk(*spares[j], key, lost[j],
                 regenerated[j].bytes.view().substr(0, layout.chunk_size),
                 regenerated[j].crc32c);
    if (!status.ok()) {
      return absl::UnavailableError(absl::StrCat("re-placing chunk ", lost[j],
                                                 " on ", spares[j]->name, ": ",
                                                 status.error_message()));
    }
  }
  return static_cast<int>(lost.size());
}

absl::Status WorkerPool::Forget(const std::string& key,
                                const std::string& bytes) {
  internal::ChunkManifest manifest;
  if (!manifest.ParseFromString(bytes)) {
    return absl::DataLossError(
        absl::StrCat("chunk manifest of ", key, " is unreadable"));
  }
  std::vector<std::string> names(manifest.holders().begin(),
                                 manifest.holders().end());
  names.insert(names.end(), manifest.also_destroy().begin(),
               manifest.also_destroy().end());
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  std::vector<std::string> unreachable;
  for (const std::string& name : names) {
    if (Retired(name)) continue;  // gone with its disk, on the operator's word
    std::shared_ptr<Worker> holder = LiveHolder(name);
    // Right after a coordinator restart absence proves nothing (as for
    // RetireHolder): do not send the operator to retire a worker that is
    // about to register again.
    grpc::Status status(
        grpc::StatusCode::UNAVAILABLE,
        absl::Now() < started_ + options_.worker_timeout
            ? std::string("not registered again yet since the coordinator "
                          "started; retried when it is")
            : absl::StrCat("not alive; if it is gone for good with its disk: "
                           "oublictl retire-worker ",
                           name));
    if (holder != nullptr) {
      cluster::DeleteChunksRequest request;
      request.add_checkpoint_keys(key);
      grpc::ClientContext context;
      PrepareCall(&context, absl::Now() + options_.chunk_deadline);
      cluster::DeleteChunksResponse response;
      status = holder->stub->DeleteChunks(&context, request, &response);
    }
    if (!status.ok()) {
      unreachable.push_back(
          absl::StrCat(name, " (", status.error_message(), ")"));
    }
  }
  if (!unreachable.empty()) {
    return absl::UnavailableError(
        absl::StrCat("chunks of ", key, " not yet destroyed on ",
                     absl::StrJoin(unreachable, ", ")));
  }
  return absl::OkStatus();
}

namespace {

// A PredictShardsRequest naming query.shards[indices], without inputs.
cluster::PredictShardsRequest ShardsRequest(
    const ShardServing::Query& query, const std::vector<size_t>& indices) {
  cluster::PredictShardsRequest request;
  request.set_model_id(query.model_id);
  request.set_config(query.config_text);
  request.set_environment(query.environment);
  for (size_t i : indices) {
    cluster::ShardCheckpoint* shard = request.add_shards();
    shard->set_shard(query.shards[i].shard);
    shard->set_checkpoint_sha256(query.shards[i].checkpoint_sha256);
  }
  return request;
}

}  // namespace

WorkerPool::Placement WorkerPool::PlaceShards(const Query& query) {
  Placement placement;
  {
    absl::MutexLock lock(&mu_);
    const absl::Time now = absl::Now();
    for (const auto& [id, worker] : workers_) {
      if (worker->environment != query.environment ||
          !AliveLocked(*worker, now)) {
        continue;
      }
      if (auto it = worker->cannot_serve_until.find(query.model_id);
          it != worker->cannot_serve_until.end()) {
        if (now < it->second) {
          placement.backed_off.push_back(worker);
          continue;
        }
        worker->cannot_serve_until.erase(it);
      }
      placement.servers.push_back(worker);
    }
  }
  // Stable while membership is: a worker keeps the checkpoints of the same
  // shards loaded from one request to the next.
  std::sort(placement.servers.begin(), placement.servers.end(),
            [](const auto& a, const auto& b) { return a->id < b->id; });
  placement.groups.resize(placement.servers.size());
  if (placement.servers.empty()) return placement;
  for (size_t i = 0; i < query.shards.size(); ++i) {
    placement
        .groups[static_cast<size_t>(query.shards[i].shard) %
                placement.servers.size()]
        .push_back(i);
  }
  return placement;
}

std::vector<ShardServing::ShardResult> WorkerPool::Predict(const Query& query) {
  std::vector<ShardResult> results(query.shards.size());
  const Placement placement = PlaceShards(query);
  if (placement.servers.empty()) {
    for (ShardResult& result : results) {
      result.probabilities =
          absl::UnavailableError("no live worker can serve this model");
    }
    return results;
  }
  std::string features(reinterpret_cast<const char*>(query.inputs.data()),
                       query.inputs.size() * sizeof(float));
  std::vector<std::thread> threads;
  for (size_t w = 0; w < placement.servers.size(); ++w) {
    if (placement.groups[w].empty()) continue;
    threads.emplace_back([&, w] {
      PredictOn(placement.servers[w], query, features, placement.groups[w],
                &results);
    });
  }
  for (std::thread& thread : threads) thread.join();
  return results;
}

absl::Status WorkerPool::WaitForUnreachableCopies(const std::string& model_id,
                                                  bool reopened,
                                                  bool slices) {
  absl::MutexLock lock(&mu_);
  const absl::Time now = absl::Now();
  // A worker drops its copies once its last heartbeat is a lease (the
  // worker timeout) old, checked at its next heartbeat attempt, which may
  // itself take a while: twice the timeout is a safe margin.
  const absl::Duration margin = 2 * options_.worker_timeout;
  if (reopened && now - started_ <= margin) {
    return absl::UnavailableError(
        "workers may not have registered with this coordinator yet");
  }
  for (const auto& [id, worker] : workers_) {
    const bool held = slices ? worker->models_sent.contains(model_id)
                             : worker->models_served.contains(model_id);
    if (held && !AliveLocked(*worker, now) &&
        now - worker->last_heartbeat <= margin) {
      return absl::UnavailableError(absl::StrCat(
          "worker ", worker->name, " stopped answering less than twice the "
          "worker timeout ago and may still hold ",
          slices ? "cached slices" : "serving copies"));
    }
  }
  return absl::OkStatus();
}

absl::Status WorkerPool::Sync(const Query& query) {
  OUBLI_RETURN_IF_ERROR(
      WaitForUnreachableCopies(query.model_id, query.reopened, false));
  const Placement placement = PlaceShards(query);
  // Workers backed off from this model may still hold copies they loaded
  // before: they are told to serve none. Workers not known to have dropped
  // are declared dead, so they hold nothing by the time anyone asks them
  // again (a worker drops every copy before it registers again, and by
  // itself once heartbeats fail for worker_timeout).
  std::vector<std::shared_ptr<Worker>> told = placement.servers;
  std::vector<std::vector<size_t>> groups = placement.groups;
  for (const std::shared_ptr<Worker>& worker : placement.backed_off) {
    told.push_back(worker);
    groups.emplace_back();
  }
  return ConfirmDropOnAll(told, "serving copies", [&](size_t w) {
    const cluster::PredictShardsRequest request =
        ShardsRequest(query, groups[w]);  // rows 0: sync only
    grpc::ClientContext context;
    PrepareCall(&context, absl::Now() + options_.predict_deadline);
    cluster::PredictShardsResponse response;
    const grpc::Status status =
        told[w]->stub->PredictShards(&context, request, &response);
    // The worker drops before it validates the request: its own
    // rejections still dropped.
    const grpc::StatusCode code = status.error_code();
    return code == grpc::StatusCode::FAILED_PRECONDITION ||
                   code == grpc::StatusCode::INVALID_ARGUMENT
               ? grpc::Status::OK
               : status;
  });
}

void WorkerPool::CannotServe(const std::shared_ptr<Worker>& worker,
                             const std::string& model_id,
                             const absl::Status& why) {
  {
    absl::MutexLock lock(&mu_);
    worker->cannot_serve_until[model_id] = absl::Now() + kCannotServeBackoff;
  }
  std::fprintf(stderr,
               "oubli: worker %s cannot serve model %s (%s); its shards go "
               "elsewhere for %s\n",
               worker->name.c_str(), model_id.c_str(), why.ToString().c_str(),
               absl::FormatDuration(kCannotServeBackoff).c_str());
}

void WorkerPool::PredictOn(const std::shared_ptr<Worker>& server,
                           const Query& query, const std::string& features,
                           const std::vector<size_t>& indices,
                           std::vector<ShardResult>* results) {
  {
    absl::MutexLock lock(&mu_);
    server->models_served.insert(query.model_id);
  }
  const Worker& worker = *server;
  const absl::Time deadline = absl::Now() + options_.predict_deadline;
  // Keeps answers a first round already got.
  auto fail_all = [&](const absl::Status& why) {
    for (size_t i : indices) {
      if ((*results)[i].probabilities.ok()) continue;
      (*results)[i].probabilities = absl::Status(
          why.code(),
          absl::StrCat("worker ", worker.name, ": ", why.message()));
    }
  };
  for (size_t i : indices) {
    (*results)[i].probabilities = absl::UnavailableError("not answered");
  }
  // The answer carries rows x classes floats per shard; one too big for a
  // message would fail after the worker did the work.
  const double answer_bytes =
      static_cast<double>(indices.size()) * static_cast<double>(query.rows) *
      static_cast<double>(query.classes) * sizeof(float);
  if (answer_bytes + 4096 > static_cast<double>(options_.max_message_bytes)) {
    return fail_all(absl::ResourceExhaustedError(
        "its answer would exceed max_message_bytes"));
  }
  cluster::PredictShardsRequest request = ShardsRequest(query, indices);
  request.set_rows(query.rows);
  request.set_features(features);

  // At most two rounds: ask, load what the worker lacks, ask again. Both
  // name every shard this worker serves: a worker drops the slots a
  // request does not name (that is how a purge reaches it).
  for (int round = 0; round < 2; ++round) {
    grpc::ClientContext context;
    PrepareCall(&context, deadline);
    cluster::PredictShardsResponse response;
    grpc::Status status =
        worker.stub->PredictShards(&context, request, &response);
    if (!status.ok()) return fail_all(FromGrpcStatus(status));
    if (response.shards_size() != static_cast<int>(indices.size())) {
      return fail_all(absl::InternalError("answered the wrong shards"));
    }
    if (response.classes() != query.classes) {
      return fail_all(
          absl::InternalError(absl::StrCat("answered with ", response.classes(),
                                           " classes, not ", query.classes)));
    }
    const size_t expected = static_cast<size_t>(query.rows) *
                            static_cast<size_t>(query.classes) * sizeof(float);
    std::vector<size_t> missing;
    for (size_t j = 0; j < indices.size(); ++j) {
      const cluster::ShardProbabilities& answer = response.shards(j);
      ShardResult& result = (*results)[indices[j]];
      if (answer.shard() != query.shards[indices[j]].shard) {
        return fail_all(absl::InternalError("answered the wrong shards"));
      }
      if (!answer.loaded()) {
        missing.push_back(j);
        // In the second round, keep why loading failed.
        if (round == 0) {
          result.probabilities = absl::UnavailableError(
              absl::StrCat("worker ", worker.name, " lacks the checkpoint"));
        }
        continue;
      }
      if (answer.probabilities().size() != expected) {
        result.probabilities = absl::InternalError(absl::StrCat(
            "worker ", worker.name, " answered shard ", answer.shard(),
            " with ", answer.probabilities().size(), " bytes"));
        continue;
      }
      std::vector<float> probabilities(expected / sizeof(float));
      std::memcpy(probabilities.data(), answer.probabilities().data(),
                  expected);
      result.probabilities = std::move(probabilities);
      result.worker = worker.name;
    }
    if (missing.empty() || round == 1) return;
    bool loaded_any = false;
    for (size_t j : missing) {
      const size_t i = indices[j];
      absl::StatusOr<std::string> bytes = query.checkpoint(i);
      if (!bytes.ok()) {
        (*results)[i].probabilities = bytes.status();
        continue;
      }
      cluster::LoadShardRequest load;
      load.set_model_id(query.model_id);
      load.set_config(query.config_text);
      load.set_environment(query.environment);
      load.set_shard(query.shards[i].shard);
      load.set_checkpoint_sha256(query.shards[i].checkpoint_sha256);
      load.set_checkpoint(*std::move(bytes));
      grpc::ClientContext load_context;
      PrepareCall(&load_context, deadline);
      cluster::LoadShardResponse loaded;
      grpc::Status status =
          worker.stub->LoadShard(&load_context, load, &loaded);
      if (!status.ok()) {
        absl::Status why = FromGrpcStatus(status);
        (*results)[i].probabilities = absl::Status(
            why.code(), absl::StrCat("loading onto worker ", worker.name, ": ",
                                     why.message()));
        // The worker's own trouble, not this checkpoint's: the rest of its
        // shards would fail the same way, now and on the next requests.
        if (absl::IsFailedPrecondition(why) || absl::IsResourceExhausted(why)) {
          CannotServe(server, query.model_id, why);
          return;
        }
        continue;
      }
      loaded_any = true;
      // Stays only if the next round still finds the slot empty: another
      // request replaced it in between (one naming another checkpoint).
      (*results)[i].probabilities = absl::UnavailableError(absl::StrCat(
          "worker ", worker.name, " dropped shard ", query.shards[i].shard,
          "'s checkpoint before answering: a concurrent request named "
          "another one"));
    }
    if (!loaded_any) return;
  }
}

}  // namespace oubli::coordinator
