#include "common/cluster_protocol.h"

#include <gtest/gtest.h>

#include "tests/testing/test_util.h"

namespace oubli {
namespace {

TEST(ClusterTokenTest, MatchesOnlyTheSameTokenAndEmptyMeansNoCheck) {
  EXPECT_TRUE(ClusterTokenMatches("s3cret", "s3cret"));
  EXPECT_FALSE(ClusterTokenMatches("s3cret", "s3creT"));
  EXPECT_FALSE(ClusterTokenMatches("s3cret", "s3cre"));
  EXPECT_FALSE(ClusterTokenMatches("s3cret", ""));
  EXPECT_TRUE(ClusterTokenMatches("", "anything"));
}

TEST(ClusterTokenTest, ReadsTrimmedTokenAndRefusesEmptyOrMissingFiles) {
  testing_util::ScopedTempDir dir;
  const std::string path = (dir.path() / "token").string();
  testing_util::WriteWholeFile(path, "  abc123\n");
  EXPECT_EQ(ReadClusterToken(path).value_or(""), "abc123");
  testing_util::WriteWholeFile(path, " \n");
  EXPECT_TRUE(absl::IsInvalidArgument(ReadClusterToken(path).status()));
  EXPECT_TRUE(absl::IsNotFound(ReadClusterToken(path + ".missing").status()));
}

TEST(CheckServerAddressTest, ReturnsHostAndRejectsBadInput) {
  EXPECT_EQ(CheckServerAddress("127.0.0.1:0", 1 << 20).value_or("?"),
            "127.0.0.1");
  EXPECT_EQ(CheckServerAddress("[::1]:50051", 1).value_or("?"), "[::1]");
  EXPECT_EQ(CheckServerAddress(":50051", 1).value_or("?"), "");
  EXPECT_TRUE(absl::IsInvalidArgument(
      CheckServerAddress("localhost", 1 << 20).status()));
  EXPECT_TRUE(
      absl::IsInvalidArgument(CheckServerAddress("127.0.0.1:0", 0).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(
      CheckServerAddress("127.0.0.1:0", int64_t{1} << 31).status()));
}

TEST(IsLoopbackHostTest, OnlyAddressesThatStayOnThisMachine) {
  for (const char* host : {"localhost", "127.0.0.1", "127.1.2.3", "::1",
                           "[::1]"}) {
    EXPECT_TRUE(IsLoopbackHost(host)) << host;
  }
  for (const char* host : {"", "0.0.0.0", "[::]", "10.0.0.1", "128.0.0.1",
                           "127.0.0.1.example.com", "127.evil", "localhost.",
                           "example.com", "127.0.0.256"}) {
    EXPECT_FALSE(IsLoopbackHost(host)) << host;
  }
}

}  // namespace
}  // namespace oubli
