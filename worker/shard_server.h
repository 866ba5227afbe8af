// Serving shard predictions on a worker: what oubli-worker does when the
// coordinator fans a Predict out (worker/worker_service.h is its gRPC
// adapter). No torch in this header.
//
// Checkpoints are held in memory only, one slot per (model, shard), and
// named by the SHA-256 of their bytes: a request says which checkpoint each
// shard must answer with, so a slot holding anything else (a prefix a
// deletion cut) never answers. Nothing served is ever written to disk, so a
// purge has nothing to chase here beyond the memory a later request drops.
#ifndef OUBLI_WORKER_SHARD_SERVER_H_
#define OUBLI_WORKER_SHARD_SERVER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/worker_requests.h"

namespace oubli::ml {
class BaseWeightsCache;
}  // namespace oubli::ml

namespace oubli::worker {

struct ShardAnswer {
  int shard = 0;
  bool loaded = false;  // false: the named checkpoint is not held here
  std::vector<float> probabilities;  // rows x classes when loaded
};

struct ShardPredictions {
  int classes = 0;
  std::vector<ShardAnswer> shards;  // in request order
};

class ShardServer {
 public:
  // Base weights come from `bases` (shared with the worker's trainers);
  // nullptr: a cache of its own.
  explicit ShardServer(std::shared_ptr<ml::BaseWeightsCache> bases = nullptr);
  ~ShardServer();
  ShardServer(const ShardServer&) = delete;
  ShardServer& operator=(const ShardServer&) = delete;

  // Puts `checkpoint` into the slot of (model_id, shard), replacing what
  // was there. InvalidArgument: the bytes do not hash to `sha256`, or do
  // not fit the config. FailedPrecondition: other numeric environment,
  // config not understood or base weights not loadable here.
  absl::Status Load(absl::string_view model_id, absl::string_view config_text,
                    absl::string_view environment, int shard,
                    absl::string_view sha256, absl::string_view checkpoint);

  // Answers `rows` inputs (rows x input_size floats) with each named
  // shard's checkpoint, after dropping every slot of `model_id` that does
  // not hold a named checkpoint. A shard whose slot held another checkpoint
  // (now dropped) or none is reported not loaded. rows = 0 only synchronises
  // the slots. InvalidArgument: input size, or a shard named twice;
  // FailedPrecondition as for Load.
  absl::StatusOr<ShardPredictions> Predict(
      absl::string_view model_id, absl::string_view config_text,
      absl::string_view environment,
      absl::Span<const ShardCheckpointRef> shards,
      absl::Span<const float> inputs, int64_t rows);

  // Checkpoints held now, over all models (for tests and metrics).
  int loaded() const;
  // Drops every slot of every model.
  void DropAll();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace oubli::worker

#endif  // OUBLI_WORKER_SHARD_SERVER_H_
