// The coordinator's view of its workers: membership (register, heartbeat,
// death by silence, retirement of chunk holders), placement (which worker
// trains a position, holds a chunk, serves a shard) and the connection to
// each (channel, deadlines, cluster token). The engine's seams are built on
// it, one per interface of coordinator/remote_training.h:
// coordinator/worker_training.h (RemoteTrainer), worker_chunks.h
// (CheckpointReplicas) and worker_serving.h (ShardServing).
//
// A worker is alive while its heartbeats arrive within
// Options::worker_timeout; one declared dead gets no work until it
// registers again.
#ifndef OUBLI_COORDINATOR_WORKER_POOL_H_
#define OUBLI_COORDINATOR_WORKER_POOL_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/cluster_protocol.h"
#include "common/tls_files.h"
#include "coordinator/remote_training.h"

namespace grpc {
class ChannelCredentials;
class ClientContext;
class Status;
}  // namespace grpc

namespace oubli::coordinator {

class WorkerPool {
 public:
  struct Options {
    // Told to workers at registration.
    absl::Duration heartbeat_interval = absl::Seconds(1);
    // A worker silent this long is dead: it gets no more work, and a
    // position running on it moves elsewhere.
    absl::Duration worker_timeout = absl::Seconds(5);
    // Deadline of one TrainPosition call.
    absl::Duration train_deadline = absl::Hours(1);
    int64_t max_message_bytes = int64_t{64} << 20;
    // Deadline of each chunk call (put, get, delete).
    absl::Duration chunk_deadline = absl::Seconds(60);
    // Deadline of one shard-prediction exchange with a worker (loading
    // missing checkpoints included); past it the engine answers the
    // worker's shards itself.
    absl::Duration predict_deadline = absl::Seconds(5);
    // Shared secret of the cluster protocol: workers must present it to
    // register, and the coordinator presents it on every call to them.
    // Empty: no check (loopback development only).
    std::string cluster_token;
    // TLS when dialling workers (mutual, with a client certificate);
    // plaintext when not enabled. Its server_name is the name every
    // worker's certificate carries, and workers must present it to
    // register (membership_service.h).
    TlsDialFiles tls{/*ca=*/"", /*cert=*/"", /*key=*/"",
                     /*server_name=*/kWorkerCertificateName};
  };

  // A chunk holder an operator declared gone for good (RetireHolder).
  struct RetiredHolder {
    std::string name;
    absl::Time retired_at;
  };

  struct WorkerInfo {
    std::string id;
    std::string name;
    std::string address;
    std::string environment;
    bool holds_chunks = false;
    bool alive = false;
    int busy = 0;  // positions running on it now
    int64_t positions_trained = 0;
    absl::Time registered_at;
    absl::Time last_heartbeat;
  };

  // One registered worker and the stub to call it
  // (coordinator/pooled_worker.h, which includes gRPC; only the seams'
  // sources need it).
  struct Worker;

  explicit WorkerPool(Options options);
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Membership. Register always issues a new id; an earlier registration
  // from the same address is forgotten (the worker restarted).
  // InvalidArgument for an empty address or environment.
  absl::StatusOr<std::string> Register(absl::string_view address,
                                       absl::string_view environment,
                                       absl::string_view name,
                                       bool holds_chunks);
  // False when `worker_id` is unknown or was declared dead: the worker must
  // register again.
  bool Heartbeat(absl::string_view worker_id);
  absl::Duration heartbeat_interval() const {
    return options_.heartbeat_interval;
  }
  absl::Duration worker_timeout() const { return options_.worker_timeout; }
  const Options& options() const { return options_; }

  // Every registered worker, dead ones included until they register again;
  // sorted by id.
  std::vector<WorkerInfo> Workers();
  // Live workers of `environment`: how many positions may run, or shard
  // groups be served, at once.
  int Capacity(const std::string& environment);

  // Retired chunk holders are kept in `path` (one "unix_nanos name" line
  // each; absent: none). Call before registrations are served. DataLoss when
  // the file cannot be read or parsed: a forgotten retirement would let the
  // holder back in.
  absl::Status OpenRetiredHolders(const std::string& path);
  // Declares the holder named `name` gone for good, durably (fsync before
  // returning): its disk is destroyed or wiped, on the operator's word. Its
  // chunks then count as destroyed, so deletions stop waiting for it, and a
  // worker registering under this name is refused (its --data_dir could
  // still hold chunks). Undone only by editing the file while the
  // coordinator is stopped. Idempotent: retiring again returns the first
  // retirement. InvalidArgument: empty, longer than 256 bytes or with
  // control characters; FailedPrecondition: a live worker has this name;
  // Unavailable: within a worker timeout of the pool's start (workers may
  // not have registered again yet); NotFound: neither a registered worker
  // nor `named_by_a_manifest` (a chunk manifest naming it as a holder)
  // knows the name.
  absl::StatusOr<RetiredHolder> RetireHolder(
      absl::string_view name,
      const std::function<absl::StatusOr<bool>()>& named_by_a_manifest);
  std::vector<RetiredHolder> RetiredHolders();
  // Whether `name` was retired: its chunks count as destroyed.
  bool Retired(absl::string_view name);

  // Slice epochs: a worker refuses slice uploads begun under an epoch older
  // than the last one it was told (at registration or by a purge pass).
  // A new epoch for a worker about to register or a purge pass.
  int64_t NextSliceEpoch() { return ++slice_epoch_; }
  // The current epoch, read when an upload begins.
  int64_t slice_epoch() const { return slice_epoch_.load(); }

