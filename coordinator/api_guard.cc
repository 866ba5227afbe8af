#include "coordinator/api_guard.h"

#include <memory>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/config.h"
#include "common/grpc_security.h"
#include "common/grpc_status.h"

namespace oubli::coordinator {
namespace {

namespace v1 = ::oubli::v1;

// Takes one of `limit` slots of `*count` for its lifetime, if one is free.
class Slot {
 public:
  Slot(std::atomic<int>* count, int limit) : count_(count) {
    taken_ = count_->fetch_add(1) < limit;
    if (!taken_) count_->fetch_sub(1);
  }
  ~Slot() {
    if (taken_) count_->fetch_sub(1);
  }
  bool taken() const { return taken_; }

 private:
  std::atomic<int>* const count_;
  bool taken_ = false;
};

// "MODEL_ID/del-N" -> MODEL_ID; "" when the id has no '/', which
// OubliService then refuses.
std::string ModelOfDeletion(const std::string& deletion_id) {
  const size_t slash = deletion_id.find('/');
  return slash == std::string::npos ? "" : deletion_id.substr(0, slash);
}

}  // namespace

// One call in flight on this thread. The synchronous server runs a handler
// on one thread from start to end, so IngestSamples' late model check can
// find its call here.
struct ApiGuard::Call {
  const RpcAccess* access = nullptr;
  std::shared_ptr<const AccessPolicy> policy;  // null: no policy in force
  std::string principal;
  std::string peer;
  std::string model_id;
};

thread_local ApiGuard::Call* ApiGuard::current_call_ = nullptr;

ApiGuard::ApiGuard(OubliService* service, AccessPolicyFiles* policy,
                   AuditLog* audit, ApiLimits limits)
    : service_(service), policy_(policy), audit_(audit), limits_(limits) {
  service_->SetIngestModelCheck(
      [this](const std::string& model_id) { return CheckLateModel(model_id); });
}

template <typename Handle>
grpc::Status ApiGuard::Guard(grpc::ServerContext* context,
                             absl::string_view rpc, absl::string_view model_id,
                             Handle&& handle) {
  Call call;
  call.access = AccessOf(rpc);
  call.peer = context->peer();
  call.model_id = std::string(model_id);
  if (call.access == nullptr) {
    return grpc::Status(grpc::StatusCode::INTERNAL,
                        absl::StrCat("no access rule for ", rpc));
  }
  // A model id the service would refuse is refused here, before it can
  // reach the audit log (a hostile caller could send megabytes of it).
  if (!call.model_id.empty()) {
    // Not the id itself in the message: it can be megabytes.
    if (!ValidateModelId(call.model_id).ok()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "model_id: must be 1..128 bytes of [A-Za-z0-9._-]");
    }
  }
  const Slot slot(&calls_in_flight_, limits_.max_concurrent_calls);
  if (!slot.taken()) {
    return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                        absl::StrCat("the server is handling its limit of ",
                                     limits_.max_concurrent_calls,
                                     " concurrent calls; retry with backoff"));
  }
  if (policy_ != nullptr) {
    call.policy = policy_->Current();
    CallCredentials credentials;
    credentials.bearer_token = BearerToken(*context);
    credentials.certificate_names = PeerCertificateNames(*context);
    absl::StatusOr<std::string> principal =
        call.policy->Authenticate(credentials);
    absl::Status allowed = principal.status();
    if (principal.ok()) {
      call.principal = *principal;
      allowed =
          call.policy->Authorize(call.principal, *call.access, call.model_id);
    }
    if (!allowed.ok()) {
      grpc::Status refused = ToGrpcStatus(allowed);
      Audit(call, refused);
      return refused;
    }
  }
  current_call_ = &call;
  grpc::Status status = handle(call);
  current_call_ = nullptr;
  if (call.access->mutating ||
      status.error_code() == grpc::StatusCode::UNAUTHENTICATED ||
      status.error_code() == grpc::StatusCode::PERMISSION_DENIED) {
    Audit(call, status);
  }
  return status;
}

