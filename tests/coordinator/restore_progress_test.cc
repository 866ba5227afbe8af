#include "coordinator/restore_progress.h"

#include <gtest/gtest.h>

namespace oubli::coordinator {
namespace {

TEST(RestoreProgressTest, EverySequenceMustHaveBeenWholeSinceTheDeletion) {
  RestoreProgress progress(/*shards=*/2, /*sequences=*/2);
  EXPECT_FALSE(progress.Restored(0, 0));  // nothing whole since open
  EXPECT_TRUE(progress.MarkWhole(0, 0, 3));
  EXPECT_FALSE(progress.Restored(0, 3));  // sequence 1 not yet
  EXPECT_TRUE(progress.MarkWhole(0, 1, 5));
  // Sequence 0 was whole at 3 and sequence 1 at 5, never both at once.
  EXPECT_TRUE(progress.Restored(0, 3));
  EXPECT_FALSE(progress.Restored(0, 4));  // sequence 0 not whole since 4
  EXPECT_FALSE(progress.Restored(1, 0));  // another shard
}

TEST(RestoreProgressTest, OnlyALaterGenerationIsNews) {
  RestoreProgress progress(1, 1);
  EXPECT_TRUE(progress.MarkWhole(0, 0, 2));
  EXPECT_FALSE(progress.MarkWhole(0, 0, 2));
  EXPECT_FALSE(progress.MarkWhole(0, 0, 1));
  EXPECT_TRUE(progress.Restored(0, 2));
  EXPECT_TRUE(progress.MarkWhole(0, 0, 4));
  EXPECT_TRUE(progress.Restored(0, 4));
}

}  // namespace
}  // namespace oubli::coordinator
