// Transport security of every oubli gRPC endpoint: TLS from PEM files
// (re-read when they change, so cert-manager can rotate them without a
// restart), mutual TLS between the coordinator and its workers, and who a
// call comes from (the names its client certificate carries, the bearer
// token it presents). Part of oubli_grpc_common: only gRPC adapters link it.
#ifndef OUBLI_COMMON_GRPC_SECURITY_H_
#define OUBLI_COMMON_GRPC_SECURITY_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "common/tls_files.h"

namespace oubli {

// Whether a caller without a client certificate may connect to a TLS port
// that has a client CA. The public API takes bearer tokens instead, so its
// certificates are optional; the cluster protocol requires one.
enum class ClientCertificates { kOptional, kRequired };

// Plaintext when !files.enabled(); otherwise TLS from the files, reloaded
// on change. With a client CA, presented client certificates must chain to
// it (and with kRequired, callers must present one).
std::shared_ptr<grpc::ServerCredentials> ServerCredentialsFor(
    const TlsServerFiles& files, ClientCertificates client_certificates);

// Channel credentials for `files` (plaintext when !enabled()); sets the
// server-name override in `*arguments` when `files.server_name` is given.
std::shared_ptr<grpc::ChannelCredentials> ChannelCredentialsFor(
    const TlsDialFiles& files, grpc::ChannelArguments* arguments);
// Only the server-name override of ChannelCredentialsFor: for channels that
// share one credentials object (each TLS one watches its files with a
// thread of its own).
void SetTlsServerName(const TlsDialFiles& files,
                      grpc::ChannelArguments* arguments);

// The names a call's verified client certificate carries: its subject CN
// and its subject alternative names. Empty without TLS or certificate.
std::vector<std::string> PeerCertificateNames(
    const grpc::ServerContext& context);

// gRPC metadata key of bearer tokens ("authorization: Bearer TOKEN").
inline constexpr char kAuthorizationMetadata[] = "authorization";

// The bearer token the call presents; nullopt when it presents none.
// InvalidArgument-free: a malformed header ("Basic ...") yields the raw
// value, which then matches no token.
std::optional<std::string> BearerToken(const grpc::ServerContext& context);

// Who may call a cluster-protocol service: callers must present `token`
// (when set) and, on a TLS port, a client certificate naming
// `certificate_name` (when set).
struct ClusterPeer {
  std::string token;
  std::string certificate_name;
};

// OK when the call satisfies `peer`; UNAUTHENTICATED naming what is
// missing otherwise.
grpc::Status CheckClusterPeer(const grpc::ServerContext& context,
                              const ClusterPeer& peer);

}  // namespace oubli

#endif  // OUBLI_COMMON_GRPC_SECURITY_H_
