#include "coordinator/membership_service.h"

#include <string>

#include "absl/time/time.h"

namespace oubli::coordinator {

grpc::Status MembershipService::Register(
    grpc::ServerContext* /*context*/, const cluster::RegisterRequest* request,
    cluster::RegisterResponse* response) {
  absl::StatusOr<std::string> id = pool_->Register(
      request->address(), request->environment(), request->name());
  if (!id.ok()) {
    return grpc::Status(static_cast<grpc::StatusCode>(id.status().code()),
                        std::string(id.status().message()));
  }
  response->set_worker_id(*id);
  response->set_heartbeat_interval_ms(
      absl::ToInt64Milliseconds(pool_->heartbeat_interval()));
  return grpc::Status::OK;
}

grpc::Status MembershipService::Heartbeat(
    grpc::ServerContext* /*context*/, const cluster::HeartbeatRequest* request,
    cluster::HeartbeatResponse* response) {
  response->set_known(pool_->Heartbeat(request->worker_id()));
  return grpc::Status::OK;
}

}  // namespace oubli::coordinator
