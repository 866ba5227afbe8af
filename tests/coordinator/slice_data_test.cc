#include "coordinator/slice_data.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "coordinator/sharding_plan.h"

namespace oubli::coordinator {
namespace {

constexpr int kWidth = 3;

Sample MakeSample(const std::string& id, char fill) {
  Sample s;
  s.id = id;
  s.label = fill % 5;
  s.features.assign(kWidth, fill);
  return s;
}

// What the slice must encode to: `samples` sorted by id, encoded at once.
std::string ExpectedDigest(std::vector<Sample> samples) {
  std::sort(samples.begin(), samples.end(),
            [](const Sample& a, const Sample& b) { return a.id < b.id; });
  auto encoded = storage::EncodedSlice::FromSamples(samples, kWidth);
  EXPECT_TRUE(encoded.ok()) << encoded.status();
  return encoded.ok() ? (*encoded)->digest() : "";
}

// Lazy ingest and removal give the slice one would encode from scratch,
// and ids (which name prefixes) always say what the encoding will hold.
TEST(SliceDataTest, PendingAndRemovedMaterializeToTheSurvivingSet) {
  SliceData slice = EmptySlice(kWidth);
  AddSamples(slice, {MakeSample("b", 'b'), MakeSample("d", 'd')});
  AddSamples(slice, {MakeSample("a", 'a')});
  EXPECT_EQ(slice.ids, (std::vector<std::string>{"a", "b", "d"}));
  EXPECT_EQ(slice.digest, SliceDigest({"a", "b", "d"}));
  EXPECT_FALSE(slice.pending.empty());  // below the merge threshold

  // Removed while pending: never encoded.
  auto removed = RemoveSamples(slice, {"b", "zz"});
  ASSERT_TRUE(removed.ok());
  EXPECT_EQ(*removed, 1);
  EXPECT_EQ(slice.ids, (std::vector<std::string>{"a", "d"}));
  EXPECT_TRUE(slice.removed.empty());

  auto encoded = Encoded(slice);
  ASSERT_TRUE(encoded.ok()) << encoded.status();
  EXPECT_EQ((*encoded)->digest(),
            ExpectedDigest({MakeSample("a", 'a'), MakeSample("d", 'd')}));
  EXPECT_TRUE(slice.pending.empty());

  // Removed once encoded, with new samples pending: a purge drops the
  // removed one without merging the pending ones...
  AddSamples(slice, {MakeSample("c", 'c')});
  ASSERT_TRUE(RemoveSamples(slice, {"a"}).ok());
  EXPECT_EQ(slice.removed.size(), 1u);
  ASSERT_TRUE(DropRemoved(slice).ok());
  EXPECT_EQ(slice.encoded->digest(), ExpectedDigest({MakeSample("d", 'd')}));
  EXPECT_EQ(slice.encoded->bytes().find("aaa"), std::string::npos);
  EXPECT_EQ(slice.pending.size(), 1u);
  // ...and training sees the survivors.
  encoded = Encoded(slice);
  ASSERT_TRUE(encoded.ok());
  EXPECT_EQ((*encoded)->digest(),
            ExpectedDigest({MakeSample("c", 'c'), MakeSample("d", 'd')}));
  EXPECT_EQ(slice.ids, (std::vector<std::string>{"c", "d"}));
}

TEST(SliceDataTest, LargePendingMergesIntoTheEncodingAtIngest) {
  SliceData slice = EmptySlice(kWidth);
  std::vector<Sample> many;
  for (int i = 0; i < 400000; ++i) {  // 1.2 MB of features
    many.push_back(MakeSample("s" + std::to_string(1000000 + i), 'x'));
  }
  AddSamples(slice, many);
  EXPECT_TRUE(slice.pending.empty());
  EXPECT_EQ(slice.encoded->rows(), 400000);
}

}  // namespace
}  // namespace oubli::coordinator
