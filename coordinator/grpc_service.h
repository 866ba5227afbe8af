// The gRPC adapter of the public API (oubli.v1.Oubli) and the server that
// hosts it. The adapter only validates wire-level input, converts proto <->
// domain types and absl::Status -> grpc::Status (same code, same message);
// all behaviour lives in ModelRegistry / Engine.
#ifndef OUBLI_COORDINATOR_GRPC_SERVICE_H_
#define OUBLI_COORDINATOR_GRPC_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/config.h"
#include "common/grpc_status.h"
#include "common/signing_key.h"
#include "common/thread_priority.h"
#include "common/tls_files.h"
#include "coordinator/api_config.h"
#include "coordinator/encoded_slice_cache.h"
#include "coordinator/ingest_budget.h"
#include "coordinator/membership_service.h"
#include "coordinator/model_registry.h"
#include "coordinator/prometheus_metrics.h"
#include "coordinator/request_validation.h"
#include "coordinator/worker_pool.h"
#include "oubli/v1/oubli.grpc.pb.h"

namespace oubli::coordinator {

class AccessPolicyFiles;
class ApiGuard;
class AuditLog;

// absl::Status -> grpc::Status: common/grpc_status.h.
using ::oubli::ToGrpcStatus;

class OubliService final : public oubli::v1::Oubli::Service {
 public:
  // Watchers wake at least this often to notice cancellation.
  static constexpr absl::Duration kWatchTick = absl::Milliseconds(200);

  OubliService() = default;

  // Until set, every RPC answers UNAVAILABLE: the server starts listening
  // (and reporting NOT_SERVING) before the registry has reopened its models.
  // `registry` must outlive the service's RPCs.
  void SetRegistry(ModelRegistry* registry) { registry_.store(registry); }
  // ModelRegistry::RetryPurgesNow, once the registry is open.
  void RetryPurgesNow();
  // What RetireWorker callers must present (the cluster token: retiring
  // stands in for destroying data); empty: no check. Set before serving.
  void SetAdminToken(std::string token) { admin_token_ = std::move(token); }
  // An IngestSamples stream carrying more samples than this is ended with
  // RESOURCE_EXHAUSTED (what it stored is kept). Set before serving.
  void SetMaxIngestStreamSamples(int64_t samples) {
    max_ingest_stream_samples_ = samples;
  }
  // Bytes of received samples all IngestSamples streams work on at once
  // (coordinator/ingest_budget.h); set before serving.
  void SetIngestMemoryBytes(int64_t bytes) {
    ingest_budget_ = std::make_unique<IngestBudget>(bytes);
  }
  // Asked with the model an IngestSamples stream names, once its first
  // message arrives; a non-OK answer ends the stream with it (ApiGuard's
  // per-model authorization). Set before serving.
  void SetIngestModelCheck(
      std::function<grpc::Status(const std::string& model_id)> check) {
    ingest_model_check_ = std::move(check);
  }
  // The cluster's workers, reported by GetModel; set before serving.
  void SetWorkers(std::shared_ptr<WorkerPool> workers) {
    workers_ = std::move(workers);
  }

