// Fixture of the multi-process tests (tests/cluster, tests/chaos): the real
// oubli-coordinator and oubli-worker binaries as child processes in a
// scratch dir, the client helpers of ServiceClientTest on the coordinator,
// and the in-process engine to compare against. Test binaries define
// OUBLI_COORDINATOR_BIN and OUBLI_WORKER_BIN.
#ifndef OUBLI_TESTS_TESTING_CLUSTER_TEST_H_
#define OUBLI_TESTS_TESTING_CLUSTER_TEST_H_

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/types.h"
#include "coordinator/engine.h"
#include "coordinator/grpc_service.h"
#include "coordinator/request_validation.h"
#include "oubli/v1/oubli.grpc.pb.h"
#include "tests/testing/server_process.h"
#include "tests/testing/service_client.h"
#include "tests/testing/test_util.h"

namespace oubli::testing_util {

class ClusterTest : public ServiceClientTest {
 protected:
  void TearDown() override {
    stub_.reset();
    // Always: never leave a child behind.
    for (auto& worker : workers_) worker->Kill();
    coordinator_.Kill();
  }

  void StartCoordinator(std::vector<std::string> extra_flags = {}) {
    std::vector<std::string> flags = {
        absl::StrCat("--data_dir=", (dir_.path() / "data").string()),
        "--listen=127.0.0.1:0", "--metrics_listen=127.0.0.1:0",
        // The in-process engine the results are compared with computes on
        // the CPU (the library default), on GPU hosts too.
        "--device=cpu"};
    flags.insert(flags.end(), extra_flags.begin(), extra_flags.end());
    ASSERT_TRUE(coordinator_.Start(
        flags, dir_.path() / absl::StrCat("coordinator-", ++starts_, ".log")));
    stub_ = NewStub(coordinator_.address(), 0);
  }

