// absl::Status <-> grpc::Status at the edges of every oubli gRPC service and
// client, and the cluster-token check of the internal protocol. Its own
// library (oubli_grpc_common): only gRPC adapters link it.
#ifndef OUBLI_COMMON_GRPC_STATUS_H_
#define OUBLI_COMMON_GRPC_STATUS_H_

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace oubli {

// Same code (the two enums share their numbering); the message made valid
// UTF-8, as proto string fields and clients require.
grpc::Status ToGrpcStatus(const absl::Status& status);

// Same code; the message prefixed with "`what`: " when `what` is not empty.
absl::Status FromGrpcStatus(const grpc::Status& status,
                            absl::string_view what = {});

// OK when `expected` is empty (no token configured) or the call carries it
// in kClusterTokenMetadata; UNAUTHENTICATED otherwise.
grpc::Status CheckClusterToken(const grpc::ServerContext& context,
                               absl::string_view expected);

}  // namespace oubli

#endif  // OUBLI_COMMON_GRPC_STATUS_H_
