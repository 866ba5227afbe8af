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

// Expected lost service of one deletion under `order`s: for a deletion in
// slice j (probability slice_probability[j]), the served prefix falls from
// L to the longest surviving prefix of any order, and stays there while
// every prefix holding j is retrained (shared prefixes once, a prefix of
// length p costing p equal slices). Sum over j of probability x (L -
// served) x retrain cost. Lower keeps longer prefixes served for longer.
double ExpectedServiceLoss(const std::vector<std::vector<int>>& orders,
                           absl::Span<const double> slice_probability);

// S3T orders under a deletion prior. The last `risk.slices` slices (where
// high-risk samples are placed) each receive risk.deletion_share /
// risk.slices of deletions, the others share the rest. Every order trains
// the risk slices last, so a high-risk deletion never cuts a sequence
// below L - risk.slices and retrains only its tail, however many arrive
// together. Candidates: each S3T order of the low-risk slices followed by a
// rotation of the risk slices; B of them are picked greedily to minimise
// ExpectedServiceLoss (the first candidate wins ties, so the choice is
// deterministic). Every shard trains the same orders: with risk.shards, the
// other shards' risk slices hold low-risk samples and are simply trained
// last, where a deletion cuts only the tail. Without a profile:
// SequenceOrders. InvalidArgument when fewer than B candidates exist.
absl::StatusOr<std::vector<std::vector<int>>> RiskAwareOrders(
    int slices, int sequences, const RiskProfile& risk);

class ShardingPlan {
 public:
  static absl::StatusOr<ShardingPlan> Create(const ModelConfig& config);

  // A keyed hash of the model seed and the sample's owner (kOwner; the id
  // when the owner is empty) or its id (kSample), so every sample of one
  // owner shares a cell. With a risk profile, a sample whose deletion_risk
  // reaches the threshold gets one of the risk slices (the last ones),
  // any other one of the rest; with risk.shards, high-risk samples stay in
  // the risk slices of the first risk.shards shards and the others fill
  // every remaining cell. Reads only the sample's own fields, so deleting
  // one sample or owner never moves another.
  SliceRef Assign(const Sample& sample) const;

  int shards() const { return shards_; }
  int slices() const { return slices_; }
  const std::vector<std::vector<int>>& orders() const { return orders_; }

 private:
  ShardingPlan() = default;
  // Assign with risk.shards > 0, from the placement hash.
  SliceRef AssignConcentrated(uint64_t h, bool high_risk) const;
  int shards_ = 0;
  int slices_ = 0;
  uint64_t seed_ = 0;
  PlacementConfig placement_;
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