  // Within one worker timeout of the pool's start: workers of an earlier
  // coordinator may not have registered again yet, so absence proves
  // nothing.
  bool Starting() const {
    return absl::Now() < started_ + options_.worker_timeout;
  }

  // --- Connection, for the seams built on the pool.

  // Sets the deadline of a call to a worker and adds the cluster token (if
  // any).
  void PrepareCall(grpc::ClientContext* context, absl::Time deadline) const;
  // Whether `worker` is alive now.
  bool Alive(const Worker& worker);
  // Declares `worker` dead (connection failure): no more work until it
  // registers again.
  void MarkDead(const std::shared_ptr<Worker>& worker, absl::string_view why);
  // Runs `drop(w)` for every worker of `told` at once. A worker whose call
  // fails is declared dead, and the result is then Unavailable ("a worker
  // did not confirm dropping `what`").
  absl::Status ConfirmDropOnAll(
      const std::vector<std::shared_ptr<Worker>>& told, absl::string_view what,
      const std::function<grpc::Status(size_t w)>& drop);
  // Unavailable while a worker may still hold copies of `model_id`
  // (`slices`: cached slices; else serving copies) that it can no longer
  // be asked to drop: see ShardServing::Sync.
  absl::Status WaitForUnreachableCopies(const std::string& model_id,
                                        bool reopened, bool slices);

  // --- Placement of positions (worker_training).

  // A live worker for `environment` whose address is not in `excluded`,
  // chosen by ChooseTrainingWorker (coordinator/worker_choice.h) from how
  // busy each is and how many of `slice_keys` ("model/digest") it was sent,
  // marked busy; nullptr if none.
  std::shared_ptr<Worker> Acquire(const std::string& environment,
                                  const std::vector<std::string>& excluded,
                                  const std::vector<std::string>& slice_keys);
  void Release(const std::shared_ptr<Worker>& worker, bool trained);
  // `worker` accepted slice `digest` of `model_id`: a hint for Acquire, and
  // the model counts as cached there from now on (WaitForUnreachableCopies).
  void SliceSent(Worker& worker, const std::string& model_id,
                 const std::string& digest);
  // Forgets the hints of `model_id`'s slices not in `keep` (digests) on
  // every worker; returns the live workers, to be told the same.
  std::vector<std::shared_ptr<Worker>> ForgetSlicesExcept(
      const std::string& model_id,
      const absl::flat_hash_set<std::string>& keep);

  // --- Placement of chunks (worker_chunks).

  // The live workers that hold chunks.
  std::vector<std::shared_ptr<Worker>> LiveChunkHolders();
  // The live chunk holder registered under `name`, or nullptr.
  std::shared_ptr<Worker> LiveHolder(const std::string& name);

  // --- Placement of shard predictions (worker_serving).

  // Live workers of query.environment sorted by id, and the indices of
  // query.shards each serves (shard s on server s mod n).
  struct Placement {
    std::vector<std::shared_ptr<Worker>> servers;
    std::vector<std::vector<size_t>> groups;
    // Live workers of the environment skipped for CannotServe's back-off.
    std::vector<std::shared_ptr<Worker>> backed_off;
  };
  Placement PlaceShards(const ShardServing::Query& query);
  // `worker` is asked to serve shards of `model_id`: it counts as holding
  // serving copies from now on (WaitForUnreachableCopies).
  void AskedToServe(Worker& worker, const std::string& model_id);
  // Places none of `model_id`'s shards on `worker` for a while: it failed
  // to load one for a reason of its own (`why`, logged).
  void CannotServe(const std::shared_ptr<Worker>& worker,
                   const std::string& model_id, const absl::Status& why);

 private:
  bool AliveLocked(const Worker& worker, absl::Time now) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool RetiredLocked(absl::string_view name) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Whether `name` may be retired now: FailedPrecondition while a worker of
  // that name is alive, Unavailable within a worker timeout of the start.
  // Sets `*known` when a registered worker (dead or alive) has the name.
  absl::Status CheckRetirableLocked(absl::string_view name, absl::Time now,
                                    bool* known)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Options options_;
  const std::string incarnation_;  // random per pool, part of every id
  // Shared by every worker's channel (TLS: one file watcher for all).
  std::shared_ptr<grpc::ChannelCredentials> channel_credentials_;
  const absl::Time started_ = absl::Now();
  // Above every epoch an earlier coordinator handed out (one per purge
  // pass and registration, far fewer than nanoseconds).
  std::atomic<int64_t> slice_epoch_{absl::ToUnixNanos(absl::Now())};
  absl::Mutex retire_mu_ ABSL_ACQUIRED_BEFORE(mu_);  // one RetireHolder
  absl::Mutex mu_;
  int64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  absl::flat_hash_map<std::string, std::shared_ptr<Worker>> workers_
      ABSL_GUARDED_BY(mu_);
  std::string retired_path_ ABSL_GUARDED_BY(mu_);  // empty: memory only
  // By name. Written under mu_ so a registration never races a retirement.
  absl::flat_hash_map<std::string, absl::Time> retired_ ABSL_GUARDED_BY(mu_);
};

}  // namespace oubli::coordinator

#endif  // OUBLI_COORDINATOR_WORKER_POOL_H_
