// What a model serves, as one immutable value: per shard the served prefix,
// its checkpoint and the model built from it, plus the model fingerprint.
// The engine builds a new snapshot whenever what a shard serves changes and
// swaps it in; Predict takes the current one and reads it without any
// engine lock, so it never waits for a writer's I/O (RocksDB's
// SuperVersion is the model). Torch stays out of this header.
#ifndef OUBLI_COORDINATOR_SERVED_SNAPSHOT_H_
#define OUBLI_COORDINATOR_SERVED_SNAPSHOT_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "coordinator/engine_types.h"

namespace oubli::ml {
class ShardModel;
}  // namespace oubli::ml

namespace oubli::coordinator {

// What one shard serves: the longest valid prefix of one sequence.
struct ServedModel {
  int sequence = -1;
  int length = 0;
  std::string key;  // the prefix's checkpoint key
  std::string checkpoint_sha256;
  std::shared_ptr<const ml::ShardModel> model;  // null: serves nothing
};

// The SHA-256 of what a served shard answers with; empty when it serves
// nothing.
const std::string& ServedSha(const ServedModel& served);

// A model's fingerprint: one checkpoint SHA-256 per shard (empty: none).
std::string ModelFingerprint(absl::Span<const std::string> shard_shas);

struct ServedSnapshot {
  // Per shard, in shard order: the public description (ServedShard::worker
  // empty) and what answers for it.
  std::vector<ServedShard> shards;
  std::vector<ServedModel> served;
  std::string fingerprint;  // ModelFingerprint of the served checkpoints
};

// The current snapshot. Get copies a pointer under a mutex held for nothing
// else, so readers wait for no I/O, and a reader keeps its snapshot (models
// included) alive for as long as it uses it, whatever is published after.
class PublishedSnapshot {
 public:
  PublishedSnapshot();
  std::shared_ptr<const ServedSnapshot> Get() const;
  // Callers serialize publications (the engine publishes under its mutex),
  // so the last one published is the newest.
  void Publish(std::shared_ptr<const ServedSnapshot> snapshot);

 private:
  mutable absl::Mutex mu_;
  std::shared_ptr<const ServedSnapshot> current_ ABSL_GUARDED_BY(mu_);
};

}  // namespace oubli::coordinator

#endif  // OUBLI_COORDINATOR_SERVED_SNAPSHOT_H_
