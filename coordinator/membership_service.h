// gRPC adapter of oubli.cluster.Membership over a WorkerPool.
#ifndef OUBLI_COORDINATOR_MEMBERSHIP_SERVICE_H_
#define OUBLI_COORDINATOR_MEMBERSHIP_SERVICE_H_

#include <functional>
#include <memory>
#include <string>

#include "coordinator/worker_pool.h"
#include "common/grpc_security.h"
#include "oubli/cluster/cluster.grpc.pb.h"

namespace oubli::coordinator {

class MembershipService final : public cluster::Membership::Service {
 public:
  // `workers`: what workers must present (common/grpc_security.h).
  // `holder_registered` (may be empty) runs after a chunk holder registers:
  // purges waiting for its chunks need not sit out their back-off.
  MembershipService(std::shared_ptr<WorkerPool> pool, ClusterPeer workers,
                    std::function<void()> holder_registered = nullptr)
      : pool_(std::move(pool)),
        workers_(std::move(workers)),
        holder_registered_(std::move(holder_registered)) {}

  grpc::Status Register(grpc::ServerContext* context,
                        const cluster::RegisterRequest* request,
                        cluster::RegisterResponse* response) override;
  grpc::Status Heartbeat(grpc::ServerContext* context,
                         const cluster::HeartbeatRequest* request,
                         cluster::HeartbeatResponse* response) override;

 private:
  const std::shared_ptr<WorkerPool> pool_;
  const ClusterPeer workers_;
  const std::function<void()> holder_registered_;
};

}  // namespace oubli::coordinator

#endif  // OUBLI_COORDINATOR_MEMBERSHIP_SERVICE_H_
