// The forgetting study's LmService over gRPC: a real oubli-coordinator and
// oubli-worker processes started here on loopback (bench::StartCluster),
// the study's calls made through the public API (oubli.v1.Oubli), and an
// LmScorer answered by the Score and Generate RPCs.
#ifndef OUBLI_TOOLS_LM_GRPC_LM_SERVICE_H_
#define OUBLI_TOOLS_LM_GRPC_LM_SERVICE_H_

#include <memory>

#include "absl/status/statusor.h"
#include "tools/bench/local_cluster.h"
#include "tools/lm/lm_service.h"

namespace oubli::lm {

// Starts the processes and connects; they are stopped (SIGTERM, workers
// first) when the service is destroyed, and killed with the tool if it
// dies. Errors of bench::StartCluster.
absl::StatusOr<std::unique_ptr<LmService>> StartLocalLmService(
    const bench::ClusterOptions& options);

}  // namespace oubli::lm

#endif  // OUBLI_TOOLS_LM_GRPC_LM_SERVICE_H_
