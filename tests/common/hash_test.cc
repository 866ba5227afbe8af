#include "common/hash.h"

#include <set>

#include <gtest/gtest.h>

namespace oubli {
namespace {

TEST(Sha256Test, MatchesKnownVector) {
  EXPECT_EQ(Sha256Hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Sha256Hex(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(Sha256Test, FieldsAreLengthPrefixed) {
  EXPECT_NE(Sha256().AddField("ab").AddField("c").FinishHex(),
            Sha256().AddField("a").AddField("bc").FinishHex());
}

TEST(KeyedHashTest, DependsOnKeyAndData) {
  EXPECT_EQ(KeyedHash64(1, "x"), KeyedHash64(1, "x"));
  EXPECT_NE(KeyedHash64(1, "x"), KeyedHash64(2, "x"));
  EXPECT_NE(KeyedHash64(1, "x"), KeyedHash64(1, "y"));
  EXPECT_NE(DeriveSeed(1, "a", {1, 2}), DeriveSeed(1, "a", {2, 1}));
}

TEST(SplitMix64Test, ReproducibleAndUnbiasedRange) {
  SplitMix64 a(7), b(7);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(a.Next(), b.Next());
  SplitMix64 rng(3);
  std::set<uint64_t> seen;
  for (int i = 0; i < 1000; ++i) {
    const uint64_t v = rng.Uniform(5);
    ASSERT_LT(v, 5u);
    seen.insert(v);
  }
  EXPECT_EQ(seen.size(), 5u);
}

}  // namespace
}  // namespace oubli
