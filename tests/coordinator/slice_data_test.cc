#include "coordinator/slice_data.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "coordinator/encoded_slice_cache.h"
#include "coordinator/sharding_plan.h"
#include "tests/testing/test_util.h"

namespace oubli::coordinator {
namespace {

constexpr int kWidth = 3;

Sample MakeSample(const std::string& id, char fill) {
  Sample s;
  s.id = id;
  s.owner = "owner-" + id;
  s.label = fill % 5;
  s.features.assign(kWidth, fill);
  return s;
}

// What the slice must encode to: `samples` sorted by id, encoded at once.
std::shared_ptr<const storage::EncodedSlice> Encode(std::vector<Sample> samples) {
  std::sort(samples.begin(), samples.end(),
            [](const Sample& a, const Sample& b) { return a.id < b.id; });
  auto encoded = storage::EncodedSlice::FromSamples(samples, kWidth);
  EXPECT_TRUE(encoded.ok()) << encoded.status();
  return encoded.ok() ? *encoded : nullptr;
}

std::vector<const Sample*> Pointers(const std::vector<Sample>& samples) {
  std::vector<const Sample*> out;
  for (const Sample& s : samples) out.push_back(&s);
  return out;
}

// Ids (which name prefixes) always say what the slice holds, and its byte
// count shrinks with removals but never falls below what the survivors
// encode to.
TEST(SliceDataTest, IdsFollowIngestAndRemoval) {
  SliceData slice = EmptySlice();
  const std::vector<Sample> first = {MakeSample("b", 'b'), MakeSample("d", 'd')};
  const std::vector<Sample> second = {MakeSample("a", 'a')};
  AddSamples(slice, Pointers(first));
  AddSamples(slice, Pointers(second));
  EXPECT_EQ(slice.ids, (std::vector<std::string>{"a", "b", "d"}));
  EXPECT_EQ(slice.digest, SliceDigest({"a", "b", "d"}));
  const int64_t all_bytes = slice.bytes;
  EXPECT_GE(all_bytes, static_cast<int64_t>(
                           Encode({first[0], first[1], second[0]})->bytes().size()));

  auto removed =
      RemoveSamples(slice, {"b", "zz"}, EncodedSampleMinBytes(first[0]));
  ASSERT_TRUE(removed.ok());
  EXPECT_EQ(*removed, 1);
  EXPECT_EQ(slice.ids, (std::vector<std::string>{"a", "d"}));
  EXPECT_EQ(slice.digest, SliceDigest({"a", "d"}));
  // Shrunk by what the removed sample took at least, so still not below
  // what the survivors encode to.
  EXPECT_EQ(slice.bytes, all_bytes - EncodedSampleMinBytes(first[0]));
  EXPECT_GE(slice.bytes, static_cast<int64_t>(
                             Encode({second[0], first[1]})->bytes().size()));
}

class SliceStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = storage::LineageStore::Open({dir_.path().string(), true});
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    std::vector<storage::AssignedSample> assigned;
    for (const Sample& s : samples_) assigned.push_back({s, kWhere});
    ASSERT_TRUE(store_->Ingest(assigned).ok());
  }

  static constexpr SliceRef kWhere{1, 2};
  testing_util::ScopedTempDir dir_;
  std::unique_ptr<storage::LineageStore> store_;
  const std::vector<Sample> samples_ = {
      MakeSample("c", 'c'), MakeSample("a", 'a'), MakeSample("b", 'b')};
};

TEST_F(SliceStoreTest, ReadsTheSliceAsIfEncodedAtOnce) {
  auto loaded = LoadSlice(*store_, kWhere, kWidth);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->data.ids, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(loaded->data.digest, SliceDigest({"a", "b", "c"}));
  EXPECT_EQ(loaded->encoded->digest(), Encode(samples_)->digest());
  EXPECT_EQ(loaded->data.bytes,
            static_cast<int64_t>(loaded->encoded->bytes().size()));

  auto read = ReadSliceAsOf(*store_, kWhere, kWidth, loaded->data.digest);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ((*read)->digest(), loaded->encoded->digest());
}

// A read for ids that are no longer the slice's (a deletion committed in
// the store, not yet applied in memory) is stale, never a slice of other
// contents under the old name.
TEST_F(SliceStoreTest, AReadAfterADeletionCommittedIsAborted) {
  const std::string before = SliceDigest({"a", "b", "c"});
  ASSERT_TRUE(store_->RecordDeletion("del-1", "record", {"b"}).ok());
  auto read = ReadSliceAsOf(*store_, kWhere, kWidth, before);
  EXPECT_EQ(read.status().code(), absl::StatusCode::kAborted) << read.status();
  read = ReadSliceAsOf(*store_, kWhere, kWidth, SliceDigest({"a", "c"}));
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ((*read)->digest(), Encode({samples_[0], samples_[1]})->digest());
}

