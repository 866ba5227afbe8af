// Constants of the cluster protocol (proto/oubli/cluster) shared by the
// coordinator and the workers, and its shared secret: whoever can register
// as a worker receives training rows and returns checkpoints that get
// served, so both sides prove they know the token.
#ifndef OUBLI_COMMON_CLUSTER_PROTOCOL_H_
#define OUBLI_COMMON_CLUSTER_PROTOCOL_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace oubli {

// Revision of oubli.cluster; Register refuses a worker of another one.
inline constexpr int kClusterProtocolVersion = 3;

// With TLS, the names the cluster's certificates carry by default (each
// side checks the other's): one for every worker, one for the coordinator.
inline constexpr char kWorkerCertificateName[] = "oubli-worker";
inline constexpr char kCoordinatorCertificateName[] = "oubli-coordinator";

// gRPC metadata key carrying the token on every cluster-protocol call.
inline constexpr char kClusterTokenMetadata[] = "oubli-cluster-token";

// The token in `path` (surrounding whitespace removed). InvalidArgument if
// the file is empty, NotFound etc. if unreadable.
absl::StatusOr<std::string> ReadClusterToken(const std::string& path);

// Whether `presented` equals `expected`, in time independent of where they
// differ. An empty `expected` accepts anything (no token configured).
bool ClusterTokenMatches(absl::string_view expected,
                         absl::string_view presented);

// Checks what every oubli server (coordinator, worker) takes: a listen
// address HOST:PORT and a message size limit in 1..INT_MAX. Returns HOST.
absl::StatusOr<std::string> CheckServerAddress(absl::string_view listen_address,
                                               int64_t max_message_bytes);

// Whether HOST (as CheckServerAddress returns it) reaches only this
// machine: "localhost", an IPv4 literal in 127.0.0.0/8, or [::1]. A
// wildcard, empty host or other name is not.
bool IsLoopbackHost(absl::string_view host);

}  // namespace oubli

#endif  // OUBLI_COMMON_CLUSTER_PROTOCOL_H_
