// gRPC adapter of oubli.cluster.Membership over a WorkerPool.
#ifndef OUBLI_COORDINATOR_MEMBERSHIP_SERVICE_H_
#define OUBLI_COORDINATOR_MEMBERSHIP_SERVICE_H_

#include <memory>

#include "coordinator/worker_pool.h"
#include "oubli/cluster/cluster.grpc.pb.h"

namespace oubli::coordinator {

class MembershipService final : public cluster::Membership::Service {
 public:
  explicit MembershipService(std::shared_ptr<WorkerPool> pool)
      : pool_(std::move(pool)) {}

  grpc::Status Register(grpc::ServerContext* context,
                        const cluster::RegisterRequest* request,
                        cluster::RegisterResponse* response) override;
  grpc::Status Heartbeat(grpc::ServerContext* context,
                         const cluster::HeartbeatRequest* request,
                         cluster::HeartbeatResponse* response) override;

 private:
  const std::shared_ptr<WorkerPool> pool_;
};

}  // namespace oubli::coordinator

#endif  // OUBLI_COORDINATOR_MEMBERSHIP_SERVICE_H_
