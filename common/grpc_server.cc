#include "common/grpc_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace oubli {

absl::StatusOr<StartedGrpcServer> StartGrpcServer(
    const std::string& listen_address,
    std::shared_ptr<grpc::ServerCredentials> credentials,
    int64_t max_message_bytes,
    const std::string& service_name,
    const std::function<void(grpc::ServerBuilder&)>& configure) {
  // Both must precede BuildAndStart.
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  StartedGrpcServer started;
  builder.AddListeningPort(listen_address, std::move(credentials),
                           &started.port);
  builder.SetMaxReceiveMessageSize(static_cast<int>(max_message_bytes));
  builder.SetMaxSendMessageSize(static_cast<int>(max_message_bytes));
  configure(builder);
  started.server = builder.BuildAndStart();
  if (started.server == nullptr || started.port == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on '", listen_address, "'"));
  }
  grpc::HealthCheckServiceInterface* health =
      started.server->GetHealthCheckService();
  health->SetServingStatus(false);
  health->SetServingStatus(service_name, false);
  return started;
}

}  // namespace oubli
