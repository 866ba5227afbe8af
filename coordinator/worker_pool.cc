#include "coordinator/worker_pool.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <random>
#include <thread>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "common/cluster_protocol.h"
#include "common/file_util.h"
#include "common/grpc_security.h"
#include "common/status_macros.h"
#include "coordinator/pooled_worker.h"
#include "coordinator/worker_choice.h"

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

namespace {

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
  std::vector<std::shared_ptr<Worker>> eligible;
  std::vector<WorkerCandidate> candidates;
  for (const auto& [id, worker] : workers_) {
    if (worker->environment != environment || !AliveLocked(*worker, now) ||
        std::find(excluded.begin(), excluded.end(), worker->address) !=
            excluded.end()) {
      continue;
    }
    int cached = 0;
    for (const std::string& key : slice_keys) {
      cached += worker->sent_slices.contains(key) ? 1 : 0;
    }
    eligible.push_back(worker);
    candidates.push_back({worker->id, worker->busy, cached});
  }
  const std::optional<size_t> chosen = ChooseTrainingWorker(candidates);
  if (!chosen.has_value()) return nullptr;
  ++eligible[*chosen]->busy;
  return eligible[*chosen];
}

void WorkerPool::Release(const std::shared_ptr<Worker>& worker, bool trained) {
  absl::MutexLock lock(&mu_);
  --worker->busy;
  if (trained) ++worker->positions_trained;
}

bool WorkerPool::Alive(const Worker& worker) {
  absl::MutexLock lock(&mu_);
  return AliveLocked(worker, absl::Now());
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

void WorkerPool::SliceSent(Worker& worker, const std::string& model_id,
                           const std::string& digest) {
  absl::MutexLock lock(&mu_);
  // A hint only: bounded however long the model lives.
  if (worker.sent_slices.size() >= kMaxSliceHints) {
    worker.sent_slices.clear();
  }
  worker.sent_slices.insert(absl::StrCat(model_id, "/", digest));
  worker.models_sent.insert(model_id);
}

std::vector<std::shared_ptr<WorkerPool::Worker>> WorkerPool::ForgetSlicesExcept(
    const std::string& model_id, const absl::flat_hash_set<std::string>& keep) {
  std::vector<std::shared_ptr<Worker>> live;
  absl::MutexLock lock(&mu_);
  const absl::Time now = absl::Now();
  const std::string prefix = absl::StrCat(model_id, "/");
  for (const auto& [id, worker] : workers_) {
    if (AliveLocked(*worker, now)) live.push_back(worker);
    absl::erase_if(worker->sent_slices, [&](const std::string& key) {
      return absl::StartsWith(key, prefix) &&
             !keep.contains(key.substr(prefix.size()));
    });
  }
  return live;
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

WorkerPool::Placement WorkerPool::PlaceShards(
    const ShardServing::Query& query) {
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

void WorkerPool::AskedToServe(Worker& worker, const std::string& model_id) {
  absl::MutexLock lock(&mu_);
  worker.models_served.insert(model_id);
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

}  // namespace oubli::coordinator
