// An oubli-coordinator and N oubli-worker processes on loopback, started
// as children of a tool (ChildProcess): how the soak benchmark and the
// language-model forgetting study run the service as in production.
// Plaintext, no access policy: the demo's TLS and policy cost nothing the
// tools measure.
#ifndef OUBLI_TOOLS_BENCH_LOCAL_CLUSTER_H_
#define OUBLI_TOOLS_BENCH_LOCAL_CLUSTER_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "tools/bench/child_process.h"

namespace oubli::bench {

struct ClusterOptions {
  std::string dir;  // data dirs and logs below it; must exist
  int workers = 0;
  int training_threads = 2;  // the coordinator's --training_threads
  // Default: beside this executable's directory's parent, as in the build
  // tree (build/tools/X -> build/coordinator/oubli-coordinator).
  std::string coordinator_binary;
  std::string worker_binary;
  // Extra flags of the coordinator and of every worker.
  std::vector<std::string> coordinator_flags;
  std::vector<std::string> worker_flags;
};

struct Cluster {
  std::unique_ptr<ChildProcess> coordinator;
  std::vector<std::unique_ptr<ChildProcess>> workers;
  std::string address;          // the coordinator's gRPC HOST:PORT
  std::string metrics_address;  // its /metrics
  std::vector<std::string> worker_metrics_addresses;

  // (name, pid) of every process, coordinator first.
  std::vector<std::pair<std::string, pid_t>> Processes() const;
  // Workers first (the coordinator waits for nothing of theirs), then the
  // coordinator; the first failure, after trying every process.
  absl::Status Stop();
};

// `relative` to the build tree this executable runs from.
std::string SiblingBinary(const std::string& relative);

// Starts the coordinator, waits for its addresses, then the workers, and
// waits until each has registered. Spawn from a thread that outlives the
// processes (see ChildProcess::Start). Errors of ChildProcess (a binary
// that does not start, or a line that does not come, with its log's tail).
absl::StatusOr<Cluster> StartCluster(const ClusterOptions& options);

}  // namespace oubli::bench

#endif  // OUBLI_TOOLS_BENCH_LOCAL_CLUSTER_H_
