// What the coordinator asks of a worker, as plain structs: training one S3T
// position, and which checkpoint must answer for a shard. The coordinator's
// seams (coordinator/remote_training.h) and the worker server
// (worker/position_worker.h, worker/shard_server.h) both speak them, so the
// coordinator needs no worker-server header. No torch, no gRPC.
#ifndef OUBLI_COMMON_WORKER_REQUESTS_H_
#define OUBLI_COMMON_WORKER_REQUESTS_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace oubli {

namespace storage {
// storage/encoded_slice.h; declared only, as common sits below storage.
class EncodedSlice;
}  // namespace storage

// Everything needed to train one position; the coordinator builds it.
struct PositionRequest {
  std::string config_text;  // ConfigToText
  std::string environment;  // must equal the worker's NumericEnvironment()
  int shard = 0;
  std::vector<int> prefix;  // its last slice is the position trained
  std::string parent;       // checkpoint of prefix minus its last slice
  std::string model_id;     // scopes the worker's slice cache
  // The prefix's slices (any order) by the SHA-256 of their encoding: what
  // a worker caches them by. Training rows are their union in ascending
  // sample-id order.
  std::vector<std::string> slice_digests;
  // On a worker: the slices named, from its cache.
  std::vector<std::shared_ptr<const storage::EncodedSlice>> slices;
  // From the coordinator: reads the named slices (some of slice_digests,
  // those a worker lacks), in that order. Aborted: a slice changed since
  // the position was chosen, so the position is stale.
  using SliceReader = std::function<absl::StatusOr<
      std::vector<std::shared_ptr<const storage::EncodedSlice>>>(
      absl::Span<const std::string> digests)>;
  SliceReader read_slices;
};

// The checkpoint, named by the SHA-256 of its bytes, that must answer for
// one shard of a prediction.
struct ShardCheckpointRef {
  int shard = 0;
  std::string checkpoint_sha256;  // lowercase hex
};

}  // namespace oubli

#endif  // OUBLI_COMMON_WORKER_REQUESTS_H_