grpc::Status ApiGuard::CheckLateModel(const std::string& model_id) {
  Call* call = current_call_;
  if (call == nullptr) {
    // Not on the guarded handler's thread: fail closed under a policy.
    return policy_ == nullptr
               ? grpc::Status::OK
               : grpc::Status(grpc::StatusCode::INTERNAL,
                              "ingest stream outside its guarded call");
  }
  if (!ValidateModelId(model_id).ok()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "model_id: must be 1..128 bytes of [A-Za-z0-9._-]");
  }
  call->model_id = model_id;
  if (call->policy == nullptr) return grpc::Status::OK;
  return ToGrpcStatus(
      call->policy->Authorize(call->principal, *call->access, model_id));
}

void ApiGuard::Audit(const Call& call, const grpc::Status& status) {
  if (audit_ == nullptr) return;
  AuditEntry entry;
  entry.time = absl::Now();
  entry.caller = call.principal;
  entry.peer = call.peer;
  entry.rpc = std::string(call.access->rpc);
  entry.model_id = call.model_id;
  entry.code = static_cast<absl::StatusCode>(status.error_code());
  audit_->Record(entry);
}

grpc::Status ApiGuard::CreateModel(grpc::ServerContext* context,
                                   const v1::CreateModelRequest* request,
                                   v1::Model* response) {
  return Guard(context, "CreateModel", request->model_id(), [&](Call&) {
    return service_->CreateModel(context, request, response);
  });
}

grpc::Status ApiGuard::IngestSamples(
    grpc::ServerContext* context,
    grpc::ServerReader<v1::IngestSamplesRequest>* reader,
    v1::IngestSamplesResponse* response) {
  // The model is in the stream's first message: CheckLateModel.
  return Guard(context, "IngestSamples", "", [&](Call&) {
    return service_->IngestSamples(context, reader, response);
  });
}

grpc::Status ApiGuard::Train(grpc::ServerContext* context,
                             const v1::TrainRequest* request,
                             v1::Job* response) {
  return Guard(context, "Train", request->model_id(), [&](Call&) {
    return service_->Train(context, request, response);
  });
}

grpc::Status ApiGuard::GetJob(grpc::ServerContext* context,
                              const v1::GetJobRequest* request,
                              v1::Job* response) {
  // A job id does not name its model: the answer does.
  return Guard(context, "GetJob", "", [&](Call& call) {
    grpc::Status status = service_->GetJob(context, request, response);
    if (status.ok() && call.policy != nullptr) {
      call.model_id = response->model_id();
      absl::Status allowed = call.policy->Authorize(
          call.principal, *call.access, response->model_id());
      if (!allowed.ok()) {
        response->Clear();
        return ToGrpcStatus(allowed);
      }
    }
    return status;
  });
}

grpc::Status ApiGuard::DeleteSamples(grpc::ServerContext* context,
                                     const v1::DeleteSamplesRequest* request,
                                     v1::DeletionReceipt* response) {
  return Guard(context, "DeleteSamples", request->model_id(), [&](Call&) {
    return service_->DeleteSamples(context, request, response);
  });
}

grpc::Status ApiGuard::ForgetOwner(grpc::ServerContext* context,
                                   const v1::ForgetOwnerRequest* request,
                                   v1::DeletionReceipt* response) {
  return Guard(context, "ForgetOwner", request->model_id(), [&](Call&) {
    return service_->ForgetOwner(context, request, response);
  });
}

grpc::Status ApiGuard::GetDeletion(grpc::ServerContext* context,
                                   const v1::GetDeletionRequest* request,
                                   v1::DeletionReceipt* response) {
  return Guard(
      context, "GetDeletion", ModelOfDeletion(request->deletion_id()),
      [&](Call&) { return service_->GetDeletion(context, request, response); });
}

