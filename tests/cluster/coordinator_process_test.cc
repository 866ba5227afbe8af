// The real oubli-coordinator and oubli-worker binaries as child processes,
// driven over the wire: crash safety of acknowledged deletions under
// SIGKILL, bitwise agreement with the in-process engine (with and without
// workers), a worker killed mid-training, and hostile requests. Asserts
// behaviour, never timing (time only bounds waits as hang guards).
#include <gmock/gmock.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/types.h"
#include "coordinator/engine.h"
#include "coordinator/grpc_service.h"
#include "oubli/cluster/cluster.grpc.pb.h"
#include "oubli/v1/oubli.grpc.pb.h"
#include "tests/testing/server_process.h"
#include "tests/testing/service_client.h"
#include "tests/testing/test_util.h"
#include "worker/determinism.h"

namespace oubli {
namespace {

namespace v1 = ::oubli::v1;
using ::testing::Contains;
using ::testing::IsEmpty;
using testing_util::Deadline;
using testing_util::TinyConfig;
using testing_util::TinySamples;

class CoordinatorProcessTest : public testing_util::ServiceClientTest {
 protected:
  void TearDown() override {
    stub_.reset();
    coordinator_.Kill();  // always: never leave a child behind
  }

  void StartCoordinator(std::vector<std::string> extra_flags = {}) {
    std::vector<std::string> flags = {
        absl::StrCat("--data_dir=", (dir_.path() / "data").string()),
        "--listen=127.0.0.1:0", "--metrics_listen=127.0.0.1:0"};
    flags.insert(flags.end(), extra_flags.begin(), extra_flags.end());
    ASSERT_TRUE(coordinator_.Start(
        flags, dir_.path() / absl::StrCat("coordinator-", ++starts_, ".log")));
    stub_ = testing_util::NewStub(coordinator_.address(), 0);
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
  // before the deletion.
  void InProcessFingerprint(const v1::ModelConfig& config_proto,
                            const std::vector<v1::Sample>& samples,
                            const std::string& owner, std::string* fingerprint,
                            std::string* fingerprint_before) {
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
    std::vector<Sample> domain;
    for (const v1::Sample& s : samples) {
      Sample d;
      d.id = s.id();
      d.owner = s.owner();
      d.label = s.label();
      d.feature_type = FeatureType::kU8;
      d.features = s.features();
      domain.push_back(std::move(d));
    }
    ASSERT_TRUE((*engine)->Ingest(domain).ok());
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
  }

  testing_util::ScopedTempDir dir_;  // first: outlives the process's files
  testing_util::ServerProcess coordinator_{OUBLI_COORDINATOR_BIN};
  int starts_ = 0;
  int engines_ = 0;
};

std::string ZeroFeatures(int rows) {
  return std::string(
      static_cast<size_t>(rows) * testing_util::kTinyWidth * sizeof(float),
      '\0');
}

TEST_F(CoordinatorProcessTest, CoordinatorSigkillLosesNoAcknowledgedDeletion) {
  constexpr int kSamples = 2000;
  constexpr int kClients = 8;
  constexpr int kAcksBeforeKill = 100;
  ASSERT_NO_FATAL_FAILURE(StartCoordinator());
  ASSERT_NO_FATAL_FAILURE(CreateTrainedModel(
      "tiny", TinyConfig(1, 32), TinySamples(kSamples, 1, /*first_id=*/0)));

  // Clients delete distinct single samples until their first failure.
  absl::Mutex mu;
  std::map<std::string, std::string> acknowledged;  // sample id -> deletion
  std::vector<std::string> failures_before_kill;
  std::atomic<bool> killed{false};
  std::atomic<int> acks{0};
  std::vector<std::thread> clients;
  const std::string address = coordinator_.address();
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      auto stub = testing_util::NewStub(address, c + 1);
      for (int i = c; i < kSamples; i += kClients) {
        const std::string id = "sample-" + std::to_string(i);
        grpc::ClientContext context;
        context.set_deadline(Deadline(60));
        v1::DeleteSamplesRequest request;
        request.set_model_id("tiny");
        request.add_sample_ids(id);
        v1::DeletionReceipt receipt;
        grpc::Status s = stub->DeleteSamples(&context, request, &receipt);
        absl::MutexLock lock(&mu);
        if (!s.ok()) {
          if (!killed.load()) {
            failures_before_kill.push_back(
                absl::StrCat(id, ": ", s.error_code(), " ", s.error_message()));
          }
          return;
        }
        if (receipt.resolved_ids_size() == 1 && receipt.resolved_ids(0) == id) {
          acknowledged[id] = receipt.deletion_id();
          ++acks;
        } else {
          failures_before_kill.push_back(
              absl::StrCat(id, ": not resolved by ", receipt.deletion_id()));
          return;
        }
      }
    });
  }
  // Kill once enough deletions are acknowledged (hang guard: 60 s) while the
  // clients are still sending.
  for (int i = 0; i < 6000 && acks.load() < kAcksBeforeKill; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  killed = true;
  const int wait_status = coordinator_.Stop(SIGKILL);
  EXPECT_TRUE(WIFSIGNALED(wait_status));
  for (auto& t : clients) t.join();
  EXPECT_THAT(failures_before_kill, IsEmpty());
  ASSERT_GT(acknowledged.size(), 0u);
  EXPECT_LT(acknowledged.size(), static_cast<size_t>(kSamples))
      << "clients finished before the kill: nothing was in flight";

  // Same data dir.
  ASSERT_NO_FATAL_FAILURE(StartCoordinator());
  std::vector<std::string> acked_ids;
  for (const auto& [id, deletion_id] : acknowledged) {
    acked_ids.push_back(id);
    v1::GetDeletionRequest request;
    request.set_deletion_id(deletion_id);
    v1::DeletionReceipt receipt;
    grpc::Status status =
        Call(&v1::Oubli::Stub::GetDeletion, request, &receipt);
    ASSERT_TRUE(status.ok()) << deletion_id << ": " << status.error_message();
    EXPECT_GE(receipt.stage(), v1::ACCEPTED) << deletion_id;
    EXPECT_THAT(receipt.resolved_ids(), Contains(id)) << deletion_id;
  }
  // Deleting them again resolves none: each is reported as already deleted
  // by the deletion that acknowledged it.
  v1::DeletionReceipt again;
  grpc::Status status = Delete("tiny", acked_ids, "", &again);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_THAT(again.resolved_ids(), IsEmpty());
  std::map<std::string, std::string> reported;
  for (const auto& a : again.already_deleted()) {
    reported[a.sample_id()] = a.deletion_id();
  }
  EXPECT_EQ(reported, acknowledged);

  // Requests in flight at the kill may or may not have landed.
  const v1::Model after = WaitUntilRestored("tiny");
  RecordProperty("acknowledged", static_cast<int>(acknowledged.size()));
  RecordProperty("landed_unacknowledged",
                 static_cast<int>(kSamples - acknowledged.size() -
                                  after.active_samples()));
  EXPECT_LE(after.active_samples(),
            kSamples - static_cast<int64_t>(acknowledged.size()));
  EXPECT_GE(after.active_samples(),
            kSamples - static_cast<int64_t>(acknowledged.size()) - kClients);
  EXPECT_EQ(after.missing_prefixes(), 0);
  v1::PredictResponse prediction;
  status = PredictF32le("tiny", 2, ZeroFeatures(2), &prediction);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(prediction.rows(), 2);
  EXPECT_EQ(prediction.fingerprint(), after.fingerprint());
}

TEST_F(CoordinatorProcessTest, ServiceMatchesInProcessEngine) {
  const std::vector<v1::Sample> samples = TinySamples(60, 1, /*first_id=*/0);
  ASSERT_NO_FATAL_FAILURE(StartCoordinator());
  v1::Model created;
  ASSERT_NO_FATAL_FAILURE(
      CreateTrainedModel("tiny", TinyConfig(2, 8), samples, &created));
  v1::DeletionReceipt receipt;
  grpc::Status status = ForgetOwner("tiny", "owner-3", &receipt);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(receipt.resolved_ids_size(), 5);
  ASSERT_NO_FATAL_FAILURE(WatchToRestored(receipt.deletion_id()));
  v1::Model served;
  ASSERT_TRUE(GetModel("tiny", &served).ok());
  ASSERT_EQ(served.missing_prefixes(), 0);

  std::string engine_fingerprint, engine_before;
  ASSERT_NO_FATAL_FAILURE(InProcessFingerprint(created.config(), samples,
                                               "owner-3", &engine_fingerprint,
                                               &engine_before));
  EXPECT_EQ(served.fingerprint(), engine_fingerprint);
  EXPECT_EQ(receipt.fingerprint_before(), engine_before);
}

// grpc.health.v1.Health/Check by hand (Debian ships no health proto):
// HealthCheckRequest{service} is field 1 (string); the response's status is
// field 1 (enum), SERVING = 1, i.e. the bytes 08 01.
grpc::Status HealthCheck(const std::string& address, const std::string& service,
                         std::string* response_bytes) {
  grpc::GenericStub stub(
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  std::string request_bytes;
  if (!service.empty()) {
    request_bytes.push_back(0x0a);
    request_bytes.push_back(static_cast<char>(service.size()));
    request_bytes += service;
  }
  grpc::Slice slice(request_bytes);
  grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer response;
  grpc::ClientContext context;
  context.set_deadline(Deadline(30));
  std::promise<grpc::Status> done;
  stub.UnaryCall(&context, "/grpc.health.v1.Health/Check", grpc::StubOptions(),
                 &request, &response,
                 [&done](grpc::Status status) { done.set_value(status); });
  grpc::Status status = done.get_future().get();
  response_bytes->clear();
  std::vector<grpc::Slice> slices;
  if (status.ok() && response.Dump(&slices).ok()) {
    for (const grpc::Slice& s : slices) {
      response_bytes->append(reinterpret_cast<const char*>(s.begin()),
                             s.size());
    }
  }
  return status;
}

TEST_F(CoordinatorProcessTest, HostileRequestsOverTheWire) {
  ASSERT_NO_FATAL_FAILURE(StartCoordinator({"--max_message_bytes=1048576"}));
  v1::Model model;
  ASSERT_TRUE(Create("tiny", TinyConfig(1, 8), &model).ok());

  std::string health;
  grpc::Status status = HealthCheck(coordinator_.address(), "", &health);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(health, std::string("\x08\x01", 2));
  status = HealthCheck(coordinator_.address(), "oubli.v1.Oubli", &health);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(health, std::string("\x08\x01", 2));

  v1::Model unknown;
  EXPECT_EQ(GetModel("ghost", &unknown).error_code(),
            grpc::StatusCode::NOT_FOUND);
  v1::DeletionReceipt receipt;
  EXPECT_EQ(Delete("tiny", {}, "", &receipt).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Delete("tiny", {std::string("bad-\xff\xfe", 6)}, "", &receipt)
                .error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  v1::PredictResponse prediction;
  // 2 MiB of features against a 1 MiB limit.
  EXPECT_EQ(PredictF32le("tiny", 4096, std::string(2 << 20, '\0'), &prediction)
                .error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(PredictF32le("tiny", 2, ZeroFeatures(1), &prediction).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);

  // Still serving after all of it.
  EXPECT_TRUE(GetModel("tiny", &model).ok());
  status = HealthCheck(coordinator_.address(), "", &health);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(health, std::string("\x08\x01", 2));
  // And shuts down cleanly on SIGTERM.
  const int wait_status = coordinator_.Stop(SIGTERM);
  EXPECT_TRUE(WIFEXITED(wait_status) && WEXITSTATUS(wait_status) == 0)
      << coordinator_.Log();
}

// ------------------------------------------------------------ workers

// A coordinator and oubli-worker processes: positions train on the workers.
class WorkerClusterTest : public CoordinatorProcessTest {
 protected:
  void TearDown() override {
    for (auto& worker : workers_) worker->Kill();
    CoordinatorProcessTest::TearDown();
  }

  // Starts a worker and waits until it has registered.
  // Starts worker-N (N = how many were started before) and waits until it
  // has registered. With `chunks`, it keeps chunks in WorkerDir(N).
  void StartWorker(bool chunks = false,
                   std::vector<std::string> extra_flags = {}) {
    const int index = static_cast<int>(workers_.size());
    workers_.push_back(
        std::make_unique<testing_util::ServerProcess>(OUBLI_WORKER_BIN));
    ASSERT_NO_FATAL_FAILURE(RestartWorker(index, chunks, extra_flags));
  }
  void RestartWorker(int index, bool chunks = false,
                     std::vector<std::string> extra_flags = {}) {
    std::vector<std::string> flags = {
        absl::StrCat("--coordinator=", coordinator_.address()),
        "--listen=127.0.0.1:0", absl::StrCat("--name=worker-", index)};
    if (chunks) flags.push_back(absl::StrCat("--data_dir=", WorkerDir(index)));
    flags.insert(flags.end(), extra_flags.begin(), extra_flags.end());
    ASSERT_TRUE(workers_[index]->Start(
        flags, dir_.path() / absl::StrCat("worker-", index, ".log")));
    std::string id;
    ASSERT_TRUE(workers_[index]->WaitForLine("registered as ", &id));
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

  // Sum of positions_trained over the model's workers.
  static int64_t RemotePositions(const v1::Model& model) {
    int64_t total = 0;
    for (const v1::WorkerStatus& w : model.workers()) {
      total += w.positions_trained();
    }
    return total;
  }

  std::vector<std::unique_ptr<testing_util::ServerProcess>> workers_;
};

TEST_F(WorkerClusterTest, WorkersTrainAndTheResultEqualsTheInProcessEngine) {
  const std::vector<v1::Sample> samples = TinySamples(60, 1, /*first_id=*/0);
  // Generous: a late heartbeat on a loaded machine must not move a
  // position to the coordinator (the test counts remote positions).
  ASSERT_NO_FATAL_FAILURE(StartCoordinator({"--worker_timeout=60s"}));
  for (int i = 0; i < 3; ++i) ASSERT_NO_FATAL_FAILURE(StartWorker());
  v1::Model created;
  v1::Job job;
  ASSERT_NO_FATAL_FAILURE(
      CreateTrainedModel("tiny", TinyConfig(2, 8), samples, &created, &job));
  v1::Model trained;
  ASSERT_TRUE(GetModel("tiny", &trained).ok());
  EXPECT_EQ(trained.worker_placement(), "workers");
  ASSERT_EQ(trained.workers_size(), 3);
  // Every position went to a worker; none was trained in the coordinator.
  EXPECT_EQ(RemotePositions(trained), job.trained_prefixes());

  v1::DeletionReceipt receipt;
  grpc::Status status = ForgetOwner("tiny", "owner-3", &receipt);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_NO_FATAL_FAILURE(WatchToRestored(receipt.deletion_id()));
  v1::Model restored;
  ASSERT_TRUE(GetModel("tiny", &restored).ok());
  EXPECT_GT(RemotePositions(restored), RemotePositions(trained));

  std::string engine_fingerprint, engine_before;
  ASSERT_NO_FATAL_FAILURE(InProcessFingerprint(created.config(), samples,
                                               "owner-3", &engine_fingerprint,
                                               &engine_before));
  EXPECT_EQ(trained.fingerprint(), engine_before);
  EXPECT_EQ(restored.fingerprint(), engine_fingerprint);
}

TEST_F(WorkerClusterTest, WorkerSigkillMidTrainingDoesNotStopTheJob) {
  // Positions long enough (batch 1) to be caught mid-training.
  const v1::ModelConfig config = TinyConfig(4, 1);
  const std::vector<v1::Sample> samples = TinySamples(1200, 1, 0);
  ASSERT_NO_FATAL_FAILURE(StartCoordinator());
  for (int i = 0; i < 2; ++i) ASSERT_NO_FATAL_FAILURE(StartWorker());
  v1::Model created;
  ASSERT_TRUE(Create("tiny", config, &created).ok());
  v1::IngestSamplesResponse ingested;
  ASSERT_TRUE(Ingest("tiny", {samples}, &ingested).ok());
  v1::TrainRequest train;
  train.set_model_id("tiny");
  v1::Job job;
  ASSERT_TRUE(Call(&v1::Oubli::Stub::Train, train, &job).ok());

  // Kill worker-0 once it is busy with a position.
  bool killed = false;
  for (int i = 0; i < 6000 && !killed; ++i) {
    v1::Model model;
    ASSERT_TRUE(GetModel("tiny", &model).ok());
    for (const v1::WorkerStatus& w : model.workers()) {
      if (w.name() == "worker-0" && w.busy() > 0) {
        workers_[0]->Stop(SIGKILL);
        killed = true;
      }
    }
    if (!killed) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(killed) << "worker-0 never got a position";

  v1::GetJobRequest get;
  get.set_job_id(job.job_id());
  for (int i = 0; i < 3000; ++i) {
    ASSERT_TRUE(Call(&v1::Oubli::Stub::GetJob, get, &job).ok());
    if (job.state() != v1::Job::PENDING && job.state() != v1::Job::RUNNING) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_EQ(job.state(), v1::Job::SUCCEEDED) << job.error();
  ASSERT_NO_FATAL_FAILURE(WaitUntilDead("tiny", "worker-0"));
  v1::Model model;
  ASSERT_TRUE(GetModel("tiny", &model).ok());
  EXPECT_EQ(model.missing_prefixes(), 0);
  for (const v1::WorkerStatus& w : model.workers()) {
    if (w.name() != "worker-0") EXPECT_TRUE(w.alive()) << w.name();
  }

  // Same bits as a run without faults.
  std::string engine_fingerprint, unused;
  ASSERT_NO_FATAL_FAILURE(InProcessFingerprint(created.config(), samples, "",
                                               &engine_fingerprint, &unused));
  EXPECT_EQ(model.fingerprint(), engine_fingerprint);
}

TEST_F(WorkerClusterTest, WorkerRejectsMalformedPositionsPrecisely) {
  ASSERT_NO_FATAL_FAILURE(StartCoordinator());
  ASSERT_NO_FATAL_FAILURE(StartWorker());
  auto stub = cluster::Worker::NewStub(grpc::CreateChannel(
      workers_[0]->address(), grpc::InsecureChannelCredentials()));
  v1::Model created;
  ASSERT_TRUE(Create("tiny", TinyConfig(1, 8), &created).ok());
  absl::StatusOr<ModelConfig> config =
      coordinator::ConfigFromProto(created.config());
  ASSERT_TRUE(config.ok()) << config.status();

  cluster::TrainPositionRequest good;
  good.set_config(ConfigToText(*config));
  good.set_environment(worker::NumericEnvironment());
  good.set_shard(0);
  good.add_prefix(0);
  good.set_rows(2);
  good.set_features(std::string(2 * testing_util::kTinyWidth * 4, '\0'));
  good.set_labels(std::string(2 * 8, '\0'));
  auto train = [&](const cluster::TrainPositionRequest& request) {
    grpc::ClientContext context;
    context.set_deadline(Deadline(60));
    cluster::TrainPositionResponse response;
    return stub->TrainPosition(&context, request, &response);
  };
  EXPECT_TRUE(train(good).ok());

  struct Case {
    const char* what;
    std::function<void(cluster::TrainPositionRequest*)> mutate;
    grpc::StatusCode code;
  };
  const std::vector<Case> cases = {
      {"other environment",
       [](auto* r) { r->set_environment("torch=0.0 other cpu"); },
       grpc::StatusCode::FAILED_PRECONDITION},
      {"config of another release",
       [](auto* r) { r->set_config("shards=banana"); },
       grpc::StatusCode::FAILED_PRECONDITION},
      {"rows beyond the bytes sent",
       [](auto* r) { r->set_rows(int64_t{1} << 62); },
       grpc::StatusCode::INVALID_ARGUMENT},
      {"shard out of range", [](auto* r) { r->set_shard(7); },
       grpc::StatusCode::INVALID_ARGUMENT},
      {"repeated slice", [](auto* r) { r->add_prefix(0); },
       grpc::StatusCode::INVALID_ARGUMENT},
      {"short features", [](auto* r) { r->mutable_features()->pop_back(); },
       grpc::StatusCode::INVALID_ARGUMENT},
      {"negative rows", [](auto* r) { r->set_rows(-1); },
       grpc::StatusCode::INVALID_ARGUMENT},
      {"label out of range", [](auto* r) { (*r->mutable_labels())[0] = 99; },
       grpc::StatusCode::INVALID_ARGUMENT},
      {"length-2 prefix without parent", [](auto* r) { r->add_prefix(1); },
       grpc::StatusCode::INVALID_ARGUMENT},
      {"corrupt parent",
       [](auto* r) {
         r->add_prefix(1);
         r->set_parent("not a checkpoint");
       },
       grpc::StatusCode::INVALID_ARGUMENT},
  };
  for (const Case& c : cases) {
    cluster::TrainPositionRequest request = good;
    c.mutate(&request);
    EXPECT_EQ(train(request).error_code(), c.code) << c.what;
  }
}

// Every regular file under `root`, read whole.
std::vector<std::pair<std::string, std::string>> FilesUnder(
    const std::filesystem::path& root) {
  std::vector<std::pair<std::string, std::string>> files;
  for (const auto& entry :
       std::filesystem::recursive_directory_iterator(root)) {
    if (entry.is_regular_file()) {
      files.emplace_back(entry.path().string(),
                         testing_util::ReadWholeFile(entry.path()));
    }
  }
  return files;
}

TEST_F(WorkerClusterTest,
       LostCheckpointsAreRebuiltFromChunksAndPurgesReachThem) {
  ASSERT_NO_FATAL_FAILURE(StartCoordinator());
  for (int i = 0; i < 3; ++i) ASSERT_NO_FATAL_FAILURE(StartWorker(true));
  v1::Model created;
  ASSERT_NO_FATAL_FAILURE(CreateTrainedModel("tiny", TinyConfig(2, 8),
                                             TinySamples(60, 1, 0), &created));
  v1::Model trained;
  ASSERT_TRUE(GetModel("tiny", &trained).ok());
  const std::filesystem::path checkpoints =
      dir_.path() / "data" / "tiny" / "checkpoints";
  const auto before = FilesUnder(checkpoints);
  ASSERT_FALSE(before.empty());
  // Each checkpoint has a copy on the workers (3 workers: a mirror).
  for (const auto& [path, bytes] : before) {
    bool copied = false;
    for (int i = 0; i < 3 && !copied; ++i) {
      for (const auto& [chunk_path, chunk] : FilesUnder(WorkerDir(i))) {
        copied |= chunk.find(bytes) != std::string::npos;
      }
    }
    EXPECT_TRUE(copied) << path << " has no copy on any worker";
  }

  // The coordinator loses every checkpoint and one holder dies.
  const std::string address = coordinator_.address();
  coordinator_.Kill();
  std::filesystem::remove_all(checkpoints);
  workers_[0]->Kill();
  ASSERT_NO_FATAL_FAILURE(
      StartCoordinator({absl::StrCat("--listen=", address)}));
  std::string metrics_address;
  ASSERT_TRUE(coordinator_.WaitForLine("metrics on ", &metrics_address));
  v1::Model restored = WaitUntilRestored("tiny");
  EXPECT_EQ(restored.missing_prefixes(), 0);
  EXPECT_EQ(restored.fingerprint(), trained.fingerprint());
  const std::string metrics =
      testing_util::HttpGet(metrics_address, "/metrics");
  // Rebuilt, not retrained: no position trained in this process.
  EXPECT_EQ(testing_util::MetricValue(
                metrics, "oubli_training_positions_total{model=\"tiny\"}"),
            0);
  EXPECT_GT(
      testing_util::MetricValue(
          metrics, "oubli_checkpoint_bytes_restored_total{model=\"tiny\"}"),
      0);

  // Forgetting an owner destroys every copy of the checkpoints that held
  // it: on the coordinator and on every worker (the dead one included,
  // once it is back; until then the deletion is not PURGED).
  ASSERT_NO_FATAL_FAILURE(RestartWorker(0, true));
  const auto current = FilesUnder(checkpoints);
  v1::DeletionReceipt receipt;
  grpc::Status status = ForgetOwner("tiny", "owner-3", &receipt);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_NO_FATAL_FAILURE(WatchToRestored(receipt.deletion_id()));
  std::map<std::string, std::string> after;
  for (auto& [path, bytes] : FilesUnder(checkpoints)) after[path] = bytes;
  int purged = 0;
  const auto everything = FilesUnder(dir_.path());
  for (const auto& [path, bytes] : current) {
    if (after.count(path) != 0) continue;  // still current
    ++purged;
    for (const auto& [file, content] : everything) {
      EXPECT_EQ(content.find(bytes), std::string::npos)
          << "bytes of purged checkpoint " << path << " remain in " << file;
    }
  }
  EXPECT_GT(purged, 0);
}

TEST_F(WorkerClusterTest, ClusterProtocolRefusesStrangers) {
  const std::string token_file = (dir_.path() / "token").string();
  {
    std::ofstream out(token_file);
    out << "s3cret-cluster-token\n";
  }
  ASSERT_NO_FATAL_FAILURE(
      StartCoordinator({absl::StrCat("--cluster_token_file=", token_file)}));
  ASSERT_NO_FATAL_FAILURE(
      StartWorker(false, {absl::StrCat("--cluster_token_file=", token_file)}));

  auto membership = cluster::Membership::NewStub(grpc::CreateChannel(
      coordinator_.address(), grpc::InsecureChannelCredentials()));
  cluster::RegisterRequest register_request;
  register_request.set_address("127.0.0.1:1");
  register_request.set_environment(worker::NumericEnvironment());
  register_request.set_protocol_version(1);
  auto do_register = [&](const std::string& token, int version) {
    grpc::ClientContext context;
    context.set_deadline(Deadline(30));
    if (!token.empty()) context.AddMetadata("oubli-cluster-token", token);
    cluster::RegisterRequest request = register_request;
    request.set_protocol_version(version);
    cluster::RegisterResponse response;
    return membership->Register(&context, request, &response).error_code();
  };
  EXPECT_EQ(do_register("", 1), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(do_register("wrong", 1), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(do_register("s3cret-cluster-token", 99),
            grpc::StatusCode::FAILED_PRECONDITION);

  // Nor does the worker train for a caller without the token.
  auto worker = cluster::Worker::NewStub(grpc::CreateChannel(
      workers_[0]->address(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(Deadline(30));
  cluster::TrainPositionResponse response;
  EXPECT_EQ(
      worker
          ->TrainPosition(&context, cluster::TrainPositionRequest(), &response)
          .error_code(),
      grpc::StatusCode::UNAUTHENTICATED);

  // The worker with the token trains; the model comes out the same.
  v1::Model created;
  ASSERT_NO_FATAL_FAILURE(CreateTrainedModel("tiny", TinyConfig(1, 8),
                                             TinySamples(40, 1, 0), &created));
  v1::Model model;
  ASSERT_TRUE(GetModel("tiny", &model).ok());
  EXPECT_GT(RemotePositions(model), 0);
}

}  // namespace
}  // namespace oubli
