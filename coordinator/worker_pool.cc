#include "coordinator/worker_pool.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/notification.h"
#include "oubli/cluster/cluster.grpc.pb.h"

namespace oubli::coordinator {

struct WorkerPool::Worker {
  // Immutable after Register.
  std::string id;
  std::string name;
  std::string address;
  std::string environment;
  absl::Time registered_at;
  std::unique_ptr<cluster::Worker::Stub> stub;
  // Guarded by the pool's mu_.
  absl::Time last_heartbeat;
  bool dead = false;  // declared dead; only a new registration revives
  int busy = 0;
  int64_t positions_trained = 0;
};

namespace {

// How often a running call checks for cancellation and worker death.
constexpr absl::Duration kWatchPeriod = absl::Milliseconds(20);

// Failures that say nothing about the position itself: try elsewhere.
bool IsWorkerFailure(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
    case grpc::StatusCode::CANCELLED:
    case grpc::StatusCode::UNKNOWN:
    case grpc::StatusCode::INTERNAL:
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
    case grpc::StatusCode::ABORTED:
    case grpc::StatusCode::UNIMPLEMENTED:
      return true;
    default:
      return false;
  }
}

absl::Status FromGrpc(const grpc::Status& status) {
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      status.error_message());
}

}  // namespace

WorkerPool::WorkerPool(Options options) : options_(std::move(options)) {}

WorkerPool::~WorkerPool() = default;

absl::StatusOr<std::string> WorkerPool::Register(absl::string_view address,
                                                 absl::string_view environment,
                                                 absl::string_view name) {
  if (address.empty()) {
    return absl::InvalidArgumentError("worker address is empty");
  }
  if (environment.empty()) {
    return absl::InvalidArgumentError("worker environment is empty");
  }
  auto worker = std::make_shared<Worker>();
  worker->address = std::string(address);
  worker->environment = std::string(environment);
  worker->name = name.empty() ? worker->address : std::string(name);
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(static_cast<int>(options_.max_message_bytes));
  args.SetMaxSendMessageSize(static_cast<int>(options_.max_message_bytes));
  worker->stub = cluster::Worker::NewStub(grpc::CreateCustomChannel(
      worker->address, grpc::InsecureChannelCredentials(), args));
  const absl::Time now = absl::Now();
  worker->registered_at = now;
  worker->last_heartbeat = now;

  absl::MutexLock lock(&mu_);
  // A worker restarted at the same address replaces its old entry.
  for (auto it = workers_.begin(); it != workers_.end();) {
    auto next = std::next(it);
    if (it->second->address == worker->address) workers_.erase(it);
    it = next;
  }
  worker->id = absl::StrFormat("w%04d", next_id_++);
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
    info.alive = AliveLocked(*worker, now);
    info.busy = worker->busy;
    info.positions_trained = worker->positions_trained;
    info.registered_at = worker->registered_at;
    info.last_heartbeat = worker->last_heartbeat;
  }
  std::sort(out.begin(), out.end(),
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
    const std::string& environment, const std::vector<std::string>& excluded) {
  absl::MutexLock lock(&mu_);
  const absl::Time now = absl::Now();
  std::shared_ptr<Worker> best;
  for (const auto& [id, worker] : workers_) {
    if (worker->environment != environment || !AliveLocked(*worker, now) ||
        std::find(excluded.begin(), excluded.end(), id) != excluded.end()) {
      continue;
    }
    if (best == nullptr || worker->busy < best->busy ||
        (worker->busy == best->busy && worker->id < best->id)) {
      best = worker;
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

absl::StatusOr<RemoteResult> WorkerPool::TrainPosition(
    const RemotePosition& position, const std::function<bool()>& cancelled) {
  cluster::TrainPositionRequest request;
  request.set_config(position.config_text);
  request.set_environment(position.environment);
  request.set_shard(position.shard);
  for (int slice : position.prefix) request.add_prefix(slice);
  request.set_parent(position.parent);
  request.set_rows(position.rows);
  request.set_features(position.features);
  request.set_labels(position.labels);

  // Workers that cannot take this position (other than by dying).
  std::vector<std::string> excluded;
  while (true) {
    if (cancelled && cancelled()) return absl::CancelledError("cancelled");
    std::shared_ptr<Worker> worker =
        Acquire(position.environment, excluded);
    if (worker == nullptr) {
      return absl::UnavailableError(
          "no live worker can train this position");
    }
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() +
                                            options_.train_deadline));
    cluster::TrainPositionResponse response;
    // The call blocks; a watcher cancels it when the engine no longer wants
    // the result or the worker stops heartbeating.
    absl::Notification done;
    std::atomic<bool> we_cancelled{false}, worker_lost{false};
    std::thread watcher([&] {
      while (!done.WaitForNotificationWithTimeout(kWatchPeriod)) {
        if (cancelled && cancelled()) {
          we_cancelled = true;
          context.TryCancel();
          return;
        }
        bool alive;
        {
          absl::MutexLock lock(&mu_);
          alive = AliveLocked(*worker, absl::Now());
        }
        if (!alive) {
          worker_lost = true;
          context.TryCancel();
          return;
        }
      }
    });
    const grpc::Status status =
        worker->stub->TrainPosition(&context, request, &response);
    done.Notify();
    watcher.join();
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
    if (worker_lost) {
      MarkDead(worker, "no heartbeat while training");
      continue;
    }
    if (status.error_code() == grpc::StatusCode::FAILED_PRECONDITION) {
      // E.g. this worker cannot read the base weights file: others may.
      std::fprintf(stderr, "oubli: worker %s cannot train shard %d: %s\n",
                   worker->id.c_str(), position.shard,
                   status.error_message().c_str());
      excluded.push_back(worker->id);
      continue;
    }
    if (IsWorkerFailure(status.error_code())) {
      MarkDead(worker, absl::StrCat("TrainPosition: ", status.error_message()));
      continue;
    }
    // The position's own problem (InvalidArgument: corrupt parent).
    return FromGrpc(status);
  }
}

}  // namespace oubli::coordinator