grpc::Status ApiGuard::WatchDeletion(
    grpc::ServerContext* context, const v1::WatchDeletionRequest* request,
    grpc::ServerWriter<v1::DeletionReceipt>* writer) {
  return Guard(
      context, "WatchDeletion", ModelOfDeletion(request->deletion_id()),
      [&](Call&) {
        const Slot slot(&watch_streams_, limits_.max_watch_streams);
        if (!slot.taken()) {
          return grpc::Status(
              grpc::StatusCode::RESOURCE_EXHAUSTED,
              absl::StrCat("the server holds its limit of ",
                           limits_.max_watch_streams,
                           " WatchDeletion streams; poll GetDeletion or "
                           "retry later"));
        }
        return service_->WatchDeletion(context, request, writer);
      });
}

grpc::Status ApiGuard::ListDeletions(grpc::ServerContext* context,
                                     const v1::ListDeletionsRequest* request,
                                     v1::ListDeletionsResponse* response) {
  return Guard(context, "ListDeletions", request->model_id(), [&](Call&) {
    return service_->ListDeletions(context, request, response);
  });
}

grpc::Status ApiGuard::Predict(grpc::ServerContext* context,
                               const v1::PredictRequest* request,
                               v1::PredictResponse* response) {
  return Guard(context, "Predict", request->model_id(), [&](Call&) {
    return service_->Predict(context, request, response);
  });
}

grpc::Status ApiGuard::Score(grpc::ServerContext* context,
                             const v1::ScoreRequest* request,
                             v1::ScoreResponse* response) {
  return Guard(context, "Score", request->model_id(), [&](Call&) {
    return service_->Score(context, request, response);
  });
}

grpc::Status ApiGuard::Generate(grpc::ServerContext* context,
                                const v1::GenerateRequest* request,
                                v1::GenerateResponse* response) {
  return Guard(context, "Generate", request->model_id(), [&](Call&) {
    return service_->Generate(context, request, response);
  });
}

grpc::Status ApiGuard::GetModel(grpc::ServerContext* context,
                                const v1::GetModelRequest* request,
                                v1::Model* response) {
  return Guard(context, "GetModel", request->model_id(), [&](Call&) {
    return service_->GetModel(context, request, response);
  });
}

grpc::Status ApiGuard::ListModels(grpc::ServerContext* context,
                                  const v1::ListModelsRequest* request,
                                  v1::ListModelsResponse* response) {
  return Guard(context, "ListModels", "", [&](Call& call) {
    grpc::Status status = service_->ListModels(context, request, response);
    if (!status.ok() || call.policy == nullptr) return status;
    v1::ListModelsResponse visible;
    for (v1::ModelSummary& model : *response->mutable_models()) {
      for (Role role : call.access->roles) {
        if (call.policy->Allows(call.principal, role, model.model_id())) {
          *visible.add_models() = std::move(model);
          break;
        }
      }
    }
    response->mutable_models()->Swap(visible.mutable_models());
    return status;
  });
}

grpc::Status ApiGuard::Verify(grpc::ServerContext* context,
                              const v1::VerifyRequest* request,
                              v1::VerifyResponse* response) {
  return Guard(context, "Verify", request->model_id(), [&](Call&) {
    return service_->Verify(context, request, response);
  });
}

grpc::Status ApiGuard::RetireWorker(grpc::ServerContext* context,
                                    const v1::RetireWorkerRequest* request,
                                    v1::RetiredWorker* response) {
  return Guard(context, "RetireWorker", "", [&](Call&) {
    return service_->RetireWorker(context, request, response);
  });
}

grpc::Status ApiGuard::ExportLedger(
    grpc::ServerContext* context, const v1::ExportLedgerRequest* request,
    grpc::ServerWriter<v1::ExportLedgerResponse>* writer) {
  return Guard(context, "ExportLedger", request->model_id(), [&](Call&) {
    return service_->ExportLedger(context, request, writer);
  });
}

grpc::Status ApiGuard::DeleteModel(grpc::ServerContext* context,
                                   const v1::DeleteModelRequest* request,
                                   v1::ModelDeletion* response) {
  return Guard(context, "DeleteModel", request->model_id(), [&](Call&) {
    return service_->DeleteModel(context, request, response);
  });
}

}  // namespace oubli::coordinator
