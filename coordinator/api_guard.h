// Authentication, authorization and audit in front of the public API:
// every call to oubli.v1.Oubli passes here (who is calling, may they make
// this call on this model, one audit line for what changes state or is
// refused) before the unchanged OubliService handles it. The decisions are
// coordinator/access_policy.h's; this adapter only reads the call's
// credentials and routes.
#ifndef OUBLI_COORDINATOR_API_GUARD_H_
#define OUBLI_COORDINATOR_API_GUARD_H_

#include <grpcpp/grpcpp.h>

#include <atomic>

#include "absl/strings/string_view.h"
#include "coordinator/access_policy.h"
#include "coordinator/audit_log.h"
#include "coordinator/grpc_service.h"
#include "oubli/v1/oubli.grpc.pb.h"

namespace oubli::coordinator {

// Bounds on what callers may hold at once, so that many clients (or one
// hostile one) exhaust neither threads nor memory: each call beyond them
// is answered RESOURCE_EXHAUSTED at once.
struct ApiLimits {
  int max_concurrent_calls = 512;  // RPCs in flight, streams included
  int max_watch_streams = 256;     // WatchDeletion streams open
};

class ApiGuard final : public oubli::v1::Oubli::Service {
 public:
  // `policy` null: every caller may make every call (a loopback or
  // explicitly --insecure server). `audit` null: no audit log. All three
  // must outlive the guard's RPCs.
  ApiGuard(OubliService* service, AccessPolicyFiles* policy, AuditLog* audit,
           ApiLimits limits = {});

  // Each: RESOURCE_EXHAUSTED past the limits; UNAUTHENTICATED when a
  // policy is in force and the call presents no credential or an unknown
  // token; PERMISSION_DENIED naming the role (and model) it lacks;
  // otherwise what OubliService answers.
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
  // Lists only the models the caller may read.
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
  struct Call;
  // Authenticates and authorizes `rpc` on `model_id`, runs `handle`, then
  // audits. `handle` may learn the model later (IngestSamples) through
  // Call::model_id.
  template <typename Handle>
  grpc::Status Guard(grpc::ServerContext* context, absl::string_view rpc,
                     absl::string_view model_id, Handle&& handle);
  grpc::Status CheckLateModel(const std::string& model_id);
  void Audit(const Call& call, const grpc::Status& status);

  // The call this thread is handling (the sync server runs each handler
  // on one thread), for IngestSamples' late model check.
  static thread_local Call* current_call_;

  OubliService* const service_;
  AccessPolicyFiles* const policy_;
  AuditLog* const audit_;
  const ApiLimits limits_;
  std::atomic<int> calls_in_flight_{0};
  std::atomic<int> watch_streams_{0};
};

}  // namespace oubli::coordinator

#endif  // OUBLI_COORDINATOR_API_GUARD_H_
