// Verify: trains each shard's served prefix from scratch on the data it
// holds now, in memory (fresh trainer, slices re-read from the store, no
// checkpoint reused), and compares the result bitwise with the checkpoint
// served. Deletions and ingests go on meanwhile: a shard's served
// checkpoint and data are taken as of one moment (see Verify).
#ifndef OUBLI_COORDINATOR_VERIFIER_H_
#define OUBLI_COORDINATOR_VERIFIER_H_

#include <functional>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/config.h"
#include "coordinator/engine_types.h"
#include "coordinator/model_base.h"
#include "coordinator/shard_set.h"
#include "coordinator/slice_generations.h"
#include "storage/lineage_store.h"

namespace oubli::coordinator {

class Verifier {
 public:
  // Every pointer outlives the verifier.
  struct Parts {
    const ModelConfig* config;
    const ModelBase* base;
    storage::LineageStore* store;
    const ShardGenerations* generations;
    // The engine's deletion lock (held by every deletion commit and
    // ingest), then its mutex and what it guards.
    absl::Mutex* deletion_mu;
    absl::Mutex* engine_mu;
    const ShardSet* shards ABSL_PT_GUARDED_BY(engine_mu);
    // Test seam: runs between capturing a shard's served checkpoint and
    // reading its data without the deletion lock. May be empty.
    std::function<void(int shard)> before_unlocked_read;
  };

  explicit Verifier(Parts parts) : p_(std::move(parts)) {}

  // A mismatch is a report (match false), not an error. Errors:
  // ResourceExhausted (memory), storage failures reading samples.
  absl::StatusOr<VerifyReport> Verify()
      ABSL_LOCKS_EXCLUDED(*p_.deletion_mu, *p_.engine_mu);

 private:
  const Parts p_;
};

}  // namespace oubli::coordinator

#endif  // OUBLI_COORDINATOR_VERIFIER_H_
