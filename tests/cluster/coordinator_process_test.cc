// The real oubli-coordinator and oubli-worker binaries as child processes,
// driven over the wire: crash safety of acknowledged deletions under
// SIGKILL, bitwise agreement with the in-process engine (with and without
// workers), hostile requests to the API and the cluster protocol. Worker
// and checkpoint loss: tests/chaos. Asserts
// behaviour, never timing (time only bounds waits as hang guards).
#include <gmock/gmock.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <iterator>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/cluster_protocol.h"
#include "common/types.h"
#include "coordinator/engine.h"
#include "coordinator/grpc_service.h"
#include "oubli/cluster/cluster.grpc.pb.h"
#include "oubli/v1/oubli.grpc.pb.h"
#include "storage/encoded_slice.h"
#include "tests/testing/cluster_test.h"
#include "tests/testing/server_process.h"
#include "tests/testing/service_client.h"
#include "tests/testing/test_util.h"
#include "worker/ml/determinism.h"
#include "worker/ml/device.h"

namespace oubli {
namespace {

namespace v1 = ::oubli::v1;
using ::testing::Contains;
using ::testing::IsEmpty;
using testing_util::Deadline;
using testing_util::TinyConfig;
using testing_util::TinySamples;

// Both suites run the same cluster fixture; the names group the tests.
using CoordinatorProcessTest = testing_util::ClusterTest;
using WorkerClusterTest = testing_util::ClusterTest;

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
  int acks = 0;         // guarded by mu
  int wait_status = 0;  // of the killed coordinator; guarded by mu
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
        // A connection that was never made (seen on a loaded machine)
        // sent nothing: try again while the coordinator is up.
        for (int retry = 0;
             retry < 50 && !killed.load() &&
             s.error_code() == grpc::StatusCode::UNAVAILABLE &&
             absl::StrContains(s.error_message(), "failed to connect");
             ++retry) {
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
          grpc::ClientContext retry_context;
          retry_context.set_deadline(Deadline(60));
          s = stub->DeleteSamples(&retry_context, request, &receipt);
        }
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
          if (++acks == kAcksBeforeKill) {
            // Killed from the client that saw the ack, while the others'
            // requests are in flight: a starved test thread must not let
            // the clients finish first.
            killed = true;
            wait_status = coordinator_.Stop(SIGKILL);
          }
        } else {
          failures_before_kill.push_back(
              absl::StrCat(id, ": not resolved by ", receipt.deletion_id()));
          return;
        }
      }
    });
  }
  for (auto& t : clients) t.join();
  ASSERT_TRUE(killed.load())
      << "fewer than " << kAcksBeforeKill << " deletions were acknowledged";
  EXPECT_TRUE(WIFSIGNALED(wait_status));
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

