// What oubli-coordinator and oubli-worker do around their servers: block
// the shutdown signals before any thread starts, announce the addresses
// scripts read, wait for a signal.
#ifndef OUBLI_COMMON_SERVER_MAIN_H_
#define OUBLI_COMMON_SERVER_MAIN_H_

#include <signal.h>

#include <string>

namespace oubli {

class ShutdownSignals {
 public:
  // Blocks SIGINT and SIGTERM in the calling thread and every thread it
  // starts afterwards (gRPC's, the engines'), so only Wait receives them;
  // ignores SIGPIPE (writes to a vanished peer fail instead).
  ShutdownSignals();
  // Returns the signal received.
  int Wait();

 private:
  sigset_t signals_;
};

// A server main's --cluster_token_file: reads the token from `path` into
// `*token` (nothing when `path` is empty). On failure prints
// "PROGRAM: why" on stderr and returns false; the caller exits with 2.
bool ReadClusterTokenFlag(const char* program, const std::string& path,
                          std::string* token);

// Prints "listening on ADDRESS" and, unless empty, "metrics on METRICS" on
// stdout, flushed: how scripts and tests learn ports chosen with :0.
void AnnounceAddresses(const std::string& address,
                       const std::string& metrics_address);

}  // namespace oubli

#endif  // OUBLI_COMMON_SERVER_MAIN_H_
