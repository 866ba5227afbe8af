#include "coordinator/membership_service.h"

#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/cluster_protocol.h"
#include "common/grpc_status.h"
#include "worker/ml/determinism.h"

namespace oubli::coordinator {

grpc::Status MembershipService::Register(
    grpc::ServerContext* context, const cluster::RegisterRequest* request,
    cluster::RegisterResponse* response) {
  if (grpc::Status s = CheckClusterPeer(*context, workers_); !s.ok())
    return s;
  if (request->protocol_version() != kClusterProtocolVersion) {
    return grpc::Status(
        grpc::StatusCode::FAILED_PRECONDITION,
        absl::StrCat("worker speaks cluster protocol ",
                     request->protocol_version(), ", coordinator ",
                     kClusterProtocolVersion, ": run the same oubli release"));
  }
  // Taken before the worker can be given work: every upload to it begins
  // at this epoch or later, and older ones are refused.
  const int64_t slice_epoch = pool_->NextSliceEpoch();
  absl::StatusOr<std::string> id =
      pool_->Register(request->address(), request->environment(),
                      request->name(), request->holds_chunks());
  if (!id.ok()) {
    return ToGrpcStatus(id.status());
  }
  response->set_worker_id(*id);
  response->set_slice_epoch(slice_epoch);
  response->set_heartbeat_interval_ms(
      absl::ToInt64Milliseconds(pool_->heartbeat_interval()));
  response->set_worker_timeout_ms(
      absl::ToInt64Milliseconds(pool_->worker_timeout()));
  const std::string environment = ml::NumericEnvironment();
  response->set_coordinator_environment(environment);
  if (request->environment() != environment) {
    std::fprintf(stderr,
                 "oubli: worker %s computes in another numeric environment "
                 "and gets no training or Predict (it may hold chunks):\n"
                 "  worker      %s\n  coordinator %s\n",
                 id->c_str(), request->environment().c_str(),
                 environment.c_str());
  }
  if (request->holds_chunks() && holder_registered_) holder_registered_();
  return grpc::Status::OK;
}

grpc::Status MembershipService::Heartbeat(
    grpc::ServerContext* context, const cluster::HeartbeatRequest* request,
    cluster::HeartbeatResponse* response) {
  if (grpc::Status s = CheckClusterPeer(*context, workers_); !s.ok())
    return s;
  response->set_known(pool_->Heartbeat(request->worker_id()));
  return grpc::Status::OK;
}

}  // namespace oubli::coordinator
