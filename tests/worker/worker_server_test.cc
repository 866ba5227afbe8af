#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "worker/worker_service.h"

namespace oubli::worker {
namespace {

TEST(WorkerServerTest, RefusesABackgroundNiceOutsideTheNiceRange) {
  for (int nice : {-1, 20}) {
    WorkerServer::Options options;
    options.coordinator_address = "127.0.0.1:1";
    options.background_priority.nice_increment = nice;
    auto server = WorkerServer::Start(options);
    EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument)
        << nice;
    EXPECT_TRUE(
        absl::StrContains(server.status().message(), "background_nice"))
        << server.status();
  }
}

TEST(WorkerServerTest, RefusesAMissingCoordinatorAddress) {
  WorkerServer::Options options;
  auto server = WorkerServer::Start(options);
  EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(server.status().message(), "coordinator address is required");
}

}  // namespace
}  // namespace oubli::worker
