#include "coordinator/membership_service.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/cluster_protocol.h"

namespace oubli::coordinator {
namespace {

grpc::Status CheckToken(const grpc::ServerContext* context,
                        const std::string& expected) {
  if (expected.empty()) return grpc::Status::OK;
  const auto& metadata = context->client_metadata();
  auto it = metadata.find(kClusterTokenMetadata);
  if (it == metadata.end() ||
      !ClusterTokenMatches(
          expected, absl::string_view(it->second.data(), it->second.size()))) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "missing or wrong cluster token");
  }
  return grpc::Status::OK;
}

}  // namespace

grpc::Status MembershipService::Register(
    grpc::ServerContext* context, const cluster::RegisterRequest* request,
    cluster::RegisterResponse* response) {
  if (grpc::Status s = CheckToken(context, cluster_token_); !s.ok()) return s;
  if (request->protocol_version() != kClusterProtocolVersion) {
    return grpc::Status(
        grpc::StatusCode::FAILED_PRECONDITION,
        absl::StrCat("worker speaks cluster protocol ",
                     request->protocol_version(), ", coordinator ",
                     kClusterProtocolVersion, ": run the same oubli release"));
  }
  absl::StatusOr<std::string> id =
      pool_->Register(request->address(), request->environment(),
                      request->name(), request->holds_chunks());
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
    grpc::ServerContext* context, const cluster::HeartbeatRequest* request,
    cluster::HeartbeatResponse* response) {
  if (grpc::Status s = CheckToken(context, cluster_token_); !s.ok()) return s;
  response->set_known(pool_->Heartbeat(request->worker_id()));
  return grpc::Status::OK;
}

}  // namespace oubli::coordinator
