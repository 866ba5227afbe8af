#include "coordinator/worker_choice.h"

#include <gtest/gtest.h>

#include <vector>

namespace oubli::coordinator {
namespace {

TEST(WorkerChoiceTest, NoCandidateNoChoice) {
  EXPECT_EQ(ChooseTrainingWorker({}), std::nullopt);
}

TEST(WorkerChoiceTest, TheWorkerHoldingTheSlicesWinsWithinTheSlack) {
  // "b" holds the prefix's slices and has one position more than "a".
  const std::vector<WorkerCandidate> workers = {{"a", 3, 0}, {"b", 4, 2}};
  EXPECT_EQ(ChooseTrainingWorker(workers), 1u);
}

TEST(WorkerChoiceTest, LoadWinsBeyondTheSlack) {
  const std::vector<WorkerCandidate> workers = {{"a", 3, 0},
                                                {"b", 3 + kBusySlack + 1, 2}};
  EXPECT_EQ(ChooseTrainingWorker(workers), 0u);
}

TEST(WorkerChoiceTest, EqualHoldingsGoToTheLeastBusyThenTheLowestId) {
  EXPECT_EQ(ChooseTrainingWorker(std::vector<WorkerCandidate>{
                {"a", 2, 1}, {"b", 1, 1}}),
            1u);
  EXPECT_EQ(ChooseTrainingWorker(std::vector<WorkerCandidate>{
                {"b", 1, 1}, {"a", 1, 1}}),
            1u);
}

TEST(WorkerChoiceTest, MostSlicesAmongSeveralWithinTheSlack) {
  const std::vector<WorkerCandidate> workers = {
      {"a", 0, 1}, {"b", 1, 3}, {"c", 1, 2}, {"d", 5, 4}};
  EXPECT_EQ(ChooseTrainingWorker(workers), 1u);
}

}  // namespace
}  // namespace oubli::coordinator
