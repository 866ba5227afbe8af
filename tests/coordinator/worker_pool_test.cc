// The worker pool's membership: retirements of chunk holders, durable
// across restarts, keep a name out.
#include "coordinator/worker_pool.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "tests/testing/test_util.h"

namespace oubli::coordinator {
namespace {

constexpr char kEnvironment[] = "test-environment";

// Retirements survive a restart (names with spaces included), keep the
// name out, and are refused for names nobody knows.
TEST(WorkerPoolRetireTest, RetirementsAreDurableAndKeepTheNameOut) {
  testing_util::ScopedTempDir dir;
  const std::string path = (dir.path() / "~retired_workers").string();
  WorkerPool::Options options;
  options.worker_timeout = absl::ZeroDuration();  // no start-up window
  absl::Time retired_at;
  {
    WorkerPool pool(options);
    ASSERT_TRUE(pool.OpenRetiredHolders(path).ok());  // absent: none
    EXPECT_TRUE(pool.RetiredHolders().empty());
    auto known = [] { return absl::StatusOr<bool>(true); };
    auto unknown = [] { return absl::StatusOr<bool>(false); };
    auto broken = [] {
      return absl::StatusOr<bool>(absl::DataLossError("manifests unreadable"));
    };
    EXPECT_EQ(pool.RetireHolder("typo", unknown).status().code(),
              absl::StatusCode::kNotFound);
    EXPECT_EQ(pool.RetireHolder("typo", broken).status().code(),
              absl::StatusCode::kDataLoss);
    absl::StatusOr<WorkerPool::RetiredHolder> retired =
        pool.RetireHolder("rack 4 worker", known);
    ASSERT_TRUE(retired.ok()) << retired.status();
    retired_at = retired->retired_at;
    // Idempotent, even once nothing names it any more.
    absl::StatusOr<WorkerPool::RetiredHolder> again =
        pool.RetireHolder("rack 4 worker", unknown);
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_EQ(again->retired_at, retired_at);
  }
  WorkerPool restarted(options);
  ASSERT_TRUE(restarted.OpenRetiredHolders(path).ok());
  const std::vector<WorkerPool::RetiredHolder> listed =
      restarted.RetiredHolders();
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].name, "rack 4 worker");
  EXPECT_EQ(listed[0].retired_at, retired_at);
  EXPECT_EQ(
      restarted.Register("127.0.0.1:1", kEnvironment, "rack 4 worker", true)
          .status()
          .code(),
      absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(
      restarted.Register("127.0.0.1:2", kEnvironment, "rack 5 worker", true)
          .ok());
}

// A damaged file stops the coordinator rather than forgetting a retirement
// (which would let the holder back in).
TEST(WorkerPoolRetireTest, AnUnreadableFileIsDataLoss) {
  testing_util::ScopedTempDir dir;
  const std::string path = (dir.path() / "~retired_workers").string();
  {
    std::ofstream out(path);
    out << "1700000000000000000 fine\n\nnot-a-number oops\n";
  }
  WorkerPool pool{WorkerPool::Options()};
  const absl::Status opened = pool.OpenRetiredHolders(path);
  EXPECT_EQ(opened.code(), absl::StatusCode::kDataLoss);
  EXPECT_TRUE(absl::StrContains(opened.message(), "line 3")) << opened;
  std::filesystem::create_directories(dir.path() / "a-dir");
  EXPECT_EQ(pool.OpenRetiredHolders((dir.path() / "a-dir").string()).code(),
            absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace oubli::coordinator
