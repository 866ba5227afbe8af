// WorkerChunks, the chunk copies on workers: what a purge hears of a chunk
// holder that is missing.
#include "coordinator/worker_chunks.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "coordinator/worker_pool.h"
#include "oubli/internal/records.pb.h"

namespace oubli::coordinator {
namespace {

// A chunk holder missing right after the coordinator started has not had
// time to register again: the purge's note says so instead of pointing the
// operator at retire-worker, which it does once the window is over.
TEST(WorkerPoolRetireTest, AMissingHolderIsOnlyCalledLostAfterTheStartWindow) {
  internal::ChunkManifest manifest;
  manifest.add_holders("w1");
  const std::string bytes = manifest.SerializeAsString();
  WorkerPool::Options starting;
  starting.worker_timeout = absl::Minutes(10);
  WorkerChunks fresh(std::make_shared<WorkerPool>(starting));
  const absl::Status early = fresh.Forget("k", bytes);
  EXPECT_EQ(early.code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(absl::StrContains(early.message(), "not registered again yet"))
      << early;
  EXPECT_FALSE(absl::StrContains(early.message(), "retire-worker")) << early;

  WorkerPool::Options settled;
  settled.worker_timeout = absl::ZeroDuration();  // no start-up window
  WorkerChunks later(std::make_shared<WorkerPool>(settled));
  const absl::Status late = later.Forget("k", bytes);
  EXPECT_EQ(late.code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(absl::StrContains(late.message(), "oublictl retire-worker w1"))
      << late;
}

}  // namespace
}  // namespace oubli::coordinator