  grpc::Status CreateModel(grpc::ServerContext* context,
                           const oubli::v1::CreateModelRequest* request,
                           oubli::v1::Model* response) override;
  grpc::Status IngestSamples(
      grpc::ServerContext* context,
      grpc::ServerReader<oubli::v1::IngestSamplesRequest>* reader,
      oubli::v1::IngestSamplesResponse* response) override;
  grpc::Status Train(grpc::ServerContext* context,
                     const oubli::v1::TrainRequest* request,
                     oubli::v1::Job* response) override;
  grpc::Status GetJob(grpc::ServerContext* context,
                      const oubli::v1::GetJobRequest* request,
                      oubli::v1::Job* response) override;
  grpc::Status DeleteSamples(grpc::ServerContext* context,
                             const oubli::v1::DeleteSamplesRequest* request,
                             oubli::v1::DeletionReceipt* response) override;
  grpc::Status ForgetOwner(grpc::ServerContext* context,
                           const oubli::v1::ForgetOwnerRequest* request,
                           oubli::v1::DeletionReceipt* response) override;
  grpc::Status GetDeletion(grpc::ServerContext* context,
                           const oubli::v1::GetDeletionRequest* request,
                           oubli::v1::DeletionReceipt* response) override;
  grpc::Status WatchDeletion(
      grpc::ServerContext* context,
      const oubli::v1::WatchDeletionRequest* request,
      grpc::ServerWriter<oubli::v1::DeletionReceipt>* writer) override;
  grpc::Status ListDeletions(grpc::ServerContext* context,
                             const oubli::v1::ListDeletionsRequest* request,
                             oubli::v1::ListDeletionsResponse* response) override;
  grpc::Status Predict(grpc::ServerContext* context,
                       const oubli::v1::PredictRequest* request,
                       oubli::v1::PredictResponse* response) override;
  grpc::Status Score(grpc::ServerContext* context,
                     const oubli::v1::ScoreRequest* request,
                     oubli::v1::ScoreResponse* response) override;
  grpc::Status Generate(grpc::ServerContext* context,
                        const oubli::v1::GenerateRequest* request,
                        oubli::v1::GenerateResponse* response) override;
  grpc::Status GetModel(grpc::ServerContext* context,
                        const oubli::v1::GetModelRequest* request,
                        oubli::v1::Model* response) override;
  grpc::Status ListModels(grpc::ServerContext* context,
                          const oubli::v1::ListModelsRequest* request,
                          oubli::v1::ListModelsResponse* response) override;
  grpc::Status Verify(grpc::ServerContext* context,
                      const oubli::v1::VerifyRequest* request,
                      oubli::v1::VerifyResponse* response) override;
  grpc::Status RetireWorker(grpc::ServerContext* context,
                            const oubli::v1::RetireWorkerRequest* request,
                            oubli::v1::RetiredWorker* response) override;
  grpc::Status ExportLedger(
      grpc::ServerContext* context,
      const oubli::v1::ExportLedgerRequest* request,
      grpc::ServerWriter<oubli::v1::ExportLedgerResponse>* writer) override;
  grpc::Status DeleteModel(grpc::ServerContext* context,
                           const oubli::v1::DeleteModelRequest* request,
                           oubli::v1::ModelDeletion* response) override;

