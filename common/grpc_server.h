// Starting an oubli gRPC server the same way everywhere: the standard
// health service (NOT_SERVING until the caller says otherwise), server
// reflection, and one message-size limit for both directions.
#ifndef OUBLI_COMMON_GRPC_SERVER_H_
#define OUBLI_COMMON_GRPC_SERVER_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace oubli {

struct StartedGrpcServer {
  std::unique_ptr<grpc::Server> server;
  int port = 0;  // bound (the chosen one when asked for port 0)
};

// Listens on `listen_address` with `credentials` (common/grpc_security.h)
// and messages up to `max_message_bytes`; `configure` registers the
// services and sets any other option. Health is NOT_SERVING for the server
// and for `service_name` when this returns. Unavailable if it cannot
// listen.
absl::StatusOr<StartedGrpcServer> StartGrpcServer(
    const std::string& listen_address,
    std::shared_ptr<grpc::ServerCredentials> credentials,
    int64_t max_message_bytes,
    const std::string& service_name,
    const std::function<void(grpc::ServerBuilder&)>& configure);

}  // namespace oubli

#endif  // OUBLI_COMMON_GRPC_SERVER_H_
