#include "coordinator/slice_generations.h"

#include <gtest/gtest.h>

namespace oubli::coordinator {
namespace {

TEST(SliceGenerationsTest, AStampChangesOnlyWithItsOwnSlices) {
  SliceGenerations generations(/*shards=*/2, /*slices=*/4);
  const SliceGenerations::Stamp prefix = generations.Take(0, {2, 0});
  EXPECT_FALSE(generations.Changed(prefix));
  generations.Bump(0, 1);  // same shard, another slice
  generations.Bump(1, 0);  // same slice index, another shard
  EXPECT_FALSE(generations.Changed(prefix));
  generations.Bump(0, 0);
  EXPECT_TRUE(generations.Changed(prefix));
  EXPECT_FALSE(generations.Changed(generations.Take(0, {2, 0})));
}

TEST(SliceGenerationsTest, BumpingAShardChangesEveryStampOfIt) {
  SliceGenerations generations(2, 3);
  const SliceGenerations::Stamp one = generations.Take(1, {2});
  const SliceGenerations::Stamp other = generations.Take(0, {0, 1, 2});
  generations.BumpShard(1);
  EXPECT_TRUE(generations.Changed(one));
  EXPECT_FALSE(generations.Changed(other));
}

TEST(SliceGenerationsTest, AnEmptyPrefixNeverChanges) {
  SliceGenerations generations(1, 2);
  const SliceGenerations::Stamp empty = generations.Take(0, {});
  generations.BumpShard(0);
  EXPECT_FALSE(generations.Changed(empty));
}

}  // namespace
}  // namespace oubli::coordinator
