#include "coordinator/position_choice.h"

#include <gtest/gtest.h>

namespace oubli::coordinator {
namespace {

void ExpectNext(const std::vector<int>& valid, int sequence, int length) {
  const std::optional<NextPosition> next = ChooseNextPosition(valid, 4);
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(next->sequence, sequence);
  EXPECT_EQ(next->length, length);
}

TEST(PositionChoiceTest, TheLongestValidPrefixGrowsFirst) {
  ExpectNext({1, 3}, 1, 4);
  ExpectNext({2, 2, 1}, 0, 3);  // the lowest on ties
  ExpectNext({4, 2}, 1, 3);     // whole sequences are skipped
  ExpectNext({0, 0}, 0, 1);     // nothing serves: the first of the first
}

TEST(PositionChoiceTest, ASecondSequenceServesBeforeTheFirstGrowsOn) {
  // Only sequence 1 serves: one deletion in its first slice would leave
  // the shard out of the ensemble, so sequence 0's first position trains.
  ExpectNext({0, 3}, 0, 1);
  ExpectNext({4, 0, 0}, 1, 1);
  // Two sequences serve: back to the longest.
  ExpectNext({1, 3, 0}, 1, 4);
}

TEST(PositionChoiceTest, NothingWhenEverySequenceIsWhole) {
  EXPECT_FALSE(ChooseNextPosition({4, 4}, 4).has_value());
  EXPECT_FALSE(ChooseNextPosition({}, 4).has_value());
}

}  // namespace
}  // namespace oubli::coordinator
