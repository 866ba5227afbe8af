// The engine's background work (retraining, purge passes, RocksDB flushes
// and compactions) runs at Engine::Options::background_nice above the
// process's nice value, so that requests get a core first.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
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

// comm -> the nice values of this process's threads of that name.
std::multimap<std::string, int> ThreadNices() {
  std::multimap<std::string, int> nices;
  for (const auto& task :
       std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream comm_file(task.path() / "comm");
    std::string comm;
    std::getline(comm_file, comm);
    std::ifstream stat_file(task.path() / "stat");
    std::string stat;
    std::getline(stat_file, stat);
    // Fields after the parenthesised comm: state is field 3, nice 19.
    std::istringstream rest(stat.substr(stat.rfind(')') + 2));
    std::string field;
    for (int i = 3; i < 19 && rest >> field; ++i) {
    }
    int nice = 0;
    if (rest >> nice) nices.emplace(comm, nice);
  }
  return nices;
}

std::vector<int> NicesOf(const std::string& prefix) {
  std::vector<int> found;
  for (const auto& [comm, nice] : ThreadNices()) {
    if (absl::StartsWith(comm, prefix)) found.push_back(nice);
  }
  return found;
}

TEST(BackgroundPriorityTest, TrainingPurgeAndRocksDbThreadsRunLowered) {
  testing_util::ScopedTempDir dir;
  const int process_nice = ThisThreadNice();
  const int lowered = std::min(19, process_nice + kNiceIncrement);
  Engine::Options options;
  options.data_dir = (dir.path() / "m").string();
  options.config = worker::SmallMlpConfig();
  options.background_nice = kNiceIncrement;
  auto engine = Engine::Open(options);
  ASSERT_TRUE(engine.ok()) << engine.status();
  ASSERT_TRUE((*engine)->Ingest(worker::RandomSamples(16, 7)).ok());
  ASSERT_TRUE((*engine)->Train().ok());
  auto receipt = (*engine)->DeleteSamples({"s3"});
  ASSERT_TRUE(receipt.ok()) << receipt.status();
  // RESTORED: the purge pass (flush, compaction) and a retrain have run.
  ASSERT_TRUE((*engine)
                  ->WaitForStage(receipt->deletion_id,
                                 DeletionStage::kRestored, absl::Seconds(60))
                  .ok());

  for (const std::string name : {"oubli-purge", "oubli-retrain"}) {
    const std::vector<int> nices = NicesOf(name);
    ASSERT_FALSE(nices.empty()) << "no thread named " << name;
    for (int nice : nices) EXPECT_EQ(nice, lowered) << name;
  }
  // RocksDB names its pool threads rocksdb:low and rocksdb:high; each
  // lowers itself on its first job, and the purge gave both pools one.
  for (const std::string pool : {"rocksdb:low", "rocksdb:high"}) {
    const std::vector<int> nices = NicesOf(pool);
    ASSERT_FALSE(nices.empty()) << "no thread named " << pool;
    EXPECT_NE(std::find(nices.begin(), nices.end(), lowered), nices.end())
        << pool;
  }
  // Requests run on their callers' threads, at the process's priority.
  EXPECT_EQ(ThisThreadNice(), process_nice);
}

TEST(BackgroundPriorityTest, RefusesAnIncrementOutsideTheNiceRange) {
  testing_util::ScopedTempDir dir;
  for (int increment : {-1, 20}) {
    Engine::Options options;
    options.data_dir = (dir.path() / "m").string();
    options.config = worker::SmallMlpConfig();
    options.background_nice = increment;
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
