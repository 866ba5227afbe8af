// The coordinator's view of its workers: membership (register, heartbeat,
// death by silence) and the RemoteTrainer that sends S3T positions to them
// over the cluster protocol (proto/oubli/cluster/cluster.proto).
//
// A worker is alive while its heartbeats arrive within
// Options::worker_timeout. A position goes to the least busy live worker of
// the right numeric environment; if that worker dies (connection lost,
// heartbeats stop) or fails transiently, the position moves to another,
// and with none left TrainPosition says Unavailable so the engine trains it
// itself. Training is deterministic, so where a position ran never changes
// its bits.
#ifndef OUBLI_COORDINATOR_WORKER_POOL_H_
#define OUBLI_COORDINATOR_WORKER_POOL_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/cluster_protocol.h"
#include "common/tls_files.h"
#include "coordinator/remote_training.h"
#include "storage/erasure_code.h"

namespace grpc {
class ChannelCredentials;
class ClientContext;
class Status;
}  // namespace grpc

namespace oubli::coordinator {

class WorkerPool final : public RemoteTrainer,
                         public CheckpointReplicas,
                         public ShardServing {
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

  explicit WorkerPool(Options options);
  ~WorkerPool() override;
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

  // Every registered worker, dead ones included until they register again;
  // sorted by id.
  std::vector<WorkerInfo> Workers();

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

  // RemoteTrainer.
  int Capacity(const std::string& environment) override;
  absl::StatusOr<RemoteResult> TrainPosition(
      const RemotePosition& position,
      const std::function<bool()>& cancelled) override;
  absl::Status DropStaleSlices(const std::string& model_id,
                               const absl::flat_hash_set<std::string>& keep,
                               bool reopened) override;
  // A new slice epoch for a worker about to register: it refuses uploads
  // begun before (they may hold data purged while it was counted dead).
  int64_t NextSliceEpoch() { return ++slice_epoch_; }
  // Slice bytes workers have accepted so far.
  int64_t slice_bytes_sent() const { return slice_bytes_sent_.load(); }

  // CheckpointReplicas. Chunk holders are named by worker name, so a worker
  // that restarts with the same --name and --data_dir serves its chunks
  // again.
  absl::Status Protect(
      const std::string& key, absl::string_view bytes,
      const ErasureCodeConfig& code,
      const std::function<absl::Status(const std::string&)>& persist) override;
  bool CanProtect(const ErasureCodeConfig& code) override;
  absl::StatusOr<std::string> Restore(const std::string& key,
                                      const std::string& manifest) override;
  absl::StatusOr<int> Repair(
      const std::string& key, const std::string& manifest,
      const std::function<absl::Status(const std::string&)>& persist) override;
  absl::Status Forget(const std::string& key,
                      const std::string& manifest) override;

  // ShardServing.
  int ServingCapacity(const std::string& environment) override {
    return Capacity(environment);
  }
  std::vector<ShardResult> Predict(const Query& query) override;
  absl::Status Sync(const Query& query) override;

 private:
  struct Worker;
  class AttemptWatch;  // cancels one training attempt's calls

  bool AliveLocked(const Worker& worker, absl::Time now) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The least busy live worker for `environment` whose address is not in
  // `excluded` (of those, the one sent most of `slice_keys`, "model/digest"),
  // marked busy; nullptr if none.
  std::shared_ptr<Worker> Acquire(const std::string& environment,
                                  const std::vector<std::string>& excluded,
                                  const std::vector<std::string>& slice_keys);
  void Release(const std::shared_ptr<Worker>& worker, bool trained);
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
  // Streams `slice` into `worker`'s slice cache under the current epoch;
  // `watch` cancels it with the attempt.
  grpc::Status UploadSlice(Worker& worker, const std::string& model_id,
                           const storage::EncodedSlice& slice,
                           AttemptWatch& watch);
  // Sets the deadline of a call to a worker and adds the cluster token (if
  // any).
  void PrepareCall(grpc::ClientContext* context, absl::Time deadline) const;
  // Fetches chunks of `key` from live holders, skipping `skip` indices,
  // until `needed` pass their CRC. Fills `fetched`/`views` (k+m entries);
  // returns how many are good and appends what failed to `problems`.
  int FetchChunks(const std::string& key,
                  const std::vector<std::string>& holders,
                  const std::vector<uint32_t>& crcs, uint64_t chunk_size,
                  int needed, const std::vector<int>& skip, bool wait_at_start,
                  std::vector<std::string>* fetched,
                  std::vector<std::optional<storage::ChunkView>>* views,
                  std::vector<std::string>* problems);
  // Stores `bytes` (CRC32C `crc32c`) as chunk `index` of `key`.
  grpc::Status PutChunk(const Worker& holder, const std::string& key, int index,
                        absl::string_view bytes, uint32_t crc32c);
  // Live workers of query.environment sorted by id, and the indices of
  // query.shards each serves (shard s on server s mod n).
  struct Placement {
    std::vector<std::shared_ptr<Worker>> servers;
    std::vector<std::vector<size_t>> groups;
    // Live workers of the environment skipped for CannotServe's back-off.
    std::vector<std::shared_ptr<Worker>> backed_off;
  };
  Placement PlaceShards(const Query& query);
  // Answers query.shards[indices] on `worker`, loading the checkpoints it
  // lacks; fills those entries of `results`.
  void PredictOn(const std::shared_ptr<Worker>& worker, const Query& query,
                 const std::string& features,
                 const std::vector<size_t>& indices,
                 std::vector<ShardResult>* results);
  // Places none of `model_id`'s shards on `worker` for a while: it failed
  // to load one for a reason of its own (`why`, logged).
  void CannotServe(const std::shared_ptr<Worker>& worker,
                   const std::string& model_id, const absl::Status& why);
  // The live chunk holder registered under `name`, or nullptr.
  std::shared_ptr<Worker> LiveHolder(const std::string& name);

  bool RetiredLocked(absl::string_view name) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool Retired(absl::string_view name);
  // Whether `name` may be retired now: FailedPrecondition while a worker of
  // that name is alive, Unavailable within a worker timeout of the start.
  // Sets `*known` when a registered worker (dead or alive) has the name.
  absl::Status CheckRetirableLocked(absl::string_view name, absl::Time now,
                                    bool* known)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The live workers that hold chunks.
  std::vector<std::shared_ptr<Worker>> LiveChunkHolders();

  const Options options_;
  const std::string incarnation_;  // random per pool, part of every id
  // Shared by every worker's channel (TLS: one file watcher for all).
  std::shared_ptr<grpc::ChannelCredentials> channel_credentials_;
  const absl::Time started_ = absl::Now();
  // Above every epoch an earlier coordinator handed out (one per purge
  // pass and registration, far fewer than nanoseconds).
  std::atomic<int64_t> slice_epoch_{absl::ToUnixNanos(absl::Now())};
  std::atomic<int64_t> slice_bytes_sent_{0};
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