std::shared_ptr<const storage::EncodedSlice> Filled(char fill, int rows) {
  std::vector<Sample> samples;
  for (int i = 0; i < rows; ++i) {
    samples.push_back(MakeSample(std::string(1, fill) + std::to_string(100 + i),
                                 fill));
  }
  return Encode(samples);
}

TEST(EncodedSliceCacheTest, KeepsCurrentSlicesWithinTheBudget) {
  const auto x = Filled('x', 10), y = Filled('y', 10), z = Filled('z', 10);
  auto shared = std::make_shared<EncodedSliceCache>(
      static_cast<int64_t>(x->bytes().size() + y->bytes().size()));
  ModelSliceCache cache(shared);
  for (const char* ids : {"X", "Y", "Z"}) cache.Replace("", ids);
  cache.Insert("X", x);
  cache.Insert("Y", y);
  EXPECT_EQ(cache.Find("X"), x);  // now the most recently used
  cache.Insert("Z", z);           // evicts Y
  EXPECT_EQ(cache.Find("Y"), nullptr);
  EXPECT_EQ(cache.Find("X"), x);
  EXPECT_EQ(cache.Find("Z"), z);
  EXPECT_LE(shared->bytes(), shared->budget_bytes());
  EXPECT_EQ(shared->slices(), 2);
  // An evicted slice's encoding is still known: workers may keep it.
  EXPECT_EQ(cache.EncodedDigest("Y"), y->digest());
}

// The deletion path: a slice whose ids change leaves the cache at once,
// and a read that started before the change cannot bring it back.
TEST(EncodedSliceCacheTest, ChangedIdsDropTheSliceForGood) {
  const auto x = Filled('x', 10);
  auto shared = std::make_shared<EncodedSliceCache>(int64_t{1} << 20);
  ModelSliceCache cache(shared);
  cache.Replace("", "X");
  cache.Insert("X", x);
  EXPECT_TRUE(shared->HoldsBytes(std::string(kWidth, 'x')));
  cache.Replace("X", "X-minus-one");
  EXPECT_FALSE(shared->HoldsBytes(std::string(kWidth, 'x')));
  EXPECT_FALSE(cache.EncodedDigest("X").has_value());
  cache.Insert("X", x);  // a read racing the deletion
  EXPECT_EQ(cache.Find("X"), nullptr);
  EXPECT_FALSE(shared->HoldsBytes(std::string(kWidth, 'x')));
}

TEST(EncodedSliceCacheTest, ModelsShareTheBudgetButNotTheirSlices) {
  const auto x = Filled('x', 10), y = Filled('y', 10);
  auto shared = std::make_shared<EncodedSliceCache>(int64_t{1} << 20);
  auto first = std::make_unique<ModelSliceCache>(shared);
  ModelSliceCache second(shared);
  first->Replace("", "same ids");
  second.Replace("", "same ids");
  first->Insert("same ids", x);
  EXPECT_EQ(second.Find("same ids"), nullptr);
  second.Insert("same ids", y);
  EXPECT_EQ(first->Find("same ids"), x);
  EXPECT_EQ(shared->slices(), 2);
  first.reset();  // a model closed or deleted takes its slices along
  EXPECT_EQ(shared->slices(), 1);
  EXPECT_FALSE(shared->HoldsBytes(std::string(kWidth, 'x')));
}

// Empty slices of one model share their ids (none): one changing leaves
// the others' entry alone.
TEST(EncodedSliceCacheTest, SharedIdsStayWhileAnySliceHasThem) {
  const auto empty = Encode({});
  auto shared = std::make_shared<EncodedSliceCache>(int64_t{1} << 20);
  ModelSliceCache cache(shared);
  cache.Replace("", "none");
  cache.Replace("", "none");
  cache.Insert("none", empty);
  cache.Replace("none", "one sample");
  EXPECT_EQ(cache.Find("none"), empty);
  cache.Replace("none", "another");
  EXPECT_EQ(cache.Find("none"), nullptr);
}

TEST(EncodedSliceCacheTest, ASliceOverTheBudgetIsReadEachTime) {
  const auto x = Filled('x', 10);
  auto shared = std::make_shared<EncodedSliceCache>(0);
  ModelSliceCache cache(shared);
  cache.Replace("", "X");
  cache.Insert("X", x);
  EXPECT_EQ(cache.Find("X"), nullptr);
  EXPECT_EQ(shared->bytes(), 0);
  EXPECT_EQ(cache.EncodedDigest("X"), x->digest());
}

}  // namespace
}  // namespace oubli::coordinator
