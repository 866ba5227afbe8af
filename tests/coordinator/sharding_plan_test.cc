#include "coordinator/sharding_plan.h"

#include <algorithm>
#include <map>
#include <set>
#include <tuple>

#include <gtest/gtest.h>

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

TEST(ShardingPlanTest, RiskProfilePutsHintedOwnersInTheRiskSlices) {
  ModelConfig config;
  config.shards = 3;
  config.slices = 4;
  config.placement.risk.slices = 2;
  config.placement.risk.threshold = 0.5;
  auto plan = ShardingPlan::Create(config);
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
  config.placement.risk.slices = 0;
  auto plain = ShardingPlan::Create(config);
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->Assign(Owned("a", "o", 1.0f)),
            plain->Assign(Owned("a", "o", 0.0f)));
}

// risk.shards: high-risk owners only in the risk slices of the first
// shards; everyone else spread evenly over every other cell, the other
// shards' risk slices included, so no cell is left empty by design.
TEST(ShardingPlanTest, RiskShardsKeepHighRiskOwnersInTheirShards) {
  ModelConfig config;
  config.shards = 5;
  config.slices = 4;
  config.placement.risk.slices = 2;
  config.placement.risk.shards = 3;
  auto plan = ShardingPlan::Create(config);
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
  ModelConfig config;
  config.shards = 5;
  config.slices = 4;
  config.placement.risk.slices = 1;
  auto plan = ShardingPlan::Create(config);
  ASSERT_TRUE(plan.ok()) << plan.status();
  const std::vector<std::tuple<std::string, float, SliceRef>> earlier = {
      {"o0", 0.9f, {1, 3}}, {"o1", 0.1f, {2, 2}}, {"o2", 0.9f, {2, 3}},
      {"o3", 0.1f, {1, 0}}, {"o4", 0.9f, {0, 3}}, {"o5", 0.1f, {3, 0}}};
  for (const auto& [owner, risk, cell] : earlier) {
    EXPECT_EQ(plan->Assign(Owned(owner, owner, risk)), cell) << owner;
  }
}

}  // namespace
}  // namespace oubli::coordinator
