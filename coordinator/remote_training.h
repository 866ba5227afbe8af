// The seams between the engine and worker processes: a RemoteTrainer
// trains positions, CheckpointReplicas keeps erasure-coded copies of
// checkpoints, ShardServing answers shard predictions. Over the cluster
// protocol, coordinator/worker_training, worker_chunks and worker_serving
// implement them on the worker pool. No gRPC and no torch here.
#ifndef OUBLI_COORDINATOR_REMOTE_TRAINING_H_
#define OUBLI_COORDINATOR_REMOTE_TRAINING_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/config.h"
#include "common/worker_requests.h"
#include "storage/encoded_slice.h"

namespace oubli::coordinator {

// One S3T position to train, self-contained: a worker needs nothing else.
using RemotePosition = PositionRequest;

struct RemoteResult {
  std::string checkpoint;
  int64_t samples = 0;
  int64_t steps = 0;
  std::string worker;  // who trained it, for logs
};

class RemoteTrainer {
 public:
  virtual ~RemoteTrainer() = default;

  // Live workers able to train for `environment`: how many positions may
  // usefully run at once. 0 means train locally.
  virtual int Capacity(const std::string& environment) = 0;

  // Trains on some live worker, moving to another if one dies or fails
  // transiently. Reads through position.read_slices only the slices the
  // worker lacks, and returns its errors as they are (Aborted: the
  // position is stale). Unavailable: no worker could take it (train
  // locally). Cancelled once `cancelled` returns true (polled). Other
  // errors are the position's own (InvalidArgument: corrupt parent) and
  // are final.
  virtual absl::StatusOr<RemoteResult> TrainPosition(
      const RemotePosition& position,
      const std::function<bool()>& cancelled) = 0;

  // Workers cache the slices they train on. Drops every cached slice of
  // `model_id` whose digest is not in `keep` on every live worker, and
  // makes each refuse uploads begun before this call. A worker that does
  // not confirm is declared dead (it drops all it holds before it
  // registers again, and by itself past the worker timeout). Call only
  // when no position that read the dropped slices is still running.
  // `reopened`: the model existed before this process, so workers may
  // hold slices an earlier coordinator sent. Unavailable while a worker
  // that stopped answering (or, when reopened, one not yet registered
  // again) may still hold some: call again later.
  virtual absl::Status DropStaleSlices(
      const std::string& model_id,
      const absl::flat_hash_set<std::string>& keep, bool reopened) = 0;
};

// Erasure-coded copies of checkpoints on worker disks, so a checkpoint the
// coordinator loses is rebuilt instead of retrained. The engine persists the
// manifests Protect returns (in its lineage DB) and hands them back.
class CheckpointReplicas {
 public:
  virtual ~CheckpointReplicas() = default;

  // Encodes `bytes` with `code` (automatic: the default for the live
  // chunk-holding workers), hands the manifest (a serialized
  // internal::ChunkManifest) to `persist` BEFORE storing anything, then
  // stores one chunk on each of k+m distinct holders: a crash or failure
  // half way leaves only chunks that a persisted manifest names, and the
  // caller Forgets them with that manifest. FailedPrecondition: too few
  // holders alive for the code (nothing persisted or stored); Unavailable:
  // a holder failed.
  virtual absl::Status Protect(
      const std::string& key, absl::string_view bytes,
      const ErasureCodeConfig& code,
      const std::function<absl::Status(const std::string& manifest)>&
          persist) = 0;
  // Whether enough chunk holders are alive now for Protect with `code`.
  virtual bool CanProtect(const ErasureCodeConfig& code) = 0;
  // Rebuilds the checkpoint from any k chunks whose CRC32C matches (a
  // corrupt or unreachable chunk counts as an erasure); the result's
  // SHA-256 is checked against the manifest. DataLoss when fewer than k
  // good chunks are reachable.
  virtual absl::StatusOr<std::string> Restore(const std::string& key,
                                              const std::string& manifest) = 0;
  // Re-places the chunks whose holders are dead onto live holders that hold
  // none of this checkpoint (regenerated from k good chunks), persisting the
  // new manifest through `persist` before storing anything. Returns how many
  // chunks were re-placed (0: nothing lost, or no spare holder).
  virtual absl::StatusOr<int> Repair(
      const std::string& key, const std::string& manifest,
      const std::function<absl::Status(const std::string& manifest)>&
          persist) = 0;
  // Destroys the checkpoint's chunks on every holder in the manifest.
  // Unavailable when a holder is not reachable now: keep the manifest and
  // call again later.
  virtual absl::Status Forget(const std::string& key,
                              const std::string& manifest) = 0;
};

// Shard predictions on workers. The caller names, per shard, the exact
// checkpoint (by SHA-256) that must answer, so a worker can never answer
// with a prefix that a deletion cut; a worker lacking it is sent the bytes.
class ShardServing {
 public:
  virtual ~ShardServing() = default;

  struct Query {
    std::string model_id;
    std::string config_text;  // ConfigToText
    std::string environment;  // only workers of this environment serve
    std::vector<ShardCheckpointRef> shards;
    // The checkpoint bytes of shards[i], read when a worker lacks them.
    std::function<absl::StatusOr<std::string>(size_t i)> checkpoint;
    absl::Span<const float> inputs;  // rows x input_size
    int64_t rows = 0;
    int64_t classes = 0;  // of the model: each answer is rows x classes
    // Sync: the model existed before this process, so workers may hold
    // copies an earlier coordinator had them load.
    bool reopened = false;
  };
  struct ShardResult {
    // Ok: rows x classes probabilities. Otherwise why no worker answered
    // (the caller computes the shard itself).
    absl::StatusOr<std::vector<float>> probabilities =
        absl::UnavailableError("not asked");
    std::string worker;  // name of the worker that answered
  };

  // Live workers able to serve `environment`; 0: serve locally.
  virtual int ServingCapacity(const std::string& environment) = 0;
  // One result per query shard, in order. Shards are spread over the live
  // workers of the environment (shard s on worker s mod n, stable while
  // membership is), each worker asked once, all in parallel.
  virtual std::vector<ShardResult> Predict(const Query& query) = 0;
  // Tells every live worker of query.environment which of query.shards it
  // serves (none, for some), so each drops every other checkpoint of the
  // model from memory; query.rows must be 0. A worker that does not confirm
  // is declared dead: it drops everything before it registers again, and
  // by itself once its heartbeats have failed for the coordinator's worker
  // timeout. Unavailable (call again later) while that may not have
  // happened yet: a worker that did not confirm, or that was asked to
  // serve the model and stopped answering less than twice the worker
  // timeout ago, or (query.reopened) workers of an earlier coordinator.
  virtual absl::Status Sync(const Query& query) = 0;
};

}  // namespace oubli::coordinator

#endif  // OUBLI_COORDINATOR_REMOTE_TRAINING_H_
