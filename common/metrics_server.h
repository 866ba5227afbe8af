// A minimal HTTP endpoint for Prometheus scrapes, shared by the coordinator
// and the workers. No metrics library here: the caller serializes.
#ifndef OUBLI_COMMON_METRICS_SERVER_H_
#define OUBLI_COMMON_METRICS_SERVER_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/tls_files.h"

namespace oubli {

// Serves `serialize()` over HTTP: GET /metrics (Prometheus text exposition
// format 0.0.4).
//
// Not prometheus-cpp's Exposer: its civetweb (Debian 1.15) creates threads
// with a fixed 100 KiB stack, and in a process that loads LibTorch,
// OpenBLAS and glog the static TLS alone is larger, so pthread_create
// fails with EINVAL and the Exposer cannot start. This is a minimal
// HTTP/1.x server on one thread with a default stack: scrapes are rare and
// small, answered one at a time, each connection bounded by I/O timeouts.
class MetricsServer {
 public:
  // `listen_address`: HOST:PORT (HOST may be empty or [v6]); port 0 picks a
  // free port. With `tls` enabled, HTTPS only: the certificate and key are
  // re-read when they change (a pair that does not load keeps the old one);
  // with tls.client_ca, scrapers must present a certificate it signed.
  // InvalidArgument: a bad address or TLS files; Unavailable: cannot listen.
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(
      absl::string_view listen_address, std::function<std::string()> serialize,
      const TlsServerFiles& tls = {});
  ~MetricsServer();  // stops serving
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // "host:port" actually bound.
  const std::string& address() const { return address_; }
  int port() const { return port_; }

 private:
  struct Server;
  MetricsServer() = default;
  std::unique_ptr<Server> server_;
  std::string address_;
  int port_ = 0;
};

}  // namespace oubli

#endif  // OUBLI_COMMON_METRICS_SERVER_H_
