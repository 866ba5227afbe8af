#include "worker/slice_cache.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace oubli::worker {
namespace {

// A slice of one sample whose features are `width` bytes.
std::shared_ptr<const storage::EncodedSlice> Slice(const std::string& id,
                                                   int width) {
  Sample s;
  s.id = id;
  s.features.assign(width, 'x');
  auto slice = storage::EncodedSlice::FromSamples({s}, width);
  EXPECT_TRUE(slice.ok()) << slice.status();
  return *slice;
}

TEST(SliceCacheTest, EvictsLeastRecentlyUsedBeyondItsBytes) {
  auto a = Slice("a", 1000), b = Slice("b", 1000), c = Slice("c", 1000);
  const int64_t one = static_cast<int64_t>(a->bytes().size());
  SliceCache cache(2 * one + one / 2);
  ASSERT_TRUE(cache.Insert("m", a, 1).ok());
  ASSERT_TRUE(cache.Insert("m", b, 1).ok());
  ASSERT_NE(cache.Find("m", a->digest()), nullptr);  // a is now recent
  ASSERT_TRUE(cache.Insert("m", c, 1).ok());
  EXPECT_NE(cache.Find("m", a->digest()), nullptr);
  EXPECT_EQ(cache.Find("m", b->digest()), nullptr);
  EXPECT_NE(cache.Find("m", c->digest()), nullptr);
  EXPECT_EQ(cache.slices(), 2);
  EXPECT_EQ(cache.bytes(), 2 * one);
  // Scoped by model.
  EXPECT_EQ(cache.Find("other", a->digest()), nullptr);
  EXPECT_EQ(SliceCache(one - 1).Insert("m", a, 1).code(),
            absl::StatusCode::kResourceExhausted);
}

TEST(SliceCacheTest, PurgeKeepsOnlyCurrentSlicesAndRefusesOlderUploads) {
  auto old_version = Slice("a", 10), current = Slice("b", 10),
       other_model = Slice("c", 10), late_current = Slice("d", 10);
  SliceCache cache(1 << 20);
  ASSERT_TRUE(cache.Insert("m", old_version, 5).ok());
  ASSERT_TRUE(cache.Insert("m", current, 5).ok());
  ASSERT_TRUE(cache.Insert("n", other_model, 5).ok());
  EXPECT_EQ(cache.DropModelExcept(
                "m", {current->digest(), late_current->digest()}, 9),
            1);
  EXPECT_EQ(cache.Find("m", old_version->digest()), nullptr);
  EXPECT_NE(cache.Find("m", current->digest()), nullptr);
  EXPECT_NE(cache.Find("n", other_model->digest()), nullptr);
  // An upload begun before the purge may hold what it deleted...
  EXPECT_TRUE(cache.IsStale("m", old_version->digest(), 8));
  EXPECT_EQ(cache.Insert("m", old_version, 8).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(cache.Find("m", old_version->digest()), nullptr);
  // ...unless the purge kept its digest.
  EXPECT_TRUE(cache.Insert("m", late_current, 8).ok());
  EXPECT_TRUE(cache.Insert("m", old_version, 9).ok());
  // Other models' uploads are not held back.
  EXPECT_FALSE(cache.IsStale("n", old_version->digest(), 8));
}

TEST(SliceCacheTest, ADeadWorkerTakesNothingUntilItRegistersAgain) {
  auto early = Slice("a", 10), late = Slice("b", 10);
  SliceCache cache(1 << 20);
  ASSERT_TRUE(cache.Insert("m", early, 3).ok());
  ASSERT_TRUE(cache.Insert("n", late, 7).ok());
  cache.DropAllAndClose();
  EXPECT_EQ(cache.slices(), 0);
  EXPECT_EQ(cache.bytes(), 0);
  // An upload that was on its way when the lease ran out.
  EXPECT_EQ(cache.Insert("m", early, 100).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(cache.slices(), 0);
  // Registered again: only uploads begun since are taken, whatever the
  // epochs before (a new coordinator's may be lower).
  cache.Reopen(5);
  EXPECT_EQ(cache.Insert("m", early, 4).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(cache.Insert("m", early, 5).ok());
  EXPECT_TRUE(cache.IsStale("n", late->digest(), 4));
}

}  // namespace
}  // namespace oubli::worker
