#include "coordinator/sharding_plan.h"

#include <set>

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

TEST(ShardingPlanTest, AssignmentDependsOnlyOnIdAndSeed) {
  ModelConfig config;
  config.shards = 4;
  config.slices = 4;
  auto plan = ShardingPlan::Create(config);
  ASSERT_TRUE(plan.ok());
  std::set<SliceRef> used;
  for (int i = 0; i < 400; ++i) {
    const std::string id = "s" + std::to_string(i);
    const SliceRef where = plan->Assign(id);
    EXPECT_EQ(where, plan->Assign(id));
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
    const std::string id = "s" + std::to_string(i);
    moved += !(plan->Assign(id) == reseeded->Assign(id));
  }
  EXPECT_GT(moved, 50);
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
