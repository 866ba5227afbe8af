#include "coordinator/sharding_plan.h"

#include <algorithm>
#include <map>
#include <set>
#include <tuple>

#include <gtest/gtest.h>

#include "absl/status/statusor.h"

namespace oubli::coordinator {
namespace {

using Orders = std::vector<std::vector<int>>;

TEST(SequenceOrdersTest, CyclicRotationsUpToL) {
  EXPECT_EQ(*SequenceOrders(4, 2), (Orders{{0, 1, 2, 3}, {1, 2, 3, 0}}));
  EXPECT_EQ(*SequenceOrders(3, 3), (Orders{{0, 1, 2}, {1, 2, 0}, {2, 0, 1}}));
  EXPECT_EQ(*SequenceOrders(1, 1), (Orders{{0}}));
}

TEST(SequenceOrdersTest, BeyondLKeepsPrefixesAndRotatesSuffixes) {
  auto orders = SequenceOrders(4, 8);
  ASSERT_TRUE(orders.ok()) << orders.status();
  ASSERT_EQ(orders->size(), 8u);
  EXPECT_EQ((*orders)[4], (std::vector<int>{0, 3, 1, 2}));
  std::set<std::vector<int>> distinct(orders->begin(), orders->end());
  EXPECT_EQ(distinct.size(), 8u);
  for (const auto& order : *orders) {
    EXPECT_EQ(std::set<int>(order.begin(), order.end()),
              (std::set<int>{0, 1, 2, 3}));
  }
}

TEST(SequenceOrdersTest, TooManySequencesIsAnError) {
  EXPECT_EQ(SequenceOrders(1, 2).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(SequenceOrders(2, 3).ok());
}

Sample Owned(std::string id, std::string owner, float risk = 0) {
  Sample s;
  s.id = std::move(id);
  s.owner = std::move(owner);
  s.deletion_risk = risk;
  return s;
}

TEST(ShardingPlanTest, SamplePlacementDependsOnlyOnIdAndSeed) {
  ModelConfig config;
  config.placement.by = Placement::kSample;
  config.shards = 4;
  config.slices = 4;
  auto plan = ShardingPlan::Create(config);
  ASSERT_TRUE(plan.ok());
  std::set<SliceRef> used;
  for (int i = 0; i < 400; ++i) {
    const std::string id = "s" + std::to_string(i);
    const SliceRef where = plan->Assign(Owned(id, "one-owner"));
    EXPECT_EQ(where, plan->Assign(Owned(id, "another", 0.9f)));
    EXPECT_GE(where.shard, 0);
    EXPECT_LT(where.shard, 4);
    EXPECT_GE(where.slice, 0);
    EXPECT_LT(where.slice, 4);
    used.insert(where);
  }
  EXPECT_EQ(used.size(), 16u);  // every (shard, slice) gets samples
  config.seed = 2;
  auto reseeded = ShardingPlan::Create(config);
  int moved = 0;
  for (int i = 0; i < 100; ++i) {
    const Sample sample = Owned("s" + std::to_string(i), "o");
    moved += !(plan->Assign(sample) == reseeded->Assign(sample));
  }
  EXPECT_GT(moved, 50);
}

// Cells of models made before placement existed must not move: these are
// the cells the original per-id hash gave (seed 1, S=4, L=4), computed
// with the code of that release.
const std::vector<SliceRef> kOriginalCells = {{3, 3}, {0, 0}, {2, 1}};

TEST(ShardingPlanTest, SamplePlacementKeepsTheOriginalCells) {
  ModelConfig config;
  config.placement.by = Placement::kSample;
  auto plan = ShardingPlan::Create(config);
  ASSERT_TRUE(plan.ok());
  std::vector<SliceRef> got;
  for (const char* id : {"a", "sample-1000", "s17"}) {
    got.push_back(plan->Assign(Owned(id, "o")));
  }
  EXPECT_EQ(got, kOriginalCells);
}

TEST(ShardingPlanTest, OwnerPlacementKeepsAnOwnerInOneCell) {
  ModelConfig config;  // owner placement is the default
  ASSERT_EQ(config.placement.by, Placement::kOwner);
  config.shards = 4;
  config.slices = 4;
  auto plan = ShardingPlan::Create(config);
  ASSERT_TRUE(plan.ok());
  std::set<SliceRef> used;
  for (int owner = 0; owner < 200; ++owner) {
    const std::string name = "owner-" + std::to_string(owner);
    const SliceRef cell = plan->Assign(Owned("x" + name, name));
    for (int i = 0; i < 5; ++i) {
      EXPECT_EQ(plan->Assign(Owned(name + "/" + std::to_string(i), name)),
                cell);
    }
    used.insert(cell);
  }
  EXPECT_EQ(used.size(), 16u);  // owners still spread over every cell
  // Without an owner a sample falls back to its id, as sample placement.
  ModelConfig by_sample = config;
  by_sample.placement.by = Placement::kSample;
  auto sample_plan = ShardingPlan::Create(by_sample);
  ASSERT_TRUE(sample_plan.ok());
  for (int i = 0; i < 50; ++i) {
    const Sample orphan = Owned("s" + std::to_string(i), "");
    EXPECT_EQ(plan->Assign(orphan), sample_plan->Assign(orphan));
  }
}

// A plan of `shards` x `slices` whose last `risk_slices` slices take the
// samples with deletion_risk >= 0.5, in the first `risk_shards` shards
// (0: every shard).
absl::StatusOr<ShardingPlan> RiskPlan(int shards, int slices, int risk_slices,
                                      int risk_shards = 0) {
  ModelConfig config;
  config.shards = shards;
  config.slices = slices;
  config.placement.risk.slices = risk_slices;
  config.placement.risk.threshold = 0.5;
  config.placement.risk.shards = risk_shards;
  return ShardingPlan::Create(config);
}

TEST(ShardingPlanTest, RiskProfilePutsHintedOwnersInTheRiskSlices) {
  auto plan = RiskPlan(3, 4, 2);
  ASSERT_TRUE(plan.ok()) << plan.status();
  std::set<int> risky_slices, safe_slices;
  for (int owner = 0; owner < 300; ++owner) {
    const std::string name = "o" + std::to_string(owner);
    const float risk = owner % 3 == 0 ? 0.5f : 0.49f;
    const SliceRef cell = plan->Assign(Owned(name, name, risk));
    (risk >= 0.5f ? risky_slices : safe_slices).insert(cell.slice);
  }
  EXPECT_EQ(risky_slices, (std::set<int>{2, 3}));
  EXPECT_EQ(safe_slices, (std::set<int>{0, 1}));
  // Without a profile the hint is ignored.
  auto plain = RiskPlan(3, 4, 0);
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->Assign(Owned("a", "o", 1.0f)),
            plain->Assign(Owned("a", "o", 0.0f)));
}

// risk.shards: high-risk owners only in the risk slices of the first
// shards; everyone else spread evenly over every other cell, the other
// shards' risk slices included, so no cell is left empty by design.
TEST(ShardingPlanTest, RiskShardsKeepHighRiskOwnersInTheirShards) {
  auto plan = RiskPlan(5, 4, 2, 3);
  ASSERT_TRUE(plan.ok()) << plan.status();
  std::map<std::pair<int, int>, int> risky_cells, safe_cells;
  constexpr int kOwners = 4000;
  for (int owner = 0; owner < kOwners; ++owner) {
    const std::string name = "o" + std::to_string(owner);
    const bool risky = owner % 4 == 0;
    const SliceRef cell = plan->Assign(Owned(name, name, risky ? 0.9f : 0.1f));
    ++(risky ? risky_cells : safe_cells)[{cell.shard, cell.slice}];
    // Every sample of the owner lands with it.
    EXPECT_EQ(plan->Assign(Owned(name + "-b", name, risky ? 0.9f : 0.1f)),
              cell);
  }
  std::set<std::pair<int, int>> risky_seen, safe_seen, expected_safe;
  for (const auto& [cell, n] : risky_cells) risky_seen.insert(cell);
  for (const auto& [cell, n] : safe_cells) safe_seen.insert(cell);
  EXPECT_EQ(risky_seen, (std::set<std::pair<int, int>>{
                            {0, 2}, {0, 3}, {1, 2}, {1, 3}, {2, 2}, {2, 3}}));
  for (int shard = 0; shard < 5; ++shard) {
    for (int slice = 0; slice < 4; ++slice) {
      if (shard >= 3 || slice < 2) expected_safe.insert({shard, slice});
    }
  }
  EXPECT_EQ(safe_seen, expected_safe);
  // Evenly: 3000 low-risk owners over 14 cells, 1000 high-risk over 6.
  for (const auto& [cell, n] : safe_cells) {
    EXPECT_NEAR(n, 3000.0 / 14, 3000.0 / 14 * 0.3) << cell.first << ","
                                                   << cell.second;
  }
  for (const auto& [cell, n] : risky_cells) {
    EXPECT_NEAR(n, 1000.0 / 6, 1000.0 / 6 * 0.3) << cell.first << ","
                                                 << cell.second;
  }
}

// risk.shards = 0 places exactly as risk profiles did before the field
// existed: these cells were computed with that release's code.
TEST(ShardingPlanTest, RiskShardsZeroKeepsTheEarlierCells) {
  auto plan = RiskPlan(5, 4, 1);
  ASSERT_TRUE(plan.ok()) << plan.status();
  const std::vector<std::tuple<std::string, float, SliceRef>> earlier = {
      {"o0", 0.9f, {1, 3}}, {"o1", 0.1f, {2, 2}}, {"o2", 0.9f, {2, 3}},
      {"o3", 0.1f, {1, 0}}, {"o4", 0.9f, {0, 3}}, {"o5", 0.1f, {3, 0}}};
  for (const auto& [owner, risk, cell] : earlier) {
    EXPECT_EQ(plan->Assign(Owned(owner, owner, risk)), cell) << owner;
  }
}

TEST(RiskAwareOrdersTest, RiskSlicesComeLastAndLossBeatsPlainRotations) {
  RiskProfile risk;
  risk.slices = 1;
  risk.deletion_share = 0.7;
  auto orders = RiskAwareOrders(4, 2, risk);
  ASSERT_TRUE(orders.ok()) << orders.status();
  ASSERT_EQ(orders->size(), 2u);
  EXPECT_NE((*orders)[0], (*orders)[1]);
  for (const auto& order : *orders) {
    EXPECT_EQ(order.back(), 3);
    EXPECT_EQ(std::set<int>(order.begin(), order.end()),
              (std::set<int>{0, 1, 2, 3}));
  }
  const std::vector<double> prior = {0.1, 0.1, 0.1, 0.7};
  EXPECT_LT(ExpectedServiceLoss(*orders, prior),
            ExpectedServiceLoss(*SequenceOrders(4, 2), prior));
  // Off: exactly the S3T orders.
  EXPECT_EQ(*RiskAwareOrders(4, 2, RiskProfile{}), *SequenceOrders(4, 2));
  // More sequences than orders with the risk slice last (L=3: 2 of them).
  EXPECT_TRUE(RiskAwareOrders(3, 2, RiskProfile{1}).ok());
  const absl::Status too_many = RiskAwareOrders(3, 3, RiskProfile{1}).status();
  EXPECT_EQ(too_many.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(too_many.message().find("risk slice"), std::string::npos);
}

// The largest profile a config allows still picks its orders at once
// (the greedy choice is bounded, not exponential in L or B).
TEST(RiskAwareOrdersTest, LargestConfigIsCheap) {
  RiskProfile risk;
  risk.slices = 32;
  auto orders = RiskAwareOrders(64, 64, risk);
  ASSERT_TRUE(orders.ok()) << orders.status();
  EXPECT_EQ(orders->size(), 64u);
  for (const auto& order : *orders) {
    EXPECT_GE(*std::min_element(order.end() - 32, order.end()), 32);
  }
}

TEST(RiskAwareOrdersTest, ExpectedServiceLossByHand) {
  // One order [0, 1]: a deletion in 0 serves 0 of 2 while [0] and [0, 1]
  // retrain (cost 1 + 2); in 1 it serves 1 while [0, 1] retrains (cost 2).
  EXPECT_DOUBLE_EQ(ExpectedServiceLoss({{0, 1}}, std::vector<double>{1, 0}),
                   2.0 * 3);
  EXPECT_DOUBLE_EQ(ExpectedServiceLoss({{0, 1}}, std::vector<double>{0, 1}),
                   1.0 * 2);
}

TEST(PrefixKeyTest, DependsOnlyOnPrefixContent) {
  std::vector<std::string> digests = {"d0", "d1", "d2"};
  const std::vector<int> prefix = {1, 0};
  const std::string key = PrefixKey("cfg", 0, prefix, digests);
  digests[2] = "changed";  // not in the prefix
  EXPECT_EQ(PrefixKey("cfg", 0, prefix, digests), key);
  digests[0] = "changed";
  EXPECT_NE(PrefixKey("cfg", 0, prefix, digests), key);
  EXPECT_NE(PrefixKey("cfg", 1, prefix, digests),
            PrefixKey("cfg", 0, prefix, digests));
  EXPECT_NE(PrefixKey("cfg", 0, std::vector<int>{0, 1}, digests),
            PrefixKey("cfg", 0, prefix, digests));
  EXPECT_NE(SliceDigest({"a", "b"}), SliceDigest({"ab"}));
}

TEST(TheoreticalSpeedupTest, MatchesHandComputedCases) {
  // L = 1: a deletion retrains one of S shards.
  EXPECT_DOUBLE_EQ(TheoreticalUnlearnSpeedup(4, {{0}}, 1), 4.0);
  // L = 4, one order: full = 2.5 shard-epochs per shard; expected retrain =
  // (2.5 + 2.25 + 1.75 + 1.0) / 4 = 1.875.
  EXPECT_DOUBLE_EQ(TheoreticalUnlearnSpeedup(1, {{0, 1, 2, 3}}, 4),
                   2.5 / 1.875);
}

}  // namespace
}  // namespace oubli::coordinator
