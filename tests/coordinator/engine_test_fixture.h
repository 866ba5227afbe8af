// What the engine tests (engine_*_test.cc) share: a tiny learnable model
// and its data, and a fixture that opens engines in a temporary directory
// and trains the from-scratch model a restored one must equal bit for bit.
#ifndef OUBLI_TESTS_COORDINATOR_ENGINE_TEST_FIXTURE_H_
#define OUBLI_TESTS_COORDINATOR_ENGINE_TEST_FIXTURE_H_

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "coordinator/engine.h"
#include "coordinator/metrics.h"
#include "coordinator/remote_training.h"
#include "tests/testing/test_util.h"

namespace oubli::coordinator {

inline constexpr int kSide = 4;  // 4x4 "images"
inline constexpr int kClasses = 3;

// Sample placement unless told otherwise: most tests want one request to
// reach both shards; the owner-placement tests say so.
ModelConfig TinyConfig(uint64_t seed,
                       Placement placement = Placement::kSample);

// TinyConfig retraining in BATCHED mode behind a one-hour window (so only
// max_batch, or ignoring the policy, starts it within a test).
ModelConfig TinyBatchedConfig(uint64_t seed, int max_batch);

// Learnable synthetic data: the label is which third of the image is
// brightest. Owners hold 5 samples each.
std::vector<Sample> TinySamples(int n, uint64_t seed);

// name -> SHA-256 of every checkpoint file in `dir`.
std::map<std::string, std::string> CheckpointDigests(const std::string& dir);

class EngineTest : public ::testing::Test {
 protected:
  std::unique_ptr<Engine> OpenEngine(
      const std::string& name, const ModelConfig& config,
      bool background = false,
      std::shared_ptr<CheckpointReplicas> replicas = nullptr);

  // Opens model `name` with `config` and the rest of `options` as given;
  // null (and a failed expectation) if it does not open.
  std::unique_ptr<Engine> OpenEngineWith(const std::string& name,
                                         const ModelConfig& config,
                                         Engine::Options options);

  // Model "m" on `samples`, trained, whose positions go first to `trainer`
  // (a test double that may run a hook, then declines), with retraining
  // only when the test asks; null (and a failed expectation) on failure.
  std::unique_ptr<Engine> OpenTrainedVia(
      std::shared_ptr<RemoteTrainer> trainer, const ModelConfig& config,
      const std::vector<Sample>& samples,
      std::shared_ptr<EngineMetrics> metrics = nullptr);

  // Fingerprint of a fresh engine trained from scratch on `samples` minus
  // `deleted`.
  std::string ScratchFingerprint(const ModelConfig& config,
                                 const std::vector<Sample>& samples,
                                 const std::set<std::string>& deleted);

  // Sample ids by (shard, slice) under `config`'s sharding plan.
  static std::map<std::pair<int, int>, std::vector<std::string>> BySlice(
      const ModelConfig& config, const std::vector<Sample>& samples);

  // Opens model `name`, ingests and trains `samples`, deletes `sample_id`
  // and closes the engine (before retraining, maybe before the purge);
  // returns the deletion id.
  std::string DeleteThenClose(const std::string& name,
                              const ModelConfig& config,
                              const std::vector<Sample>& samples,
                              const std::string& sample_id);

  // Every checkpoint of the last ScratchFingerprint engine, by name.
  std::map<std::string, std::string> last_scratch_checkpoints_;

  testing_util::ScopedTempDir temp_dir_;
  const std::filesystem::path root_ = temp_dir_.path();
  int scratch_count_ = 0;
};

// Counts what the engine reports through EngineMetrics.
class CountingMetrics : public EngineMetrics {
 public:
  void DeletionAccepted(int64_t samples) override {
    ++accepted;
    deleted_samples += samples;
  }
  void DeletionForgotten(absl::Duration since_request) override {
    ++forgotten;
    EXPECT_GE(since_request, absl::ZeroDuration());
  }
  void DeletionPurged(absl::Duration) override { ++purged; }
  void DeletionRestored(absl::Duration) override { ++restored; }
  void PositionTrained(int64_t sample_visits, int64_t steps,
                       int64_t checkpoint_bytes) override {
    ++positions;
    samples += sample_visits;
    this->steps += steps;
    bytes += checkpoint_bytes;
  }
  void PositionWasted(int64_t) override { ++wasted; }
  std::atomic<int> accepted{0}, forgotten{0}, purged{0}, restored{0},
      wasted{0};
  std::atomic<int64_t> deleted_samples{0}, positions{0}, samples{0}, steps{0},
      bytes{0};
};

}  // namespace oubli::coordinator

#endif  // OUBLI_TESTS_COORDINATOR_ENGINE_TEST_FIXTURE_H_
