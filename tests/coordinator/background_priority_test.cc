// The engine's background work (retraining, purge passes, RocksDB flushes
// and compactions) runs at Engine::Options::background_priority: its nice
// increment above the process's nice value and, when asked, in the idle
// class, so that requests get a core first.
#include <gtest/gtest.h>
#include <sched.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "common/thread_priority.h"
#include "coordinator/engine.h"
#include "tests/testing/test_util.h"
#include "tests/worker/ml/random_samples.h"

namespace oubli::coordinator {
namespace {

constexpr int kNiceIncrement = 4;

struct ThreadPriority {
  int nice = 0;
  int policy = 0;  // SCHED_OTHER, SCHED_IDLE, ...
};

// comm -> the priorities of this process's threads of that name.
std::multimap<std::string, ThreadPriority> ThreadPriorities() {
  std::multimap<std::string, ThreadPriority> priorities;
  for (const auto& task :
       std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream comm_file(task.path() / "comm");
    std::string comm;
    std::getline(comm_file, comm);
    std::ifstream stat_file(task.path() / "stat");
    std::string stat;
    std::getline(stat_file, stat);
    // Fields after the parenthesised comm: state is field 3, nice 19,
    // policy 41.
    std::istringstream rest(stat.substr(stat.rfind(')') + 2));
    std::vector<std::string> fields;
    for (std::string field; rest >> field;) fields.push_back(field);
    if (fields.size() < 41 - 2) continue;  // the thread is exiting
    priorities.emplace(comm,
                       ThreadPriority{.nice = std::stoi(fields[19 - 3]),
                                      .policy = std::stoi(fields[41 - 3])});
  }
  return priorities;
}

std::vector<ThreadPriority> PrioritiesOf(const std::string& prefix) {
  std::vector<ThreadPriority> found;
  for (const auto& [comm, priority] : ThreadPriorities()) {
    if (absl::StartsWith(comm, prefix)) found.push_back(priority);
  }
  return found;
}

// Deletes one sample and waits for RESTORED: the purge pass (flush,
// compaction) and a retrain have run on their threads. The engine stays
// open in `*out`, its threads alive, while the caller looks at them.
void RunDeletionToRestored(const BackgroundPriority& priority,
                           const std::filesystem::path& dir,
                           std::unique_ptr<Engine>* out) {
  Engine::Options options;
  options.data_dir = (dir / "m").string();
  options.config = ml::SmallMlpConfig();
  options.background_priority = priority;
  auto engine = Engine::Open(options);
  ASSERT_TRUE(engine.ok()) << engine.status();
  ASSERT_TRUE((*engine)->Ingest(ml::RandomSamples(16, 7)).ok());
  ASSERT_TRUE((*engine)->Train().ok());
  auto receipt = (*engine)->DeleteSamples({"s3"});
  ASSERT_TRUE(receipt.ok()) << receipt.status();
  ASSERT_TRUE((*engine)
                  ->WaitForStage(receipt->deletion_id,
                                 DeletionStage::kRestored, absl::Seconds(60))
                  .ok());
  *out = *std::move(engine);
}

// The engine's own background threads, the purge and retrain loops.
void ExpectEngineThreadsAt(int nice, int policy) {
  for (const std::string name : {"oubli-purge", "oubli-retrain"}) {
    const std::vector<ThreadPriority> priorities = PrioritiesOf(name);
    ASSERT_FALSE(priorities.empty()) << "no thread named " << name;
    for (const ThreadPriority& priority : priorities) {
      EXPECT_EQ(priority.nice, nice) << name;
      EXPECT_EQ(priority.policy, policy) << name;
    }
  }
}

TEST(BackgroundPriorityTest, TrainingPurgeAndRocksDbThreadsRunLowered) {
  testing_util::ScopedTempDir dir;
  const int process_nice = ThisThreadNice();
  const int lowered = std::min(19, process_nice + kNiceIncrement);
  std::unique_ptr<Engine> engine;
  RunDeletionToRestored({.nice_increment = kNiceIncrement, .idle_class = true},
                        dir.path(), &engine);
  if (HasFatalFailure()) return;

  ExpectEngineThreadsAt(lowered, SCHED_IDLE);
  // RocksDB names its pool threads rocksdb:low and rocksdb:high; each
  // lowers itself on its first job, and the purge gave both pools one.
  for (const std::string pool : {"rocksdb:low", "rocksdb:high"}) {
    const std::vector<ThreadPriority> priorities = PrioritiesOf(pool);
    ASSERT_FALSE(priorities.empty()) << "no thread named " << pool;
    EXPECT_TRUE(std::any_of(priorities.begin(), priorities.end(),
                            [&](const ThreadPriority& priority) {
                              return priority.nice == lowered &&
                                     priority.policy == SCHED_IDLE;
                            }))
        << pool;
  }
  // Requests run on their callers' threads, at the process's priority.
  EXPECT_EQ(ThisThreadNice(), process_nice);
  EXPECT_FALSE(ThisThreadInIdleClass());
}

TEST(BackgroundPriorityTest, NiceAloneKeepsTheNormalClass) {
  testing_util::ScopedTempDir dir;
  const int lowered = std::min(19, ThisThreadNice() + kNiceIncrement);
  std::unique_ptr<Engine> engine;
  RunDeletionToRestored({.nice_increment = kNiceIncrement, .idle_class = false},
                        dir.path(), &engine);
  if (HasFatalFailure()) return;
  ExpectEngineThreadsAt(lowered, SCHED_OTHER);
}

TEST(BackgroundPriorityTest, RefusesAnIncrementOutsideTheNiceRange) {
  testing_util::ScopedTempDir dir;
  for (int increment : {-1, 20}) {
    Engine::Options options;
    options.data_dir = (dir.path() / "m").string();
    options.config = ml::SmallMlpConfig();
    options.background_priority.nice_increment = increment;
    auto engine = Engine::Open(options);
    EXPECT_EQ(engine.status().code(), absl::StatusCode::kInvalidArgument)
        << increment;
    EXPECT_TRUE(absl::StrContains(engine.status().message(),
                                  "background_nice"))
        << engine.status();
  }
}

}  // namespace
}  // namespace oubli::coordinator
