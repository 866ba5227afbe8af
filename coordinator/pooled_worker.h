// One worker as the pool holds it: who it is and the stub to call it
// (immutable after WorkerPool::Register), and what the pool tracks of it
// for placement (guarded by the pool's mutex, touched only through
// WorkerPool's methods). Included by the sources of the pool and of the
// seams built on it (worker_training, worker_chunks, worker_serving); it
// includes gRPC, which coordinator/worker_pool.h keeps out.
#ifndef OUBLI_COORDINATOR_POOLED_WORKER_H_
#define OUBLI_COORDINATOR_POOLED_WORKER_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/time/time.h"
#include "coordinator/worker_pool.h"
#include "oubli/cluster/cluster.grpc.pb.h"

namespace oubli::coordinator {

struct WorkerPool::Worker {
  // Immutable after Register.
  std::string id;
  std::string name;
  std::string address;
  std::string environment;
  bool holds_chunks = false;
  absl::Time registered_at;
  std::unique_ptr<cluster::Worker::Stub> stub;
  // Guarded by the pool's mu_.
  absl::Time last_heartbeat;
  bool dead = false;  // declared dead; only a new registration revives
  int busy = 0;
  int64_t positions_trained = 0;
  // Slices ("model/digest") uploaded to it and not dropped by a purge
  // since: a hint for placing positions where their slices already are
  // (the worker may have evicted some).
  absl::flat_hash_set<std::string> sent_slices;
  // Models any slice of which was ever uploaded to it (never forgotten:
  // a purge waits for its lease if it stops answering).
  absl::flat_hash_set<std::string> models_sent;
  // Models it was ever asked to serve shards of (never forgotten either).
  absl::flat_hash_set<std::string> models_served;
  // Model id -> until when its shards are not placed here: loading one
  // failed for a reason of this worker's (base weights missing, config not
  // understood), which every request would hit again.
  absl::flat_hash_map<std::string, absl::Time> cannot_serve_until;
};

}  // namespace oubli::coordinator

#endif  // OUBLI_COORDINATOR_POOLED_WORKER_H_
