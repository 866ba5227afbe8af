#include "coordinator/position_choice.h"

#include <gtest/gtest.h>

namespace oubli::coordinator {
namespace {

// Orders starting with distinct slices unless told otherwise.
void ExpectNext(const std::vector<int>& valid, int sequence, int length,
                std::vector<int> first = {}) {
  if (first.empty()) {
    for (int b = 0; b < static_cast<int>(valid.size()); ++b) first.push_back(b);
  }
  const std::optional<NextPosition> next = ChooseNextPosition(valid, first, 4);
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

TEST(PositionChoiceTest, ASecondFirstSliceServesBeforeTheFirstGrowsOn) {
  // Only sequence 1 serves: one deletion in its first slice would leave
  // the shard out of the ensemble, so sequence 0's first position trains.
  ExpectNext({0, 3}, 0, 1);
  ExpectNext({4, 0, 0}, 1, 1);
  // Two first slices serve: back to the longest.
  ExpectNext({1, 3, 0}, 1, 4);
  // Two sequences serve but share their first slice: still one deletion
  // from serving nothing, so the sequence starting elsewhere goes first.
  ExpectNext({1, 3, 0}, 2, 1, {5, 5, 6});
  // One starting with the same slice would not help: the longest grows.
  ExpectNext({0, 3}, 1, 4, {5, 5});
}

TEST(PositionChoiceTest, NothingWhenEverySequenceIsWhole) {
  EXPECT_FALSE(ChooseNextPosition({4, 4}, {0, 1}, 4).has_value());
  EXPECT_FALSE(ChooseNextPosition({}, {}, 4).has_value());
}

}  // namespace
}  // namespace oubli::coordinator