TEST_F(WorkerClusterTest, WorkersTrainAndTheResultEqualsTheInProcessEngine) {
  const std::vector<v1::Sample> samples = TinySamples(60, 1, /*first_id=*/0);
  // Generous: a late heartbeat on a loaded machine must not move a
  // position to the coordinator (the test counts remote positions).
  ASSERT_NO_FATAL_FAILURE(StartCoordinator({"--worker_timeout=60s"}));
  std::vector<std::string> worker_metrics(3);
  for (int i = 0; i < 3; ++i) {
    ASSERT_NO_FATAL_FAILURE(
        StartWorker(false, {"--metrics_listen=127.0.0.1:0"}));
    ASSERT_TRUE(workers_[i]->SawLine("metrics on ", &worker_metrics[i]));
  }
  // Checkpoints the workers hold in memory to answer Predict.
  auto serving_copies = [&] {
    double total = 0;
    for (const std::string& address : worker_metrics) {
      total +=
          testing_util::MetricValue(testing_util::HttpGet(address, "/metrics"),
                                    "oubli_worker_serving_checkpoints");
    }
    return total;
  };
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

  // Predict fans out: every served shard is answered by a worker.
  std::vector<float> inputs(7 * 16);
  for (size_t i = 0; i < inputs.size(); ++i) {
    inputs[i] = static_cast<float>((i * 37) % 256) / 255.0f;
  }
  auto expect_served_by_workers = [&](const v1::PredictResponse& response) {
    int served = 0;
    for (const v1::ServedShard& shard : response.served()) {
      if (!shard.served()) continue;
      ++served;
      EXPECT_TRUE(absl::StartsWith(shard.served_by(), "worker-"))
          << "shard " << shard.shard() << ": '" << shard.served_by() << "'";
    }
    EXPECT_GT(served, 0);
  };
  v1::PredictResponse before_prediction;
  grpc::Status status = Predict("tiny", 7, inputs, &before_prediction);
  ASSERT_TRUE(status.ok()) << status.error_message();
  expect_served_by_workers(before_prediction);

  int served_shards = 0;
  for (const v1::ServedShard& shard : before_prediction.served()) {
    served_shards += shard.served() ? 1 : 0;
  }
  EXPECT_EQ(serving_copies(), served_shards);

  v1::DeletionReceipt receipt;
  status = ForgetOwner("tiny", "owner-3", &receipt);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_NO_FATAL_FAILURE(WatchToRestored(receipt.deletion_id()));
  // PURGED reached the workers' memory: the checkpoints of the shards the
  // deletion cut are gone there (no Predict has loaded new ones yet).
  EXPECT_EQ(serving_copies(), served_shards - receipt.affected_shards_size());
  v1::Model restored;
  ASSERT_TRUE(GetModel("tiny", &restored).ok());
  EXPECT_GT(RemotePositions(restored), RemotePositions(trained));
  v1::PredictResponse after_prediction;
  status = Predict("tiny", 7, inputs, &after_prediction);
  ASSERT_TRUE(status.ok()) << status.error_message();
  expect_served_by_workers(after_prediction);
  EXPECT_EQ(after_prediction.fingerprint(), restored.fingerprint());

  std::string engine_fingerprint, engine_before;
  std::vector<float> engine_probabilities;
  ASSERT_NO_FATAL_FAILURE(InProcessFingerprint(
      created.config(), samples, "owner-3", &engine_fingerprint, &engine_before,
      &inputs, &engine_probabilities));
  EXPECT_EQ(trained.fingerprint(), engine_before);
  EXPECT_EQ(restored.fingerprint(), engine_fingerprint);
  // The workers' answers, averaged by the coordinator, are the very bits
  // the in-process engine computes.
  const std::vector<float> served(after_prediction.probabilities().begin(),
                                  after_prediction.probabilities().end());
  ASSERT_EQ(served.size(), engine_probabilities.size());
  EXPECT_EQ(std::memcmp(served.data(), engine_probabilities.data(),
                        served.size() * sizeof(float)),
            0);

  // A worker killed without notice: Predict still answers, the same bits
  // (its shards computed by the coordinator until it is declared dead).
  workers_[0]->Kill();
  v1::PredictResponse without_worker;
  status = Predict("tiny", 7, inputs, &without_worker);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(
      std::memcmp(without_worker.probabilities().data(),
                  engine_probabilities.data(), served.size() * sizeof(float)),
      0);
  bool some_by_coordinator = false;
  for (const v1::ServedShard& shard : without_worker.served()) {
    EXPECT_NE(shard.served_by(), "worker-0");
    some_by_coordinator |= shard.served() && shard.served_by().empty();
  }
  EXPECT_TRUE(some_by_coordinator);
  std::string metrics_address;
  ASSERT_TRUE(coordinator_.WaitForLine("metrics on ", &metrics_address));
  const std::string metrics =
      testing_util::HttpGet(metrics_address, "/metrics");
  EXPECT_GT(
      testing_util::MetricValue(metrics,
                                "oubli_predict_shards_total{model=\"tiny\","
                                "placement=\"fallback\"}"),
      0)
      << metrics;
}

