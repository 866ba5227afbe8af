#include "common/grpc_security.h"

#include <grpc/grpc_security_constants.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_certificate_verifier.h>
#include <grpcpp/security/tls_credentials_options.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"

namespace oubli {

std::shared_ptr<grpc::ServerCredentials> ServerCredentialsFor(
    const TlsServerFiles& files, ClientCertificates client_certificates) {
  if (!files.enabled()) return grpc::InsecureServerCredentials();
  auto provider =
      std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
          files.key, files.cert, files.client_ca, kTlsReloadIntervalSeconds);
  grpc::experimental::TlsServerCredentialsOptions options(provider);
  options.watch_identity_key_cert_pairs();
  if (files.client_ca.empty()) {
    options.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  } else {
    options.watch_root_certs();
    options.set_cert_request_type(
        client_certificates == ClientCertificates::kRequired
            ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
            : GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY);
  }
  return grpc::experimental::TlsServerCredentials(options);
}

std::shared_ptr<grpc::ChannelCredentials> ChannelCredentialsFor(
    const TlsDialFiles& files, grpc::ChannelArguments* arguments) {
  if (!files.enabled()) return grpc::InsecureChannelCredentials();
  auto provider =
      std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
          files.key, files.cert, files.ca, kTlsReloadIntervalSeconds);
  grpc::experimental::TlsChannelCredentialsOptions options;
  options.set_certificate_provider(provider);
  options.watch_root_certs();
  if (!files.cert.empty()) options.watch_identity_key_cert_pairs();
  options.set_verify_server_certs(true);
  options.set_certificate_verifier(
      std::make_shared<grpc::experimental::HostNameCertificateVerifier>());
  SetTlsServerName(files, arguments);
  return grpc::experimental::TlsCredentials(options);
}

void SetTlsServerName(const TlsDialFiles& files,
                      grpc::ChannelArguments* arguments) {
  if (files.enabled() && !files.server_name.empty()) {
    arguments->SetSslTargetNameOverride(files.server_name);
  }
}

std::vector<std::string> PeerCertificateNames(
    const grpc::ServerContext& context) {
  std::vector<std::string> names;
  std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  if (auth == nullptr || !auth->IsPeerAuthenticated()) return names;
  for (const char* property :
       {GRPC_X509_CN_PROPERTY_NAME, GRPC_X509_SAN_PROPERTY_NAME}) {
    for (const grpc::string_ref& value : auth->FindPropertyValues(property)) {
      names.emplace_back(value.data(), value.size());
    }
  }
  return names;
}

std::optional<std::string> BearerToken(const grpc::ServerContext& context) {
  const auto& metadata = context.client_metadata();
  auto it = metadata.find(kAuthorizationMetadata);
  if (it == metadata.end()) return std::nullopt;
  absl::string_view value(it->second.data(), it->second.size());
  constexpr absl::string_view kBearer = "Bearer ";
  if (absl::StartsWithIgnoreCase(value, kBearer)) {
    value.remove_prefix(kBearer.size());
  }
  return std::string(value);
}

grpc::Status CheckClusterPeer(const grpc::ServerContext& context,
                              const ClusterPeer& peer) {
  if (grpc::Status s = CheckClusterToken(context, peer.token); !s.ok()) {
    return s;
  }
  if (peer.certificate_name.empty()) return grpc::Status::OK;
  for (const std::string& name : PeerCertificateNames(context)) {
    if (name == peer.certificate_name) return grpc::Status::OK;
  }
  return grpc::Status(
      grpc::StatusCode::UNAUTHENTICATED,
      absl::StrCat("cluster calls need a client certificate naming '",
                   peer.certificate_name, "'"));
}

}  // namespace oubli
