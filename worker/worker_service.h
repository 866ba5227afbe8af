// oubli-worker's gRPC side: the oubli.cluster.Worker adapter over a
// PositionWorker and a ShardServer, and the membership client that registers
// with the coordinator and heartbeats.
#ifndef OUBLI_WORKER_WORKER_SERVICE_H_
#define OUBLI_WORKER_WORKER_SERVICE_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/cluster_protocol.h"
#include "common/grpc_security.h"
#include "common/metrics_server.h"
#include "common/thread_priority.h"
#include "oubli/cluster/cluster.grpc.pb.h"
#include "storage/chunk_store.h"
#include "worker/position_worker.h"
#include "worker/shard_server.h"
#include "worker/slice_cache.h"
#include "worker/worker_metrics.h"

namespace oubli::worker {

class WorkerService final : public cluster::Worker::Service {
 public:
  // `chunks`: where erasure-coded chunks live; nullptr: this worker holds
  // none (the chunk RPCs answer FAILED_PRECONDITION).
  // `coordinator`: what calls must present (common/grpc_security.h).
  // `metrics`: may be null; must outlive the service.
  // `slices`: the training slice cache.
  // `background_priority`: of the threads that train positions
  // (common/thread_priority.h), so shard predictions on this worker get a
  // core first.
  WorkerService(std::unique_ptr<storage::ChunkStore> chunks,
                ClusterPeer coordinator, WorkerMetrics* metrics,
                std::unique_ptr<SliceCache> slices,
                BackgroundPriority background_priority = {})
      : background_priority_(background_priority),
        bases_(NewBaseWeightsCache()),
        worker_(/*cached_trainers=*/4, bases_),
        shards_(bases_),
        slices_(std::move(slices)),
        chunks_(std::move(chunks)),
        coordinator_(std::move(coordinator)),
        metrics_(metrics) {}
  bool holds_chunks() const { return chunks_ != nullptr; }
  // Forgets every checkpoint held for serving and every cached slice, in
  // memory and on disk: what a worker the coordinator counts dead must not
  // hold. An error when a slice file could not be shredded.
  absl::Status DropCopies();
  // Refuses slice uploads begun before `epoch` (the coordinator's at a new
  // registration) and drops the ones that slipped in.
  absl::Status RaiseSliceEpoch(int64_t epoch);
  // Bytes of slices received into the cache so far.
  int64_t slice_bytes_received() const { return slice_bytes_received_.load(); }

  grpc::Status TrainPosition(grpc::ServerContext* context,
                             const cluster::TrainPositionRequest* request,
                             cluster::TrainPositionResponse* response) override;
  grpc::Status PutSlice(grpc::ServerContext* context,
                        grpc::ServerReader<cluster::SlicePiece>* reader,
                        cluster::PutSliceResponse* response) override;
  grpc::Status DropSlices(grpc::ServerContext* context,
                          const cluster::DropSlicesRequest* request,
                          cluster::DropSlicesResponse* response) override;
  grpc::Status PutChunk(grpc::ServerContext* context,
                        const cluster::PutChunkRequest* request,
                        cluster::PutChunkResponse* response) override;
  grpc::Status GetChunk(
      grpc::ServerContext* context, const cluster::GetChunkRequest* request,
      grpc::ServerWriter<cluster::ChunkPiece>* writer) override;
  grpc::Status DeleteChunks(grpc::ServerContext* context,
                            const cluster::DeleteChunksRequest* request,
                            cluster::DeleteChunksResponse* response) override;
  grpc::Status ListChunks(grpc::ServerContext* context,
                          const cluster::ListChunksRequest* request,
                          cluster::ListChunksResponse* response) override;
  grpc::Status PredictShards(grpc::ServerContext* context,
                             const cluster::PredictShardsRequest* request,
                             cluster::PredictShardsResponse* response) override;
  grpc::Status LoadShard(grpc::ServerContext* context,
                         const cluster::LoadShardRequest* request,
                         cluster::LoadShardResponse* response) override;

 private:
  const BackgroundPriority background_priority_;
  // One copy of each model's base weights for training and serving.
  const std::shared_ptr<ml::BaseWeightsCache> bases_;
  PositionWorker worker_;
  ShardServer shards_;
  void ReportSliceCache();