// A causal language model trains on workers too (token slices cross the
// wire as the image ones do), forgets an owner through the API, and lands
// on the bits of the in-process engine; Score answers from it.
TEST_F(WorkerClusterTest, ALanguageModelTrainsOnWorkersAndForgetsExactly) {
  const std::vector<v1::Sample> samples = testing_util::CountingSamples(32);
  ASSERT_NO_FATAL_FAILURE(StartCoordinator({"--worker_timeout=60s"}));
  for (int i = 0; i < 2; ++i) ASSERT_NO_FATAL_FAILURE(StartWorker());
  v1::Model created;
  v1::Job job;
  ASSERT_NO_FATAL_FAILURE(CreateTrainedModel(
      "lm",
      testing_util::TinyDecoderConfig(v1::DECODER_OBJECTIVE_CAUSAL_LM),
      samples, &created, &job));
  v1::Model trained;
  ASSERT_TRUE(GetModel("lm", &trained).ok());
  EXPECT_EQ(trained.worker_placement(), "workers");
  EXPECT_GT(job.trained_prefixes(), 0);
  EXPECT_EQ(RemotePositions(trained), job.trained_prefixes());

  v1::DeletionReceipt receipt;
  grpc::Status status = ForgetOwner("lm", "owner-2", &receipt);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_NO_FATAL_FAILURE(WatchToRestored(receipt.deletion_id()));
  v1::Model restored;
  ASSERT_TRUE(GetModel("lm", &restored).ok());
  EXPECT_GT(RemotePositions(restored), RemotePositions(trained));

  std::string engine_fingerprint, engine_before;
  ASSERT_NO_FATAL_FAILURE(InProcessFingerprint(created.config(), samples,
                                               "owner-2", &engine_fingerprint,
                                               &engine_before));
  EXPECT_EQ(trained.fingerprint(), engine_before);
  EXPECT_EQ(restored.fingerprint(), engine_fingerprint);

  v1::ScoreRequest score;
  score.set_model_id("lm");
  v1::TokenSequence* sequence = score.add_sequences();
  for (uint32_t t : {3u, 4u, 5u, 6u}) sequence->add_tokens(t);
  v1::ScoreResponse scored;
  status = Call(&v1::Oubli::Stub::Score, score, &scored);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(scored.fingerprint(), restored.fingerprint());
  ASSERT_EQ(scored.sequences_size(), 1);
  EXPECT_EQ(scored.sequences(0).token_log_probs_size(), 3);
}

// A worker that can no longer reach the coordinator drops the checkpoints
// it holds for serving once the coordinator would count it dead: the
// coordinator purges as if dead workers held nothing.
TEST_F(WorkerClusterTest, AWorkerCutOffDropsItsServingCopies) {
  ASSERT_NO_FATAL_FAILURE(
      StartCoordinator({"--worker_timeout=3s", "--heartbeat_interval=500ms"}));
  ASSERT_NO_FATAL_FAILURE(StartWorker(false, {"--metrics_listen=127.0.0.1:0"}));
  std::string metrics_address;
  ASSERT_TRUE(workers_[0]->SawLine("metrics on ", &metrics_address));
  ASSERT_NO_FATAL_FAILURE(CreateTrainedModel("tiny"));
  v1::PredictResponse prediction;
  grpc::Status status =
      Predict("tiny", 1, std::vector<float>(16, 0.5f), &prediction);
  ASSERT_TRUE(status.ok()) << status.error_message();
  auto serving = [&] {
    return testing_util::MetricValue(
        testing_util::HttpGet(metrics_address, "/metrics"),
        "oubli_worker_serving_checkpoints");
  };
  EXPECT_GT(serving(), 0);
  auto cached = [&] {
    return testing_util::MetricValue(
        testing_util::HttpGet(metrics_address, "/metrics"),
        "oubli_worker_cached_slices");
  };
  EXPECT_GT(cached(), 0);

  coordinator_.Kill();
  double held = serving();
  for (int i = 0; i < 200 && held != 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    held = serving();
  }
  EXPECT_EQ(held, 0);
  EXPECT_EQ(cached(), 0);  // the training slices went with them
}

