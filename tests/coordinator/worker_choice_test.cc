#include "coordinator/worker_choice.h"

#include <gtest/gtest.h>

#include <vector>

namespace oubli::coordinator {
namespace {

TEST(WorkerChoiceTest, NoCandidateNoChoice) {
  EXPECT_EQ(ChooseTrainingWorker({}), std::nullopt);
}

TEST(WorkerChoiceTest, AnIdleWorkerWinsOverOneHoldingTheSlices) {
  // One retrain loop per worker: "b" must not get a second position while
  // "a" has none.
  const std::vector<WorkerCandidate> workers = {{"a", 0, 0}, {"b", 1, 4}};
  EXPECT_EQ(ChooseTrainingWorker(workers), 0u);
}

TEST(WorkerChoiceTest, AmongTheLeastBusyTheOneHoldingMostSlicesWins) {
  const std::vector<WorkerCandidate> workers = {
      {"a", 1, 1}, {"b", 1, 3}, {"c", 1, 2}, {"d", 2, 4}};
  EXPECT_EQ(ChooseTrainingWorker(workers), 1u);
}

TEST(WorkerChoiceTest, FullTiesGoToTheLowestId) {
  EXPECT_EQ(ChooseTrainingWorker(std::vector<WorkerCandidate>{
                {"b", 1, 1}, {"a", 1, 1}}),
            1u);
}

}  // namespace
}  // namespace oubli::coordinator
