#include "coordinator/sharding_plan.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/hash.h"
#include "common/status_macros.h"

namespace oubli::coordinator {

absl::StatusOr<std::vector<std::vector<int>>> SequenceOrders(int slices,
                                                             int sequences) {
  if (slices < 1 || sequences < 1) {
    return absl::InvalidArgumentError("slices and sequences must be >= 1");
  }
  std::vector<std::vector<int>> rotations;
  for (int r = 0; r < slices; ++r) {
    std::vector<int> order(slices);
    for (int i = 0; i < slices; ++i) order[i] = (r + i) % slices;
    rotations.push_back(std::move(order));
  }
  std::vector<std::vector<int>> orders;
  std::set<std::vector<int>> seen;
  auto add = [&](std::vector<int> order) {
    if (static_cast<int>(orders.size()) < sequences &&
        seen.insert(order).second) {
      orders.push_back(std::move(order));
    }
  };
  for (const auto& rotation : rotations) add(rotation);
  // Keep a shared prefix, rotate the suffix right by `shift`.
  for (int keep = 1; keep + 2 <= slices; ++keep) {
    const int suffix = slices - keep;
    for (int shift = 1; shift < suffix; ++shift) {
      for (const auto& rotation : rotations) {
        std::vector<int> order(rotation.begin(), rotation.begin() + keep);
        for (int i = 0; i < suffix; ++i) {
          order.push_back(rotation[keep + (i - shift + suffix) % suffix]);
        }
        add(std::move(order));
      }
    }
  }
  if (static_cast<int>(orders.size()) < sequences) {
    return absl::InvalidArgumentError(absl::StrCat(
        "sequences=", sequences, " exceeds the ", orders.size(),
        " distinct S3T slice orders available for slices=", slices));
  }
  return orders;
}

absl::StatusOr<ShardingPlan> ShardingPlan::Create(const ModelConfig& config) {
  OUBLI_RETURN_IF_ERROR(ValidateConfig(config));
  ShardingPlan plan;
  plan.shards_ = config.shards;
  plan.slices_ = config.slices;
  plan.seed_ = config.seed;
  OUBLI_ASSIGN_OR_RETURN(plan.orders_,
                         SequenceOrders(config.slices, config.sequences));
  return plan;
}

SliceRef ShardingPlan::Assign(absl::string_view sample_id) const {
  const uint64_t h =
      KeyedHash64(DeriveSeed(seed_, "assign", {}), sample_id);
  SliceRef where;
  where.shard = static_cast<int32_t>(h % static_cast<uint64_t>(shards_));
  where.slice = static_cast<int32_t>((h / static_cast<uint64_t>(shards_)) %
                                     static_cast<uint64_t>(slices_));
  return where;
}

std::string SliceDigest(absl::Span<const std::string> sorted_ids) {
  Sha256 h;
  h.AddField("oubli.slice.v1").AddU64(sorted_ids.size());
  for (const std::string& id : sorted_ids) h.AddField(id);
  return h.FinishHex();
}

std::string PrefixKey(absl::string_view config_fingerprint, int shard,
                      absl::Span<const int> prefix_order,
                      absl::Span<const std::string> slice_digests_by_slice) {
  Sha256 h;
  h.AddField("oubli.prefix.v1")
      .AddField(config_fingerprint)
      .AddU64(static_cast<uint64_t>(shard))
      .AddU64(prefix_order.size());
  for (int slice : prefix_order) {
    h.AddU64(static_cast<uint64_t>(slice));
    h.AddField(slice_digests_by_slice[slice]);
  }
  return h.FinishHex();
}

double TheoreticalUnlearnSpeedup(int shards,
                                 const std::vector<std::vector<int>>& orders,
                                 int slices) {
  // Unique prefixes (shared ones are trained once) and their costs.
  std::set<std::vector<int>> prefixes;
  for (const auto& order : orders) {
    for (size_t p = 1; p <= order.size(); ++p) {
      prefixes.insert(std::vector<int>(order.begin(), order.begin() + p));
    }
  }
  double full_shard_cost = 0;
  for (const auto& prefix : prefixes) {
    full_shard_cost += static_cast<double>(prefix.size()) / slices;
  }
  // A deletion in slice j invalidates every prefix containing j, in one
  // shard; averaged over j.
  double expected_retrain = 0;
  for (int j = 0; j < slices; ++j) {
    for (const auto& prefix : prefixes) {
      if (std::find(prefix.begin(), prefix.end(), j) != prefix.end()) {
        expected_retrain += static_cast<double>(prefix.size()) / slices;
      }
    }
  }
  expected_retrain /= slices;
  return shards * full_shard_cost / expected_retrain;
}

}  // namespace oubli::coordinator