// A slice crosses the wire to a worker once while it stays cached: training
// reuses it across positions and sequences, a deletion's purge drops the
// version that held the owner's samples, and the retrain sends only the
// new version of that one slice (owner placement: one owner, one slice).
TEST_F(WorkerClusterTest, SlicesCrossTheWireOnceAndPurgesDropStaleOnes) {
  ASSERT_NO_FATAL_FAILURE(StartCoordinator());
  ASSERT_NO_FATAL_FAILURE(StartWorker(false, {"--metrics_listen=127.0.0.1:0"}));
  std::string metrics_address;
  ASSERT_TRUE(workers_[0]->SawLine("metrics on ", &metrics_address));
  v1::Model trained;
  ASSERT_NO_FATAL_FAILURE(CreateTrainedModel("tiny", TinyConfig(),
                                             TinySamples(60), &trained));
  ASSERT_TRUE(GetModel("tiny", &trained).ok());
  struct Cache {
    double hits, misses, slices;
  };
  auto read = [&] {
    const std::string metrics =
        testing_util::HttpGet(metrics_address, "/metrics");
    return Cache{
        testing_util::MetricValue(
            metrics, "oubli_worker_slice_lookups_total{result=\"hit\"}"),
        testing_util::MetricValue(
            metrics, "oubli_worker_slice_lookups_total{result=\"miss\"}"),
        testing_util::MetricValue(metrics, "oubli_worker_cached_slices")};
  };
  std::string coordinator_metrics;
  ASSERT_TRUE(coordinator_.WaitForLine("metrics on ", &coordinator_metrics));
  // Slices the coordinator read (from its cache or the store).
  auto coordinator_reads = [&] {
    const std::string metrics =
        testing_util::HttpGet(coordinator_metrics, "/metrics");
    return testing_util::MetricValue(metrics,
                                     "oubli_slice_cache_hits_total") +
           testing_util::MetricValue(metrics,
                                     "oubli_slice_cache_misses_total");
  };
  const Cache before = read();
  // Each distinct slice was sent once and is still there; later positions
  // found the slices of their prefix cached, and the coordinator read only
  // what the worker lacked.
  EXPECT_GT(before.misses, 0);
  EXPECT_EQ(before.misses, before.slices);
  EXPECT_GT(before.hits, 0);
  EXPECT_EQ(coordinator_reads(), before.misses);

  v1::DeletionReceipt receipt;
  grpc::Status status = ForgetOwner("tiny", "owner-3", &receipt);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_NO_FATAL_FAILURE(WatchToRestored(receipt.deletion_id()));
  const Cache after = read();
  EXPECT_EQ(after.misses, before.misses + 1);  // the new version only
  EXPECT_EQ(after.slices, before.slices);      // the old one was dropped
  EXPECT_GT(after.hits, before.hits);
  EXPECT_EQ(coordinator_reads(), after.misses);
}

// With a --data_dir a worker keeps its cached slices as files too. A
// deletion's purge shreds the file of the version that held the owner's
// samples (nothing of them is left in any file of the worker), a worker
// killed with its files still there shreds them at its next start, before
// registering, and fetches what it lacks again.
TEST_F(WorkerClusterTest, SliceFilesArePurgedAndARestartShredsTheStaleOnes) {
  ASSERT_NO_FATAL_FAILURE(
      StartCoordinator({"--worker_timeout=3s", "--heartbeat_interval=500ms"}));
  ASSERT_NO_FATAL_FAILURE(StartWorker(true, {"--metrics_listen=127.0.0.1:0"}));
  const std::vector<v1::Sample> samples = TinySamples(60);
  ASSERT_NO_FATAL_FAILURE(CreateTrainedModel("tiny", TinyConfig(), samples));
  const std::filesystem::path slice_dir =
      std::filesystem::path(WorkerDir(0)) / "slices";
  // The digests of the slice files (named DIGEST.N).
  auto digests_on_disk = [&] {
    std::multiset<std::string> digests;
    for (const auto& entry :
         std::filesystem::recursive_directory_iterator(slice_dir)) {
      if (entry.is_regular_file()) {
        digests.insert(entry.path().filename().string().substr(0, 64));
      }
    }
    return digests;
  };
  // Worker files holding any sample of `owner`.
  auto files_holding = [&](const std::string& owner) {
    std::vector<std::string> files;
    for (const v1::Sample& sample : samples) {
      if (sample.owner() != owner) continue;
      for (const std::string& needle : {sample.features(), sample.id()}) {
        for (std::string& file :
             testing_util::FilesContaining(WorkerDir(0), needle)) {
          files.push_back(std::move(file));
        }
      }
    }
    return files;
  };
  auto metric = [&](const std::string& name) {
    std::string metrics_address;
    EXPECT_TRUE(workers_[0]->SawLine("metrics on ", &metrics_address));
    return testing_util::MetricValue(
        testing_util::HttpGet(metrics_address, "/metrics"), name);
  };
  const std::multiset<std::string> before = digests_on_disk();
  EXPECT_FALSE(before.empty());
  EXPECT_EQ(metric("oubli_worker_disk_cached_slices"),
            static_cast<double>(before.size()));
  EXPECT_EQ(metric("oubli_worker_cached_slices"),
            static_cast<double>(before.size()));
  EXPECT_GT(metric("oubli_worker_disk_cached_slice_bytes"), 0);

  v1::DeletionReceipt receipt;
  grpc::Status status = ForgetOwner("tiny", "owner-3", &receipt);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_NO_FATAL_FAILURE(WatchToRestored(receipt.deletion_id()));
  // One slice held owner-3 (owner placement): its file went, its new
  // version's came.
  const std::multiset<std::string> after = digests_on_disk();
  std::vector<std::string> gone, came;
  std::set_difference(before.begin(), before.end(), after.begin(), after.end(),
                      std::back_inserter(gone));
  std::set_difference(after.begin(), after.end(), before.begin(), before.end(),
                      std::back_inserter(came));
  EXPECT_EQ(gone.size(), 1u);
  EXPECT_EQ(came.size(), 1u);
  EXPECT_EQ(metric("oubli_worker_disk_cached_slices"),
            static_cast<double>(after.size()));
  EXPECT_THAT(files_holding("owner-3"), IsEmpty());

  // Killed: its files stay behind, holding samples that may be deleted
  // while it is down. Its next start shreds them before it registers.
  workers_[0]->Kill();
  ASSERT_EQ(digests_on_disk(), after);
  ASSERT_NO_FATAL_FAILURE(
      RestartWorker(0, true, {"--metrics_listen=127.0.0.1:0"}));
  EXPECT_THAT(digests_on_disk(), IsEmpty());
  EXPECT_EQ(metric("oubli_worker_disk_cached_slices"), 0);

  // The next retrain fetches the slices it lacks again.
  status = ForgetOwner("tiny", "owner-5", &receipt);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_NO_FATAL_FAILURE(WatchToRestored(receipt.deletion_id()));
  EXPECT_GT(metric("oubli_worker_slice_lookups_total{result=\"miss\"}"), 0);
  EXPECT_FALSE(digests_on_disk().empty());
  EXPECT_THAT(files_holding("owner-5"), IsEmpty());
  EXPECT_THAT(files_holding("owner-3"), IsEmpty());
}

