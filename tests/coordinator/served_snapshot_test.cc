#include "coordinator/served_snapshot.h"

#include <gtest/gtest.h>

#include <memory>

namespace oubli::coordinator {
namespace {

std::shared_ptr<const ServedSnapshot> SnapshotWithFingerprint(
    const std::string& fingerprint) {
  auto snapshot = std::make_shared<ServedSnapshot>();
  snapshot->fingerprint = fingerprint;
  return snapshot;
}

TEST(PublishedSnapshotTest, AReaderKeepsItsSnapshotAcrossAPublish) {
  PublishedSnapshot published;
  EXPECT_TRUE(published.Get()->shards.empty());  // empty before any publish
  published.Publish(SnapshotWithFingerprint("a"));
  std::shared_ptr<const ServedSnapshot> held = published.Get();
  published.Publish(SnapshotWithFingerprint("b"));
  EXPECT_EQ(held->fingerprint, "a");
  EXPECT_EQ(published.Get()->fingerprint, "b");
}

TEST(ModelFingerprintTest, NamesEachShardsCheckpointInItsPlace) {
  EXPECT_NE(ModelFingerprint({"x", ""}), ModelFingerprint({"", "x"}));
  EXPECT_EQ(ModelFingerprint({"x", ""}), ModelFingerprint({"x", ""}));
}

}  // namespace
}  // namespace oubli::coordinator
