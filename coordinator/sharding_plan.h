// The sharding plan: which (shard, slice) a sample lives in, the S3T slice
// orders each shard trains, and the content keys that name prefix
// checkpoints.
#ifndef OUBLI_COORDINATOR_SHARDING_PLAN_H_
#define OUBLI_COORDINATOR_SHARDING_PLAN_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/config.h"
#include "common/types.h"

namespace oubli::coordinator {

// S3T slice orders for one shard. B <= L: B cyclic rotations of [0..L-1],
// each starting with a different slice. B > L: after the L rotations, keep a
// rotation's first `keep` slices (its existing prefix, shared and trained
// once) and rotate the rest, for keep = 1, 2, ...; e.g. L=4 adds
// [0,3,1,2], [1,0,2,3], ... InvalidArgument when B distinct orders of this
// form do not exist.
absl::StatusOr<std::vector<std::vector<int>>> SequenceOrders(int slices,
                                                             int sequences);

class ShardingPlan {
 public:
  static absl::StatusOr<ShardingPlan> Create(const ModelConfig& config);

  // A keyed hash of the sample's own id and the model seed: never depends on
  // other samples, so deleting one never moves another.
  SliceRef Assign(absl::string_view sample_id) const;

  int shards() const { return shards_; }
  int slices() const { return slices_; }
  const std::vector<std::vector<int>>& orders() const { return orders_; }

 private:
  ShardingPlan() = default;
  int shards_ = 0;
  int slices_ = 0;
  uint64_t seed_ = 0;
  std::vector<std::vector<int>> orders_;
};

// Digest of one slice's content: its sorted sample ids.
std::string SliceDigest(absl::Span<const std::string> sorted_ids);

// Content key of a prefix checkpoint: hash of the config fingerprint, shard,
// the prefix's slice order and the content digest of each of those slices.
// Equal keys <=> equal training inputs <=> (deterministic training) equal
// bytes, which is why unchanged prefixes are reused after a deletion.
std::string PrefixKey(absl::string_view config_fingerprint, int shard,
                      absl::Span<const int> prefix_order,
                      absl::Span<const std::string> slice_digests_by_slice);

// Expected compute to retrain after one deletion vs. full retraining, from
// the orders alone (cost of a prefix of length p = p/L shard-epochs): the
// theoretical speedup for a deletion in a uniformly random slice.
double TheoreticalUnlearnSpeedup(int shards,
                                 const std::vector<std::vector<int>>& orders,
                                 int slices);

}  // namespace oubli::coordinator

#endif  // OUBLI_COORDINATOR_SHARDING_PLAN_H_