// A worker does not register while a slice file it dropped could not be
// shredded (registering tells the coordinator nothing from before is left
// here), and does once the file is gone.
TEST_F(WorkerClusterTest, AWorkerHoldingAnUnshreddableSliceFileStaysAway) {
  const std::vector<std::string> timing = {"--worker_timeout=3s",
                                           "--heartbeat_interval=500ms"};
  ASSERT_NO_FATAL_FAILURE(StartCoordinator(timing));
  ASSERT_NO_FATAL_FAILURE(StartWorker(true));
  ASSERT_NO_FATAL_FAILURE(CreateTrainedModel("tiny"));
  // Directories where the slice files were: ShredFile cannot open them.
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(
           std::filesystem::path(WorkerDir(0)) / "slices")) {
    if (entry.is_regular_file()) files.push_back(entry.path());
  }
  ASSERT_FALSE(files.empty());
  for (const std::filesystem::path& file : files) {
    std::filesystem::remove(file);
    std::filesystem::create_directory(file);
  }

  // A new coordinator does not know the worker: it must register again.
  const std::string address = coordinator_.address();
  coordinator_.Kill();
  std::vector<std::string> flags = timing;
  flags.push_back(absl::StrCat("--listen=", address));
  ASSERT_NO_FATAL_FAILURE(StartCoordinator(flags));
  const std::string refusal =
      "not registering while a cached slice file is left";
  for (int i = 0; i < 600 && !absl::StrContains(workers_[0]->Log(), refusal);
       ++i) {  // 60 s
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(absl::StrContains(workers_[0]->Log(), refusal))
      << workers_[0]->Log();
  v1::Model model;
  ASSERT_TRUE(GetModel("tiny", &model).ok());
  EXPECT_THAT(model.workers(), IsEmpty());

  for (const std::filesystem::path& file : files) {
    std::filesystem::remove(file);
  }
  std::string id;
  ASSERT_TRUE(workers_[0]->WaitForLine("registered as ", &id));
  ASSERT_TRUE(GetModel("tiny", &model).ok());
  EXPECT_EQ(model.workers_size(), 1);
}

// Two samples of the tiny model as one encoded slice; `label` for both.
std::shared_ptr<const storage::EncodedSlice> TwoRowSlice(int label) {
  std::vector<Sample> samples(2);
  for (int i = 0; i < 2; ++i) {
    samples[i].id = absl::StrCat("row-", i);
    samples[i].label = label;
    samples[i].features.assign(testing_util::kTinyWidth, '\x10');
  }
  auto slice =
      storage::EncodedSlice::FromSamples(samples, testing_util::kTinyWidth);
  EXPECT_TRUE(slice.ok()) << slice.status();
  return slice.ok() ? *slice : nullptr;
}

// An epoch above any the coordinator handed out in this test.
int64_t FreshEpoch() {
  return absl::ToUnixNanos(absl::Now()) + int64_t{1000000000000000};
}

