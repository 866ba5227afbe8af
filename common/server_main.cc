#include "common/server_main.h"

#include <pthread.h>

#include <cstdio>

#include "common/cluster_protocol.h"

namespace oubli {

ShutdownSignals::ShutdownSignals() {
  // A peer that resets a TLS connection makes OpenSSL's write(2) raise
  // SIGPIPE (it cannot pass MSG_NOSIGNAL); the error return is enough.
  signal(SIGPIPE, SIG_IGN);
  sigemptyset(&signals_);
  sigaddset(&signals_, SIGINT);
  sigaddset(&signals_, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals_, nullptr);
}

int ShutdownSignals::Wait() {
  int signal_number = 0;
  sigwait(&signals_, &signal_number);
  return signal_number;
}

bool ReadClusterTokenFlag(const char* program, const std::string& path,
                          std::string* token) {
  if (path.empty()) return true;
  absl::StatusOr<std::string> read = ReadClusterToken(path);
  if (!read.ok()) {
    std::fprintf(stderr, "%s: %s\n", program, read.status().ToString().c_str());
    return false;
  }
  *token = *std::move(read);
  return true;
}

void AnnounceAddresses(const std::string& address,
                       const std::string& metrics_address) {
  std::printf("listening on %s\n", address.c_str());
  if (!metrics_address.empty()) {
    std::printf("metrics on %s\n", metrics_address.c_str());
  }
  std::fflush(stdout);
}

}  // namespace oubli
