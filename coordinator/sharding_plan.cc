#include "coordinator/sharding_plan.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/hash.h"
#include "common/status_macros.h"

namespace oubli::coordinator {

namespace {

// Up to `limit` distinct S3T orders of [0..slices-1]: rotations first,
// then rotations that keep a prefix and rotate the rest.
std::vector<std::vector<int>> S3tOrders(int slices, int limit) {
  std::vector<std::vector<int>> rotations;
  for (int r = 0; r < slices; ++r) {
    std::vector<int> order(slices);
    for (int i = 0; i < slices; ++i) order[i] = (r + i) % slices;
    rotations.push_back(std::move(order));
  }
  std::vector<std::vector<int>> orders;
  std::set<std::vector<int>> seen;
  auto add = [&](std::vector<int> order) {
    if (static_cast<int>(orders.size()) < limit &&
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
  return orders;
}

absl::Status TooManySequences(int sequences, size_t available, int slices) {
  return absl::InvalidArgumentError(absl::StrCat(
      "sequences=", sequences, " exceeds the ", available,
      " distinct S3T slice orders available for slices=", slices));
}

}  // namespace

absl::StatusOr<std::vector<std::vector<int>>> SequenceOrders(int slices,
                                                             int sequences) {
  if (slices < 1 || sequences < 1) {
    return absl::InvalidArgumentError("slices and sequences must be >= 1");
  }
  std::vector<std::vector<int>> orders = S3tOrders(slices, sequences);
  if (static_cast<int>(orders.size()) < sequences) {
    return TooManySequences(sequences, orders.size(), slices);
  }
  return orders;
}

double ExpectedServiceLoss(const std::vector<std::vector<int>>& orders,
                           absl::Span<const double> slice_probability) {
  const int slices = static_cast<int>(slice_probability.size());
  std::set<std::vector<int>> prefixes;
  for (const auto& order : orders) {
    for (size_t p = 1; p <= order.size(); ++p) {
      prefixes.insert(std::vector<int>(order.begin(), order.begin() + p));
    }
  }
  double loss = 0;
  for (int j = 0; j < slices; ++j) {
    if (slice_probability[j] == 0) continue;
    int served = 0;
    for (const auto& order : orders) {
      const int position = static_cast<int>(
          std::find(order.begin(), order.end(), j) - order.begin());
      served = std::max(served, position);
    }
    double retrain = 0;
    for (const auto& prefix : prefixes) {
      if (std::find(prefix.begin(), prefix.end(), j) != prefix.end()) {
        retrain += static_cast<double>(prefix.size());
      }
    }
    loss += slice_probability[j] * (slices - served) * retrain;
  }
  return loss;
}

absl::StatusOr<std::vector<std::vector<int>>> RiskAwareOrders(
    int slices, int sequences, const RiskProfile& risk) {
  if (!risk.enabled()) return SequenceOrders(slices, sequences);
  if (sequences < 1 || risk.slices >= slices) {
    return absl::InvalidArgumentError(
        "risk-aware orders need sequences >= 1 and risk slices < slices");
  }
  const int safe = slices - risk.slices;
  std::vector<double> probability(slices);
  for (int j = 0; j < slices; ++j) {
    probability[j] = j < safe ? (1 - risk.deletion_share) / safe
                              : risk.deletion_share / risk.slices;
  }
  // At most kCandidates candidates, each scored in O(L^2 log) per greedy
  // round: model creation stays fast for any valid config.
  constexpr int kCandidates = 64;
  std::vector<std::vector<int>> candidates;
  const int heads = std::max(1, kCandidates / risk.slices);
  for (const auto& head : S3tOrders(safe, heads)) {
    for (int rotation = 0; rotation < risk.slices; ++rotation) {
      std::vector<int> order = head;
      for (int i = 0; i < risk.slices; ++i) {
        order.push_back(safe + (rotation + i) % risk.slices);
      }
      // Distinct heads times distinct rotations: distinct orders.
      candidates.push_back(std::move(order));
    }
  }
  if (static_cast<int>(candidates.size()) < sequences) {
    return absl::InvalidArgumentError(absl::StrCat(
        "sequences=", sequences, " exceeds the ", candidates.size(),
        " distinct slice orders that train the ", risk.slices,
        " risk slice(s) last, for slices=", slices));
  }
  // ExpectedServiceLoss of the chosen orders plus one candidate, kept up to
  // date as orders are chosen instead of recomputed from scratch.
  std::set<std::vector<int>> chosen_prefixes;
  std::vector<int> served(slices, 0);       // longest surviving prefix
  std::vector<double> retrain(slices, 0);   // cost of the prefixes holding j
  auto with = [&](const std::vector<int>& order, bool keep) {
    std::vector<double> cost = retrain;
    std::vector<int> length = served;
    for (int p = 1; p <= slices; ++p) {
      std::vector<int> prefix(order.begin(), order.begin() + p);
      if (chosen_prefixes.contains(prefix)) continue;
      for (int j : prefix) cost[j] += p;
      if (keep) chosen_prefixes.insert(std::move(prefix));
    }
    for (int position = 0; position < slices; ++position) {
      length[order[position]] = std::max(length[order[position]], position);
    }
    double loss = 0;
    for (int j = 0; j < slices; ++j) {
      loss += probability[j] * (slices - length[j]) * cost[j];
    }
    if (keep) {
      retrain = std::move(cost);
      served = std::move(length);
    }
    return loss;
  };
  std::vector<std::vector<int>> chosen;
  std::vector<bool> taken(candidates.size(), false);
  while (static_cast<int>(chosen.size()) < sequences) {
    size_t best = candidates.size();
    double best_loss = 0;
    for (size_t c = 0; c < candidates.size(); ++c) {
      if (taken[c]) continue;
      const double loss = with(candidates[c], /*keep=*/false);
      if (best == candidates.size() || loss < best_loss) {
        best = c;
        best_loss = loss;
      }
    }
    taken[best] = true;
    with(candidates[best], /*keep=*/true);
    chosen.push_back(candidates[best]);
  }
  return chosen;
}

absl::StatusOr<ShardingPlan> ShardingPlan::Create(const ModelConfig& config) {
  OUBLI_RETURN_IF_ERROR(ValidateConfig(config));
  ShardingPlan plan;
  plan.shards_ = config.shards;
  plan.slices_ = config.slices;
  plan.seed_ = config.seed;
  plan.placement_ = config.placement;
  OUBLI_ASSIGN_OR_RETURN(
      plan.orders_, RiskAwareOrders(config.slices, config.sequences,
                                    config.placement.risk));
  return plan;
}

SliceRef ShardingPlan::Assign(const Sample& sample) const {
  const bool by_owner =
      placement_.by == Placement::kOwner && !sample.owner.empty();
  // kSample's key and domain are those every model used before placement
  // existed, so its cells (and checkpoint keys) are unchanged.
  const uint64_t h =
      by_owner ? KeyedHash64(DeriveSeed(seed_, "assign-owner", {}), sample.owner)
               : KeyedHash64(DeriveSeed(seed_, "assign", {}), sample.id);
  const RiskProfile& risk = placement_.risk;
  const uint64_t shards = static_cast<uint64_t>(shards_);
  if (risk.enabled() && risk.shards > 0) {
    return AssignConcentrated(h, sample.deletion_risk >= risk.threshold);
  }
  const uint64_t rest = h / shards;
  SliceRef where;
  where.shard = static_cast<int32_t>(h % shards);
  if (!risk.enabled()) {
    where.slice = static_cast<int32_t>(rest % static_cast<uint64_t>(slices_));
  } else if (sample.deletion_risk >= risk.threshold) {
    const int safe = slices_ - risk.slices;
    where.slice = static_cast<int32_t>(
        safe + rest % static_cast<uint64_t>(risk.slices));
  } else {
    const int safe = slices_ - risk.slices;
    where.slice = static_cast<int32_t>(rest % static_cast<uint64_t>(safe));
  }
  return where;
}

SliceRef ShardingPlan::AssignConcentrated(uint64_t h, bool high_risk) const {
  const int risky_shards = placement_.risk.shards;
  const int risk_slices = placement_.risk.slices;
  const int safe = slices_ - risk_slices;
  SliceRef where;
  if (high_risk) {
    // One of the risky_shards x risk_slices risk cells.
    const int cell =
        static_cast<int>(h % static_cast<uint64_t>(risky_shards * risk_slices));
    where.shard = cell / risk_slices;
    where.slice = safe + cell % risk_slices;
    return where;
  }
  // One of the other cells, uniformly: the safe slices of the risky
  // shards, then every slice of the remaining shards.
  const int in_risky_shards = risky_shards * safe;
  const int cells = in_risky_shards + (shards_ - risky_shards) * slices_;
  const int cell = static_cast<int>(h % static_cast<uint64_t>(cells));
  if (cell < in_risky_shards) {
    where.shard = cell / safe;
    where.slice = cell % safe;
  } else {
    where.shard = risky_shards + (cell - in_risky_shards) / slices_;
    where.slice = (cell - in_risky_shards) % slices_;
  }
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