grpc::StatusCode PutSlice(cluster::Worker::Stub& stub,
                          const std::vector<cluster::SlicePiece>& pieces) {
  grpc::ClientContext context;
  context.set_deadline(Deadline(30));
  cluster::PutSliceResponse response;
  auto writer = stub.PutSlice(&context, &response);
  for (const cluster::SlicePiece& piece : pieces) {
    if (!writer->Write(piece)) break;
  }
  writer->WritesDone();
  return writer->Finish().error_code();
}

cluster::SlicePiece Header(const storage::EncodedSlice& slice, int64_t epoch) {
  cluster::SlicePiece piece;
  piece.set_model_id("tiny");
  piece.set_digest(slice.digest());
  piece.set_total_bytes(static_cast<int64_t>(slice.bytes().size()));
  piece.set_epoch(epoch);
  piece.set_data(slice.bytes());
  return piece;
}

TEST_F(WorkerClusterTest, WorkerRejectsMalformedPositionsPrecisely) {
  ASSERT_NO_FATAL_FAILURE(StartCoordinator());
  ASSERT_NO_FATAL_FAILURE(StartWorker(false, {"--slice_cache_bytes=1048576"}));
  auto stub = cluster::Worker::NewStub(grpc::CreateChannel(
      workers_[0]->address(), grpc::InsecureChannelCredentials()));
  v1::Model created;
  ASSERT_TRUE(Create("tiny", TinyConfig(1, 8), &created).ok());
  absl::StatusOr<ModelConfig> config =
      coordinator::ConfigFromProto(created.config());
  ASSERT_TRUE(config.ok()) << config.status();

  const std::shared_ptr<const storage::EncodedSlice> slice = TwoRowSlice(1);
  const std::shared_ptr<const storage::EncodedSlice> bad_labels =
      TwoRowSlice(99);
  ASSERT_NE(slice, nullptr);
  ASSERT_NE(bad_labels, nullptr);
  cluster::TrainPositionRequest good;
  good.set_config(ConfigToText(*config));
  good.set_environment(ml::NumericEnvironment());
  good.set_shard(0);
  good.add_prefix(0);
  good.set_model_id("tiny");
  good.add_slice_digests(slice->digest());
  auto train = [&](const cluster::TrainPositionRequest& request,
                   cluster::TrainPositionResponse* response) {
    grpc::ClientContext context;
    context.set_deadline(Deadline(60));
    return stub->TrainPosition(&context, request, response);
  };
  // Not cached yet: named, nothing trained.
  cluster::TrainPositionResponse response;
  ASSERT_TRUE(train(good, &response).ok());
  EXPECT_THAT(response.missing_slices(),
              ::testing::ElementsAre(slice->digest()));
  EXPECT_TRUE(response.checkpoint().empty());

  // Uploads refused precisely; none of them is cached.
  const int64_t epoch = FreshEpoch();
  cluster::SlicePiece tampered = Header(*slice, epoch);
  (*tampered.mutable_data())[tampered.data().size() - 1] ^= 1;
  EXPECT_EQ(PutSlice(*stub, {tampered}), grpc::StatusCode::DATA_LOSS);
  cluster::SlicePiece short_piece = Header(*slice, epoch);
  short_piece.set_total_bytes(short_piece.total_bytes() + 1);
  EXPECT_EQ(PutSlice(*stub, {short_piece}), grpc::StatusCode::INVALID_ARGUMENT);
  cluster::SlicePiece no_model = Header(*slice, epoch);
  no_model.clear_model_id();
  EXPECT_EQ(PutSlice(*stub, {no_model}), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(PutSlice(*stub, {}), grpc::StatusCode::INVALID_ARGUMENT);
  cluster::SlicePiece too_big = Header(*slice, epoch);
  too_big.set_total_bytes(int64_t{2} << 20);
  EXPECT_EQ(PutSlice(*stub, {too_big}), grpc::StatusCode::RESOURCE_EXHAUSTED);
  ASSERT_TRUE(train(good, &response).ok());
  EXPECT_EQ(response.missing_slices_size(), 1);

  // In two pieces, then trained from the cache.
  cluster::SlicePiece first = Header(*slice, epoch);
  cluster::SlicePiece second;
  second.set_data(first.data().substr(10));
  first.mutable_data()->resize(10);
  ASSERT_EQ(PutSlice(*stub, {first, second}), grpc::StatusCode::OK);
  ASSERT_EQ(PutSlice(*stub, {Header(*bad_labels, epoch)}),
            grpc::StatusCode::OK);
  response.Clear();
  ASSERT_TRUE(train(good, &response).ok());
  EXPECT_THAT(response.missing_slices(), IsEmpty());
  EXPECT_FALSE(response.checkpoint().empty());

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
      {"shard out of range", [](auto* r) { r->set_shard(7); },
       grpc::StatusCode::INVALID_ARGUMENT},
      {"repeated slice", [](auto* r) { r->add_prefix(0); },
       grpc::StatusCode::INVALID_ARGUMENT},
      // Slices that do not fit: DATA_LOSS, never blamed on the parent.
      {"a sample in two slices",
       [&](auto* r) { r->add_slice_digests(bad_labels->digest()); },
       grpc::StatusCode::DATA_LOSS},
      {"label out of range",
       [&](auto* r) { r->set_slice_digests(0, bad_labels->digest()); },
       grpc::StatusCode::DATA_LOSS},
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
    cluster::TrainPositionResponse ignored;
    EXPECT_EQ(train(request, &ignored).error_code(), c.code) << c.what;
  }

  // A purge keeps only the current slices and refuses older uploads.
  cluster::DropSlicesRequest drop;
  drop.set_model_id("tiny");
  drop.add_keep(bad_labels->digest());
  drop.set_epoch(epoch + 1);
  {
    grpc::ClientContext context;
    context.set_deadline(Deadline(30));
    cluster::DropSlicesResponse dropped;
    ASSERT_TRUE(stub->DropSlices(&context, drop, &dropped).ok());
    EXPECT_EQ(dropped.dropped(), 1);
  }
  response.Clear();
  ASSERT_TRUE(train(good, &response).ok());
  EXPECT_EQ(response.missing_slices_size(), 1);
  EXPECT_EQ(PutSlice(*stub, {Header(*slice, epoch)}),
            grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(PutSlice(*stub, {Header(*slice, epoch + 1)}),
            grpc::StatusCode::OK);
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
  register_request.set_environment(ml::NumericEnvironment());
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

  // Retiring a chunk holder stands in for destroying data: only with the
  // token too.
  auto retire = [&](const std::string& token) {
    grpc::ClientContext context;
    context.set_deadline(Deadline(30));
    if (!token.empty()) context.AddMetadata("oubli-cluster-token", token);
    v1::RetireWorkerRequest request;
    request.set_name("nobody");
    v1::RetiredWorker retired;
    return stub_->RetireWorker(&context, request, &retired).error_code();
  };
  EXPECT_EQ(retire(""), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(retire("wrong"), grpc::StatusCode::UNAUTHENTICATED);
  const grpc::StatusCode with_token = retire("s3cret-cluster-token");
  EXPECT_NE(with_token, grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_NE(with_token, grpc::StatusCode::OK);  // nobody knows "nobody"

  // The worker with the token trains; the model comes out the same.
  ASSERT_NO_FATAL_FAILURE(ExpectTinyModelTrainsOnWorkers());
}

// Checkpoint bits depend on the numeric environment, so a worker of
// another one (other LibTorch or BLAS build, or a GPU beside CPU
// processes) is registered but sent nothing; both sides, GetModel and the
// worker's metrics say so instead of leaving it silently idle.
TEST_F(WorkerClusterTest, AWorkerOfAnotherEnvironmentIsToldAndGetsNoWork) {
  // The stranger below never heartbeats: it stays alive for the whole test.
  ASSERT_NO_FATAL_FAILURE(StartCoordinator({"--worker_timeout=10m"}));
  auto membership = cluster::Membership::NewStub(grpc::CreateChannel(
      coordinator_.address(), grpc::InsecureChannelCredentials()));
  cluster::RegisterRequest request;
  request.set_address("127.0.0.1:1");  // would fail any call sent to it
  request.set_environment("trainer=1 torch=0.0 device=cuda:0 elsewhere");
  request.set_name("elsewhere");
  request.set_protocol_version(kClusterProtocolVersion);
  cluster::RegisterResponse response;
  grpc::ClientContext context;
  context.set_deadline(Deadline(30));
  ASSERT_TRUE(membership->Register(&context, request, &response).ok());
  EXPECT_EQ(response.coordinator_environment(), ml::NumericEnvironment());

  // Alive, but no worker of the coordinator's environment: training and
  // serving stay local.
  v1::Model created;
  ASSERT_TRUE(Create("tiny", TinyConfig(1, 8), &created).ok());
  v1::Model local;
  ASSERT_TRUE(GetModel("tiny", &local).ok());
  ASSERT_EQ(local.workers_size(), 1);
  EXPECT_TRUE(local.workers(0).alive());
  EXPECT_EQ(local.worker_placement(), "local");

  ASSERT_NO_FATAL_FAILURE(StartWorker(false, {"--metrics_listen=127.0.0.1:0"}));
  ASSERT_NO_FATAL_FAILURE(CreateTrainedModel("tiny", TinyConfig(1, 8),
                                             TinySamples(40, 1, 0), &created));
  v1::Model model;
  ASSERT_TRUE(GetModel("tiny", &model).ok());
  ASSERT_EQ(model.workers_size(), 2);
  for (const v1::WorkerStatus& w : model.workers()) {
    if (w.name() == "elsewhere") {
      EXPECT_FALSE(w.environment_matches());
      EXPECT_EQ(w.environment(), request.environment());
      EXPECT_EQ(w.positions_trained(), 0);
    } else {
      EXPECT_TRUE(w.environment_matches()) << w.environment();
      EXPECT_EQ(w.environment(), ml::NumericEnvironment());
      EXPECT_GT(w.positions_trained(), 0);
    }
  }
  EXPECT_EQ(model.worker_placement(), "workers");
  const std::string log = coordinator_.Log();
  EXPECT_TRUE(absl::StrContains(log, "computes in another numeric environment"))
      << log;
  EXPECT_FALSE(absl::StrContains(log, "cannot train")) << log;

  std::string metrics_address;
  ASSERT_TRUE(workers_[0]->SawLine("metrics on ", &metrics_address));
  const std::string metrics =
      testing_util::HttpGet(metrics_address, "/metrics");
  EXPECT_EQ(
      testing_util::MetricValue(metrics, "oubli_worker_environment_matches"), 1)
      << metrics;
  EXPECT_EQ(testing_util::MetricValue(
                metrics, "oubli_worker_compute_device{device=\"cpu\"}"),
            ml::CudaAvailable() ? -1 : 1);
}

// --device, --cluster_token_file and --slice_disk_cache_bytes are checked
// before serving: a bad choice, CUDA where there is none, an unreadable
// token file or a negative bound exits with status 2 and says why.
TEST(ServerFlagsTest, AnUnusableDeviceOrTokenStopsTheServerAtStartup) {
  struct Case {
    std::string binary;
    std::string flags;
    std::string says;
  };
  std::vector<Case> cases = {
      {OUBLI_WORKER_BIN, "--coordinator=127.0.0.1:1 --device=tpu",
       "must be auto, cpu or cuda"},
      {OUBLI_COORDINATOR_BIN,
       "--data_dir=/nonexistent --listen=127.0.0.1:0 --metrics_listen= "
       "--device=gpu",
       "must be auto, cpu or cuda"},
      {OUBLI_WORKER_BIN,
       "--coordinator=127.0.0.1:1 --cluster_token_file=/nonexistent/token",
       "/nonexistent/token"},
      {OUBLI_WORKER_BIN,
       "--coordinator=127.0.0.1:1 --slice_disk_cache_bytes=-1",
       "--slice_disk_cache_bytes must be >= 0"},
      {OUBLI_COORDINATOR_BIN,
       "--data_dir=/nonexistent --cluster_token_file=/nonexistent/token",
       "/nonexistent/token"},
  };
  if (!ml::CudaAvailable()) {
    cases.push_back({OUBLI_WORKER_BIN,
                     "--coordinator=127.0.0.1:1 --device=cuda",
                     "CUDA is not available"});
  }
  for (const Case& c : cases) {
    // `timeout`: a server that wrongly starts must not hang the test.
    const std::string command =
        absl::StrCat("timeout 60 '", c.binary, "' ", c.flags, " 2>&1");
    FILE* pipe = popen(command.c_str(), "r");
    ASSERT_NE(pipe, nullptr) << command;
    std::string output;
    char buffer[512];
    while (fgets(buffer, sizeof(buffer), pipe) != nullptr) output += buffer;
    const int status = pclose(pipe);
    ASSERT_TRUE(WIFEXITED(status)) << command;
    EXPECT_EQ(WEXITSTATUS(status), 2) << command << "\n" << output;
    EXPECT_TRUE(absl::StrContains(output, c.says)) << command << "\n" << output;
  }
}

}  // namespace
}  // namespace oubli