 private:
  // The registry, or UNAVAILABLE while it is still opening.
  absl::StatusOr<ModelRegistry*> registry() const;
  std::atomic<ModelRegistry*> registry_{nullptr};
  std::shared_ptr<WorkerPool> workers_;
  std::string admin_token_;
  std::function<grpc::Status(const std::string&)> ingest_model_check_;
  int64_t max_ingest_stream_samples_ = int64_t{10'000'000};
  std::unique_ptr<IngestBudget> ingest_budget_ =
      std::make_unique<IngestBudget>(IngestBudget::kDefaultBytes);
  std::vector<WorkerPool::WorkerInfo> WorkerList() {
    return workers_ != nullptr ? workers_->Workers()
                               : std::vector<WorkerPool::WorkerInfo>();
  }
};

// oubli-coordinator minus flag parsing and signals: listens, reports health,
// opens the registry, serves. Tests run it in-process.
class CoordinatorServer {
 public:
  struct Options {
    std::string listen_address = "127.0.0.1:50051";  // port 0: pick a free one
    std::string data_dir;
    int64_t max_message_bytes = int64_t{64} << 20;  // both directions
    int training_threads = 1;
    bool background_retrain = true;
    // Training, purge and RocksDB compaction threads run at it, so
    // requests get the CPU first (Engine::Options); nice_increment 0..19.
    BackgroundPriority background_priority = {};
    // HOST:PORT serving Prometheus metrics on /metrics (port 0: pick a free
    // one); empty: no metrics at all. oubli-coordinator defaults it to
    // 127.0.0.1:9464.
    std::string metrics_listen_address;
    // HTTPS for the metrics endpoint; plaintext when not enabled.
    TlsServerFiles metrics_tls;
    // Workers (oubli-worker) register on the same port and train positions
    // while alive; with none, the coordinator trains them itself.
    WorkerPool::Options workers;
    // Predict's shards are answered by live workers (falling back to the
    // coordinator per shard); false: always by the coordinator.
    bool predict_on_workers = true;
    // TLS of the port (public API and cluster protocol). With it, workers
    // must present a client certificate naming workers.tls.server_name,
    // so registering needs a tls.client_ca.
    TlsServerFiles tls;
    // The access policy (proto/oubli/config/access_policy.proto) and the
    // token file naming its callers; empty policy_file: every caller may
    // make every call (main.cc allows that on loopback or with --insecure
    // only).
    std::string policy_file;
    std::string token_file;
    // The Ed25519 key signing every model's deletion ledger (PKCS#8 PEM),
    // created with its public key (PATH.pub) when missing; empty:
    // DATA_DIR/ledger-key.pem.
    std::string ledger_key_file;
    // What callers may hold at once (coordinator/api_guard.h), the
    // samples one IngestSamples stream may carry, and the memory gRPC may
    // use for buffers (its resource quota).
    int max_concurrent_calls = 512;
    int max_watch_streams = 256;
    int64_t max_ingest_stream_samples = int64_t{10'000'000};
    int64_t grpc_memory_bytes = int64_t{1} << 30;
    // Bytes of received samples being ingested at once, over every stream
    // (coordinator/ingest_budget.h), and of slice bytes kept for training
    // over every model (coordinator/encoded_slice_cache.h).
    int64_t ingest_memory_bytes = IngestBudget::kDefaultBytes;
    int64_t slice_cache_bytes = EncodedSliceCache::kDefaultBytes;
    // The audit log (coordinator/audit_log.h); empty path: none.
    std::string audit_log;
    int64_t audit_log_max_bytes = int64_t{64} << 20;
    int audit_log_keep_files = 5;
  };

  // Returns once the server listens and every model is open (health
  // SERVING). On failure nothing keeps running. InvalidArgument: no
  // data_dir, a background nice_increment outside 0..19, a bad listen
  // address; other codes: TLS files, ports, or a model that cannot be
  // opened.
  static absl::StatusOr<std::unique_ptr<CoordinatorServer>> Start(
      const Options& options);
  // Shuts down (see Shutdown) if still running.
  ~CoordinatorServer();

  // "host:port" actually bound (the chosen port when asked for port 0).
  const std::string& address() const { return address_; }
  int port() const { return port_; }
  // "host:port" of the metrics endpoint actually bound; empty when off.
  const std::string& metrics_address() const { return metrics_address_; }
  int metrics_port() const { return metrics_port_; }

  // Stops accepting RPCs, cancels those still running after `grace`
  // (watch streams end), then waits for training jobs and closes models.
  void Shutdown(absl::Duration grace = absl::Seconds(5));
  // Blocks until Shutdown() has been called (from another thread).
  void Wait();

 private:
  CoordinatorServer() = default;

  OubliService service_;
  std::unique_ptr<AccessPolicyFiles> policy_;  // null: no policy
  std::unique_ptr<AuditLog> audit_;            // null: no audit log
  std::unique_ptr<SigningKey> ledger_key_;
  std::unique_ptr<ApiGuard> guard_;            // serves service_
  std::shared_ptr<WorkerPool> workers_;
  std::unique_ptr<MembershipService> membership_;
  std::shared_ptr<PrometheusMetrics> metrics_;  // null when metrics are off
  std::unique_ptr<MetricsServer> metrics_server_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<ModelRegistry> registry_;
  std::string address_;
  int port_ = 0;
  std::string metrics_address_;
  int metrics_port_ = 0;
  bool shut_down_ = false;
};

}  // namespace oubli::coordinator

#endif  // OUBLI_COORDINATOR_GRPC_SERVICE_H_