  // Polls GetModel until nothing is missing or pending (hang guard: 120 s).
  v1::Model WaitUntilRestored(const std::string& model_id) {
    v1::Model model;
    for (int i = 0; i < 1200; ++i) {
      grpc::Status status = GetModel(model_id, &model);
      EXPECT_TRUE(status.ok()) << status.error_message();
      if (!status.ok() ||
          (model.missing_prefixes() == 0 && model.pending_deletions() == 0)) {
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return model;
  }

  // The in-process engine on `samples` with `config` (every field as the
  // server filled it in): trained, then, unless `owner` is empty, with
  // `owner` forgotten and RESTORED. Its served fingerprint and the one
  // before the deletion; with `inputs`, also its final Predict of them.
  void InProcessFingerprint(const v1::ModelConfig& config_proto,
                            const std::vector<v1::Sample>& samples,
                            const std::string& owner, std::string* fingerprint,
                            std::string* fingerprint_before,
                            const std::vector<float>* inputs = nullptr,
                            std::vector<float>* probabilities = nullptr) {
    absl::StatusOr<ModelConfig> config =
        coordinator::ConfigFromProto(config_proto);
    ASSERT_TRUE(config.ok()) << config.status();
    config->model_id = "tiny";
    coordinator::Engine::Options options;
    options.data_dir =
        (dir_.path() / absl::StrCat("engine-", ++engines_)).string();
    options.config = *config;
    auto engine = coordinator::Engine::Open(options);
    ASSERT_TRUE(engine.ok()) << engine.status();
    // As the server reads them off the wire (features or tokens).
    v1::IngestSamplesRequest request;
    for (const v1::Sample& s : samples) *request.add_samples() = s;
    absl::StatusOr<coordinator::IngestBatch> batch =
        coordinator::TakeIngestSamples(0, &request);
    ASSERT_TRUE(batch.ok()) << batch.status();
    ASSERT_TRUE(batch->rejected.empty()) << batch->rejected[0].second;
    auto ingested = (*engine)->Ingest(batch->samples);
    ASSERT_TRUE(ingested.ok()) << ingested.status();
    ASSERT_TRUE(ingested->rejected.empty()) << ingested->rejected[0].second;
    ASSERT_TRUE((*engine)->Train().ok());
    *fingerprint_before = (*engine)->Fingerprint();
    if (!owner.empty()) {
      auto forgotten = (*engine)->ForgetOwner(owner);
      ASSERT_TRUE(forgotten.ok()) << forgotten.status();
      ASSERT_TRUE(
          (*engine)
              ->WaitForRestored(forgotten->deletion_id, absl::Seconds(120))
              .ok());
      *fingerprint_before = forgotten->fingerprint_before;
    }
    *fingerprint = (*engine)->Fingerprint();
    if (inputs != nullptr) {
      const int64_t rows =
          static_cast<int64_t>(inputs->size()) / config->backbone.InputSize();
      auto prediction = (*engine)->Predict(*inputs, rows);
      ASSERT_TRUE(prediction.ok()) << prediction.status();
      *probabilities = prediction->probabilities;
    }
  }

  // Starts worker-N (N = how many were started before) and waits until it
  // has registered. With `chunks`, it keeps chunks in WorkerDir(N).
  void StartWorker(bool chunks = false,
                   std::vector<std::string> extra_flags = {}) {
    const int index = static_cast<int>(workers_.size());
    workers_.push_back(std::make_unique<ServerProcess>(OUBLI_WORKER_BIN));
    ASSERT_NO_FATAL_FAILURE(RestartWorker(index, chunks, extra_flags));
  }
  void RestartWorker(int index, bool chunks = false,
                     std::vector<std::string> extra_flags = {}) {
    ASSERT_NO_FATAL_FAILURE(LaunchWorker(index, chunks, extra_flags));
    std::string id;
    ASSERT_TRUE(workers_[index]->WaitForLine("registered as ", &id));
  }
  // Starts worker `index` again without waiting for its registration.
  void LaunchWorker(int index, bool chunks = false,
                    std::vector<std::string> extra_flags = {}) {
    std::vector<std::string> flags = {
        absl::StrCat("--coordinator=", coordinator_.address()),
        "--listen=127.0.0.1:0", absl::StrCat("--name=worker-", index),
        "--device=cpu"};
    if (chunks) flags.push_back(absl::StrCat("--data_dir=", WorkerDir(index)));
    flags.insert(flags.end(), extra_flags.begin(), extra_flags.end());
    ASSERT_TRUE(workers_[index]->Start(
        flags, dir_.path() / absl::StrCat("worker-", index, ".log")));
  }
  std::string WorkerDir(int index) const {
    return (dir_.path() / absl::StrCat("worker-", index)).string();
  }

  // Polls GetModel (hang guard: 30 s) until `name` is reported dead.
  void WaitUntilDead(const std::string& model_id, const std::string& name) {
    for (int i = 0; i < 300; ++i) {
      v1::Model model;
      ASSERT_TRUE(GetModel(model_id, &model).ok());
      for (const v1::WorkerStatus& w : model.workers()) {
        if (w.name() == name && !w.alive()) return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    FAIL() << name << " never reported dead";
  }

  // Creates and trains model "tiny" (TinyConfig(1, 8), 40 samples) through
  // stub_ and expects workers to have trained some of its positions.
  void ExpectTinyModelTrainsOnWorkers() {
    v1::Model created;
    ASSERT_NO_FATAL_FAILURE(CreateTrainedModel(
        "tiny", TinyConfig(1, 8), TinySamples(40, 1, 0), &created));
    v1::Model model;
    ASSERT_TRUE(GetModel("tiny", &model).ok());
    EXPECT_GT(RemotePositions(model), 0);
  }

  // Sum of positions_trained over the model's workers.
  static int64_t RemotePositions(const v1::Model& model) {
    int64_t total = 0;
    for (const v1::WorkerStatus& w : model.workers()) {
      total += w.positions_trained();
    }
    return total;
  }

  ScopedTempDir dir_;  // first: outlives the processes' files
  ServerProcess coordinator_{OUBLI_COORDINATOR_BIN};
  std::vector<std::unique_ptr<ServerProcess>> workers_;
  int starts_ = 0;
  int engines_ = 0;
};

// Every regular file under `root`, read whole.
// Every regular file under `root`, read whole.
inline std::vector<std::pair<std::string, std::string>> FilesUnder(
    const std::filesystem::path& root) {
  std::vector<std::pair<std::string, std::string>> files;
  for (const auto& entry :
       std::filesystem::recursive_directory_iterator(root)) {
    if (entry.is_regular_file()) {
      files.emplace_back(entry.path().string(), ReadWholeFile(entry.path()));
    }
  }
  return files;
}

}  // namespace oubli::testing_util

#endif  // OUBLI_TESTS_TESTING_CLUSTER_TEST_H_
