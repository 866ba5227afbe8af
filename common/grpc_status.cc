#include "common/grpc_status.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "common/cluster_protocol.h"
#include "common/types.h"

namespace oubli {

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      SanitizeUtf8(status.message()));
}

absl::Status FromGrpcStatus(const grpc::Status& status,
                            absl::string_view what) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      what.empty()
                          ? status.error_message()
                          : absl::StrCat(what, ": ", status.error_message()));
}

grpc::Status CheckClusterToken(const grpc::ServerContext& context,
                               absl::string_view expected) {
  if (expected.empty()) return grpc::Status::OK;
  const auto& metadata = context.client_metadata();
  auto it = metadata.find(kClusterTokenMetadata);
  if (it == metadata.end() ||
      !ClusterTokenMatches(
          expected, absl::string_view(it->second.data(), it->second.size()))) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "missing or wrong cluster token");
  }
  return grpc::Status::OK;
}

}  // namespace oubli