  const std::unique_ptr<SliceCache> slices_;
  std::atomic<int64_t> slice_bytes_received_{0};
  const std::unique_ptr<storage::ChunkStore> chunks_;
  const ClusterPeer coordinator_;
  WorkerMetrics* const metrics_;
};

// A worker process: serves oubli.cluster.Worker (plus health and
// reflection) and keeps itself registered with the coordinator.
class WorkerServer {
 public:
  struct Options {
    std::string coordinator_address;  // HOST:PORT, required
    std::string listen_address = "127.0.0.1:0";
    // HOST:PORT the coordinator dials; empty: the bound listen address
    // (which must then not be a wildcard).
    std::string advertise_address;
    std::string name;  // for logs; empty: the advertised address
    // Erasure-coded checkpoint chunks and slice files are kept here;
    // empty: none.
    std::string data_dir;
    // Shared secret of the cluster protocol (both directions); empty: none.
    std::string cluster_token;
    // TLS of the Worker service (with a client CA: mutual TLS) and of the
    // channel to the coordinator; plaintext when not enabled.
    TlsServerFiles tls_listen;
    TlsDialFiles tls_dial;
    // With TLS, the name the coordinator's certificate carries: required of
    // callers of the Worker service (and, unless tls_dial.server_name says
    // otherwise, checked when dialling the coordinator).
    std::string coordinator_certificate_name = kCoordinatorCertificateName;
    // HOST:PORT serving Prometheus metrics on /metrics (port 0: any);
    // empty: none.
    std::string metrics_listen_address;
    // HTTPS for the metrics endpoint; plaintext when not enabled.
    TlsServerFiles metrics_tls;
    int64_t max_message_bytes = int64_t{64} << 20;
    // Bound of the in-memory training slice cache.
    int64_t slice_cache_bytes = int64_t{1} << 30;
    // Bound of the slice files in data_dir/slices (0: none; ignored
    // without a data_dir). Files a previous run left there are shredded
    // at Start either way.
    int64_t slice_disk_cache_bytes = int64_t{4} << 30;
    // Called (on the membership thread) after each successful Register.
    std::function<void(const std::string& worker_id)> on_registered;
    // Deadline of Register and Heartbeat calls.
    absl::Duration rpc_timeout = absl::Seconds(5);
    // The threads that train positions run at it, so shard predictions
    // get a core first; nice_increment 0..19 (InvalidArgument at Start
    // otherwise). The default trains at the process's priority.
    BackgroundPriority background_priority = {};
  };

  // Listens, then registers in the background (retrying while the
  // coordinator is away); health is NOT_SERVING until registered.
  // InvalidArgument: no coordinator address, a background nice_increment
  // outside 0..19, or a bad listen address; other codes: TLS files, the
  // data dir or the port could not be used.
  static absl::StatusOr<std::unique_ptr<WorkerServer>> Start(
      const Options& options);
  ~WorkerServer();  // Shutdown(absl::Seconds(5)) if not done

  const std::string& address() const { return address_; }
  // "host:port" of the metrics endpoint; empty when off.
  std::string metrics_address() const {
    return metrics_server_ != nullptr ? metrics_server_->address() : "";
  }
  // Bytes of training slices this worker received so far.
  int64_t slice_bytes_received() const {
    return service_->slice_bytes_received();
  }
  // Blocks until registered at least once or `timeout` passes.
  bool WaitRegistered(absl::Duration timeout);
  // Stops heartbeating and serving; running calls get `grace`.
  void Shutdown(absl::Duration grace);

 private:
  WorkerServer() = default;
  void MembershipLoop();

  Options options_;
  std::string address_;                     // bound
  std::string advertise_;                   // told to the coordinator
  std::unique_ptr<WorkerMetrics> metrics_;  // before service_: it outlives it
  std::unique_ptr<MetricsServer> metrics_server_;
  std::unique_ptr<WorkerService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<cluster::Membership::Stub> membership_;
  std::thread membership_thread_;

  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool registered_ ABSL_GUARDED_BY(mu_) = false;
  bool shut_down_ = false;
};

}  // namespace oubli::worker

#endif  // OUBLI_WORKER_WORKER_SERVICE_H_
