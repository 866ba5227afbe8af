// The PEM files of one process's TLS identity and trust, and the checks
// that make a wrong file fail at startup naming its flag. No gRPC here:
// common/grpc_security.h turns them into credentials.
#ifndef OUBLI_COMMON_TLS_FILES_H_
#define OUBLI_COMMON_TLS_FILES_H_

#include <string>

#include "absl/status/status.h"

namespace oubli {

// How often TLS files are checked for changes. gRPC's file watcher reads
// them; an unreadable or mismatched new pair keeps the old one serving.
inline constexpr unsigned kTlsReloadIntervalSeconds = 5;

// What a listening port serves. TLS iff `cert` is set.
struct TlsServerFiles {
  std::string cert;       // PEM certificate chain presented to callers
  std::string key;        // its PEM private key
  std::string client_ca;  // PEM CAs verifying callers' certificates; empty:
                          // callers are not asked for one
  // The flag `client_ca` came from, named in errors: a process has two
  // ports that may ask for client certificates (gRPC and /metrics).
  std::string client_ca_flag = "tls_client_ca";
  bool enabled() const { return !cert.empty(); }
};

// Checks the files now, so that a wrong path or a key of another
// certificate fails at startup naming the flag, instead of as handshake
// failures later: certificate and key readable PEM that belong together,
// the certificate within its validity period, the CA bundle readable PEM.
// InvalidArgument ("--tls_cert: ...") otherwise; OK when !enabled().
absl::Status CheckTlsServerFiles(const TlsServerFiles& files);

// How this process dials another. TLS iff `ca` is set.
struct TlsDialFiles {
  std::string ca;    // PEM CAs the server's certificate must chain to
  std::string cert;  // optional client certificate (mutual TLS)
  std::string key;   // its private key
  // The name the server's certificate must carry (a DNS SAN); empty: the
  // host of the dialled address. Lets the coordinator check every worker
  // against one name instead of each pod's address.
  std::string server_name;
  bool enabled() const { return !ca.empty(); }
};

// Same checks as CheckTlsServerFiles, naming --`ca_flag`, --tls_cert and
// --tls_key. OK when !enabled(). InvalidArgument for a cert without a key
// (or the reverse).
absl::Status CheckTlsDialFiles(const TlsDialFiles& files,
                               const char* ca_flag = "tls_ca");

}  // namespace oubli

#endif  // OUBLI_COMMON_TLS_FILES_H_
