// Faults in a running cluster (real oubli-coordinator and oubli-worker
// processes): a worker killed mid-training, checkpoints lost with the
// coordinator's disk and a worker, the coordinator killed while a deletion
// is between ACCEPTED and PURGED. Asserts outcomes (bits, stages, bytes on
// disk), never timing.
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "oubli/v1/oubli.grpc.pb.h"
#include "tests/testing/cluster_test.h"
#include "tests/testing/server_process.h"

namespace oubli {
namespace {

namespace v1 = ::oubli::v1;
using testing_util::FilesUnder;
using testing_util::TinyConfig;
using testing_util::TinySamples;

class ChaosTest : public testing_util::ClusterTest {
 protected:
  // Polls the deletion (hang guard: 30 s) until a purge pass has failed
  // and noted why; returns that receipt.
  v1::DeletionReceipt WaitForNote(const std::string& deletion_id) {
    v1::GetDeletionRequest get;
    get.set_deletion_id(deletion_id);
    v1::DeletionReceipt held;
    for (int i = 0; i < 300; ++i) {
      EXPECT_TRUE(Call(&v1::Oubli::Stub::GetDeletion, get, &held).ok());
      if (!held.note().empty()) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return held;
  }

  // The coordinator is killed and loses every checkpoint of "tiny", the
  // workers in `dying` are killed, and the coordinator restarts on the same
  // address: it must serve `trained`'s fingerprint again, rebuilt from the
  // surviving chunks with no position trained. Returns the new
  // coordinator's metrics exposition.
  std::string LoseCheckpointsAndRebuild(const std::vector<int>& dying,
                                        const v1::Model& trained,
                                        v1::Model* restored) {
    const std::string address = coordinator_.address();
    coordinator_.Kill();
    std::filesystem::remove_all(dir_.path() / "data" / "tiny" / "checkpoints");
    for (int i : dying) workers_[i]->Kill();
    StartCoordinator({absl::StrCat("--listen=", address)});
    std::string metrics_address;
    EXPECT_TRUE(coordinator_.WaitForLine("metrics on ", &metrics_address));
    *restored = WaitUntilRestored("tiny");
    EXPECT_EQ(restored->missing_prefixes(), 0);
    EXPECT_EQ(restored->fingerprint(), trained.fingerprint());
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
    return metrics;
  }
};

TEST_F(ChaosTest, WorkerSigkillMidTrainingDoesNotStopTheJob) {
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
    if (w.name() != "worker-0") {
      EXPECT_TRUE(w.alive()) << w.name();
    }
  }

  // Same bits as a run without faults.
  std::string engine_fingerprint, unused;
  ASSERT_NO_FATAL_FAILURE(InProcessFingerprint(created.config(), samples, "",
                                               &engine_fingerprint, &unused));
  EXPECT_EQ(model.fingerprint(), engine_fingerprint);
}

// Chunk files under a worker's data dir.
int ChunkFiles(const std::string& worker_dir) {
  int n = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(
           std::filesystem::path(worker_dir) / "chunks")) {
    n += entry.is_regular_file() ? 1 : 0;
  }
  return n;
}

TEST_F(ChaosTest, LostCheckpointsAreRebuiltFromChunksAndPurgesReachThem) {
  // 4 workers: RS(2, 2), one chunk of every checkpoint on each worker.
  constexpr int kWorkers = 4;
  ASSERT_NO_FATAL_FAILURE(StartCoordinator());
  for (int i = 0; i < kWorkers; ++i) ASSERT_NO_FATAL_FAILURE(StartWorker(true));
  ASSERT_NO_FATAL_FAILURE(
      CreateTrainedModel("tiny", TinyConfig(2, 8), TinySamples(60, 1, 0)));
  v1::Model trained;
  ASSERT_TRUE(GetModel("tiny", &trained).ok());
  const std::filesystem::path checkpoints =
      dir_.path() / "data" / "tiny" / "checkpoints";
  const int checkpoint_count = static_cast<int>(FilesUnder(checkpoints).size());
  ASSERT_GT(checkpoint_count, 0);
  for (int i = 0; i < kWorkers; ++i) {
    EXPECT_EQ(ChunkFiles(WorkerDir(i)), checkpoint_count) << "worker-" << i;
  }

  // The coordinator loses every checkpoint and two of the four holders die:
  // k = 2 chunks of each checkpoint survive.
  v1::Model restored;
  const std::string metrics =
      LoseCheckpointsAndRebuild({0, 2}, trained, &restored);
  // Two holders down: the least protected checkpoint has no spare chunk.
  EXPECT_EQ(testing_util::MetricValue(
                metrics, "oubli_checkpoint_redundancy_chunks{model=\"tiny\"}"),
            0);

  // Forgetting an owner destroys every chunk of the checkpoints that held
  // it, on every worker: afterwards each worker holds exactly one chunk per
  // current checkpoint, and the coordinator no bytes of the purged ones.
  ASSERT_NO_FATAL_FAILURE(RestartWorker(0, true));
  ASSERT_NO_FATAL_FAILURE(RestartWorker(2, true));
  const auto before = FilesUnder(checkpoints);
  v1::DeletionReceipt receipt;
  grpc::Status status = ForgetOwner("tiny", "owner-3", &receipt);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_NO_FATAL_FAILURE(WatchToRestored(receipt.deletion_id()));
  std::map<std::string, std::string> after;
  for (auto& [path, bytes] : FilesUnder(checkpoints)) after[path] = bytes;
  int purged = 0;
  const auto coordinator_files = FilesUnder(dir_.path() / "data");
  for (const auto& [path, bytes] : before) {
    if (after.count(path) != 0) continue;  // still current
    ++purged;
    for (const auto& [file, content] : coordinator_files) {
      EXPECT_EQ(content.find(bytes), std::string::npos)
          << "bytes of purged checkpoint " << path << " remain in " << file;
    }
  }
  EXPECT_GT(purged, 0);
  for (int i = 0; i < kWorkers; ++i) {
    EXPECT_EQ(ChunkFiles(WorkerDir(i)), static_cast<int>(after.size()))
        << "worker-" << i;
  }
}

TEST_F(ChaosTest,
       CoordinatorKilledBetweenAcceptedAndPurgedFinishesTheDeletion) {
  ASSERT_NO_FATAL_FAILURE(StartCoordinator());
  for (int i = 0; i < 3; ++i) ASSERT_NO_FATAL_FAILURE(StartWorker(true));
  ASSERT_NO_FATAL_FAILURE(
      CreateTrainedModel("tiny", TinyConfig(2, 8), TinySamples(60, 1, 0)));
  const std::filesystem::path checkpoints =
      dir_.path() / "data" / "tiny" / "checkpoints";
  const auto before = FilesUnder(checkpoints);

  // A chunk holder is down, so the deletion cannot reach PURGED: it is
  // held between ACCEPTED/FORGOTTEN and PURGED when the coordinator dies.
  workers_[1]->Kill();
  ASSERT_NO_FATAL_FAILURE(WaitUntilDead("tiny", "worker-1"));
  v1::DeletionReceipt receipt;
  grpc::Status status = ForgetOwner("tiny", "owner-3", &receipt);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(receipt.stage(), v1::FORGOTTEN);
  const v1::DeletionReceipt held = WaitForNote(receipt.deletion_id());
  ASSERT_EQ(held.stage(), v1::FORGOTTEN);
  EXPECT_THAT(held.note(), ::testing::HasSubstr("worker-1"));

  const std::string address = coordinator_.address();
  coordinator_.Kill();
  ASSERT_NO_FATAL_FAILURE(
      StartCoordinator({absl::StrCat("--listen=", address)}));
  ASSERT_NO_FATAL_FAILURE(RestartWorker(1, true));
  ASSERT_NO_FATAL_FAILURE(WatchToRestored(receipt.deletion_id()))
      << coordinator_.Log();

  // Nothing of the checkpoints that held owner-3 is left anywhere.
  std::map<std::string, std::string> after;
  for (auto& [path, bytes] : FilesUnder(checkpoints)) after[path] = bytes;
  const auto everything = FilesUnder(dir_.path());
  int purged = 0;
  for (const auto& [path, bytes] : before) {
    if (after.count(path) != 0) continue;
    ++purged;
    for (const auto& [file, content] : everything) {
      EXPECT_EQ(content.find(bytes), std::string::npos)
          << "bytes of purged checkpoint " << path << " remain in " << file;
    }
  }
  EXPECT_GT(purged, 0);
}

TEST_F(ChaosTest, ADeadWorkersShardsServeFromSurvivorsAndItsChunksAreRepaired) {
  // 3 workers: every checkpoint mirrored on 2 of them.
  ASSERT_NO_FATAL_FAILURE(StartCoordinator());
  std::string metrics_address;
  ASSERT_TRUE(coordinator_.WaitForLine("metrics on ", &metrics_address));
  for (int i = 0; i < 3; ++i) ASSERT_NO_FATAL_FAILURE(StartWorker(true));
  ASSERT_NO_FATAL_FAILURE(
      CreateTrainedModel("tiny", TinyConfig(2, 8), TinySamples(60, 1, 0)));
  v1::Model trained;
  ASSERT_TRUE(GetModel("tiny", &trained).ok());
  const std::string redundancy =
      "oubli_checkpoint_redundancy_chunks{model=\"tiny\"}";
  EXPECT_EQ(testing_util::MetricValue(
                testing_util::HttpGet(metrics_address, "/metrics"), redundancy),
            1);
  std::vector<float> inputs(5 * 16);
  for (size_t i = 0; i < inputs.size(); ++i) {
    inputs[i] = static_cast<float>(i % 11) / 11.0f;
  }
  v1::PredictResponse before;
  grpc::Status status = Predict("tiny", 5, inputs, &before);
  ASSERT_TRUE(status.ok()) << status.error_message();
  const double positions_trained = testing_util::MetricValue(
      testing_util::HttpGet(metrics_address, "/metrics"),
      "oubli_training_positions_total{model=\"tiny\"}");

  // worker-0 dies: its chunks are regenerated onto the other two, so
  // redundancy comes back to one spare chunk per checkpoint.
  workers_[0]->Kill();
  ASSERT_NO_FATAL_FAILURE(WaitUntilDead("tiny", "worker-0"));
  // Its shards serve again from the survivors, with the same bits and no
  // training.
  v1::PredictResponse after;
  status = Predict("tiny", 5, inputs, &after);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(after.probabilities_size(), before.probabilities_size());
  EXPECT_EQ(
      std::memcmp(after.probabilities().data(), before.probabilities().data(),
                  before.probabilities_size() * sizeof(float)),
      0);
  EXPECT_EQ(after.fingerprint(), before.fingerprint());
  for (const v1::ServedShard& shard : after.served()) {
    if (!shard.served()) continue;
    EXPECT_TRUE(shard.served_by() == "worker-1" ||
                shard.served_by() == "worker-2")
        << "shard " << shard.shard() << ": '" << shard.served_by() << "'";
  }
  std::string metrics;
  for (int i = 0; i < 300; ++i) {
    metrics = testing_util::HttpGet(metrics_address, "/metrics");
    if (testing_util::MetricValue(metrics, redundancy) == 1) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(testing_util::MetricValue(metrics, redundancy), 1);
  EXPECT_GT(testing_util::MetricValue(
                metrics, "oubli_chunk_repairs_total{model=\"tiny\"}"),
            0);
  EXPECT_EQ(testing_util::MetricValue(
                metrics, "oubli_training_positions_total{model=\"tiny\"}"),
            positions_trained);

  // Proof that every checkpoint now lives on worker-1 and worker-2: the
  // coordinator loses its checkpoints and worker-1 dies too, and all of
  // them are rebuilt from worker-2 alone, without training.
  v1::Model restored;
  LoseCheckpointsAndRebuild({1}, trained, &restored);
}

TEST_F(ChaosTest, AModelsOwnCodeIsUsedOnceEnoughHoldersAreAlive) {
  // RS(1, 2): three copies, any one rebuilds. One chunk holder alive while
  // training: the checkpoints stay uncoded until two more join.
  ASSERT_NO_FATAL_FAILURE(StartCoordinator());
  std::string metrics_address;
  ASSERT_TRUE(coordinator_.WaitForLine("metrics on ", &metrics_address));
  ASSERT_NO_FATAL_FAILURE(StartWorker(true));
  v1::ModelConfig config = TinyConfig(2, 8);
  config.mutable_erasure()->set_data_chunks(1);
  config.mutable_erasure()->set_parity_chunks(2);
  v1::Model created;
  ASSERT_NO_FATAL_FAILURE(
      CreateTrainedModel("tiny", config, TinySamples(60, 1, 0), &created));
  EXPECT_EQ(created.config().erasure().data_chunks(), 1);
  EXPECT_EQ(created.config().erasure().parity_chunks(), 2);
  EXPECT_EQ(ChunkFiles(WorkerDir(0)), 0);
  const std::string encoded =
      "oubli_checkpoint_bytes_encoded_total{model=\"tiny\"}";
  EXPECT_EQ(testing_util::MetricValue(
                testing_util::HttpGet(metrics_address, "/metrics"), encoded),
            0);

  ASSERT_NO_FATAL_FAILURE(StartWorker(true));
  ASSERT_NO_FATAL_FAILURE(StartWorker(true));
  const std::string redundancy =
      "oubli_checkpoint_redundancy_chunks{model=\"tiny\"}";
  const int checkpoint_count = static_cast<int>(
      FilesUnder(dir_.path() / "data" / "tiny" / "checkpoints").size());
  ASSERT_GT(checkpoint_count, 0);
  std::string metrics;
  for (int i = 0; i < 300; ++i) {
    metrics = testing_util::HttpGet(metrics_address, "/metrics");
    // The manifest is persisted before its chunks are stored, one holder
    // after another: the gauge can read 2 while a chunk is still on its way.
    if (testing_util::MetricValue(metrics, redundancy) == 2 &&
        ChunkFiles(WorkerDir(0)) == checkpoint_count &&
        ChunkFiles(WorkerDir(1)) == checkpoint_count &&
        ChunkFiles(WorkerDir(2)) == checkpoint_count) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(testing_util::MetricValue(metrics, redundancy), 2);
  EXPECT_EQ(testing_util::MetricValue(
                metrics,
                "oubli_checkpoint_redundancy_target_chunks{model="
                "\"tiny\"}"),
            2);
  EXPECT_GT(testing_util::MetricValue(metrics, encoded), 0);
  // One whole copy (k = 1) of every checkpoint on each of the three.
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(ChunkFiles(WorkerDir(i)), checkpoint_count) << "worker-" << i;
  }

  // Two of three holders and the coordinator's own copies lost: all is
  // rebuilt from the last holder, without training.
  v1::Model trained;
  ASSERT_TRUE(GetModel("tiny", &trained).ok());
  v1::Model restored;
  LoseCheckpointsAndRebuild({0, 1}, trained, &restored);
  EXPECT_EQ(restored.config().erasure().parity_chunks(), 2);
}

// A chunk holder gone for good with its disk holds back the purge of its
// shards' deletions until the operator retires it. The retirement is
// durable, idempotent, refused for a live worker, and the name can never
// register again (its data dir could still hold chunks).
TEST_F(ChaosTest, ARetiredHolderNoLongerHoldsPurgesBackAndCannotReturn) {
  ASSERT_NO_FATAL_FAILURE(StartCoordinator());
  for (int i = 0; i < 3; ++i) ASSERT_NO_FATAL_FAILURE(StartWorker(true));
  ASSERT_NO_FATAL_FAILURE(
      CreateTrainedModel("tiny", TinyConfig(2, 8), TinySamples(60, 1, 0)));
  auto retire = [&](const std::string& name, v1::RetiredWorker* out) {
    v1::RetireWorkerRequest request;
    request.set_name(name);
    return Call(&v1::Oubli::Stub::RetireWorker, request, out);
  };
  v1::RetiredWorker retired;
  EXPECT_EQ(retire("worker-1", &retired).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);  // alive
  EXPECT_EQ(retire("", &retired).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(retire("two\nlines", &retired).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);

  workers_[1]->Kill();
  ASSERT_NO_FATAL_FAILURE(WaitUntilDead("tiny", "worker-1"));
  v1::DeletionReceipt receipt;
  grpc::Status status = ForgetOwner("tiny", "owner-3", &receipt);
  ASSERT_TRUE(status.ok()) << status.error_message();
  const v1::DeletionReceipt held = WaitForNote(receipt.deletion_id());
  ASSERT_EQ(held.stage(), v1::FORGOTTEN);
  EXPECT_THAT(held.note(),
              ::testing::HasSubstr("oublictl retire-worker worker-1"));
  // A typo retires nothing (and bars no name).
  EXPECT_EQ(retire("worker-7", &retired).error_code(),
            grpc::StatusCode::NOT_FOUND);

  status = retire("worker-1", &retired);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(retired.name(), "worker-1");
  ASSERT_NO_FATAL_FAILURE(WatchToRestored(receipt.deletion_id()))
      << coordinator_.Log();
  v1::RetiredWorker again;
  ASSERT_TRUE(retire("worker-1", &again).ok());
  EXPECT_EQ(again.retired_at().seconds(), retired.retired_at().seconds());
  EXPECT_EQ(again.retired_at().nanos(), retired.retired_at().nanos());

  // Durable: after a restart it is still listed and still kept out.
  const std::string address = coordinator_.address();
  coordinator_.Kill();
  ASSERT_NO_FATAL_FAILURE(
      StartCoordinator({absl::StrCat("--listen=", address)}));
  v1::Model model;
  ASSERT_TRUE(GetModel("tiny", &model).ok());
  ASSERT_EQ(model.retired_workers_size(), 1);
  EXPECT_EQ(model.retired_workers(0).name(), "worker-1");
  EXPECT_EQ(model.retired_workers(0).retired_at().seconds(),
            retired.retired_at().seconds());
  ASSERT_NO_FATAL_FAILURE(LaunchWorker(1, true));
  std::string log;
  for (int i = 0; i < 300; ++i) {
    log = workers_[1]->Log();
    if (log.find("was retired") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_THAT(log, ::testing::HasSubstr("'worker-1' was retired"));
  ASSERT_TRUE(GetModel("tiny", &model).ok());
  for (const v1::WorkerStatus& w : model.workers()) {
    EXPECT_NE(w.name(), "worker-1");
  }
}

// DeleteModel reaches every copy: with a chunk holder down it waits
// (naming it) and the model's calls are refused as being deleted; it
// survives a coordinator SIGKILL, and once the holder is back no byte of
// any of the model's checkpoints is left in any file of the coordinator or
// the workers, nor any sample's features or id: not in the workers' slice
// files either (the killed holder's are shredded when it starts again).
TEST_F(ChaosTest, DeleteModelKilledMidwayLeavesNoCopyAnywhere) {
  ASSERT_NO_FATAL_FAILURE(StartCoordinator());
  for (int i = 0; i < 3; ++i) ASSERT_NO_FATAL_FAILURE(StartWorker(true));
  const std::vector<v1::Sample> samples = TinySamples(60, 1, 0);
  ASSERT_NO_FATAL_FAILURE(
      CreateTrainedModel("tiny", TinyConfig(2, 8), samples));
  const std::filesystem::path model_dir = dir_.path() / "data" / "tiny";
  const auto before = FilesUnder(model_dir / "checkpoints");
  ASSERT_FALSE(before.empty());
  // The byte scan at the end covers the workers' slice files: there are
  // some now.
  auto slice_files = [&] {
    int n = 0;
    for (int i = 0; i < 3; ++i) {
      std::error_code error;
      for (std::filesystem::recursive_directory_iterator
               it(std::filesystem::path(WorkerDir(i)) / "slices", error),
           end;
           !error && it != end; it.increment(error)) {
        n += it->is_regular_file(error) ? 1 : 0;
      }
    }
    return n;
  };
  ASSERT_GT(slice_files(), 0);

  workers_[1]->Kill();
  ASSERT_NO_FATAL_FAILURE(WaitUntilDead("tiny", "worker-1"));
  v1::DeleteModelRequest request;
  request.set_model_id("tiny");
  v1::ModelDeletion deletion;
  grpc::Status status =
      Call(&v1::Oubli::Stub::DeleteModel, request, &deletion);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(deletion.stage(), v1::ACCEPTED);
  // It waits for the dead holder, and says so.
  for (int i = 0; i < 300 && deletion.note().empty(); ++i) {  // 30 s
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    ASSERT_TRUE(Call(&v1::Oubli::Stub::DeleteModel, request, &deletion).ok());
  }
  EXPECT_EQ(deletion.stage(), v1::ACCEPTED);
  EXPECT_THAT(deletion.note(), ::testing::HasSubstr("worker-1"));
  // Held at ACCEPTED: each call on the model says why it is refused, and
  // the id cannot be created again before PURGED.
  auto being_deleted = [](const grpc::Status& status, const char* rpc) {
    EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION)
        << rpc << ": " << status.error_message();
    EXPECT_THAT(status.error_message(),
                ::testing::HasSubstr("'tiny' is being deleted"))
        << rpc;
  };
  v1::Model model;
  being_deleted(GetModel("tiny", &model), "GetModel");
  v1::PredictResponse prediction;
  being_deleted(Predict("tiny", 1,
                        std::vector<float>(testing_util::kTinyWidth, 0.5f),
                        &prediction),
                "Predict");
  // Ids that contain none of the ones scanned for below.
  std::vector<v1::Sample> more = TinySamples(5, 2);
  for (size_t i = 0; i < more.size(); ++i) {
    more[i].set_id(absl::StrCat("refused-", i));
  }
  v1::IngestSamplesResponse ingested;
  being_deleted(Ingest("tiny", {more}, &ingested), "IngestSamples");
  v1::TrainRequest train;
  train.set_model_id("tiny");
  v1::Job job;
  being_deleted(Call(&v1::Oubli::Stub::Train, train, &job), "Train");
  being_deleted(Create("tiny", TinyConfig(2, 8), &model), "CreateModel");

  const std::string address = coordinator_.address();
  coordinator_.Kill();
  ASSERT_NO_FATAL_FAILURE(
      StartCoordinator({absl::StrCat("--listen=", address)}));
  ASSERT_NO_FATAL_FAILURE(RestartWorker(1, true));
  for (int i = 0; i < 1200; ++i) {  // 120 s
    status = Call(&v1::Oubli::Stub::DeleteModel, request, &deletion);
    ASSERT_TRUE(status.ok()) << status.error_message();
    if (deletion.stage() == v1::PURGED) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_EQ(deletion.stage(), v1::PURGED) << deletion.note() << "\n"
                                          << coordinator_.Log();
  EXPECT_FALSE(std::filesystem::exists(model_dir));
  EXPECT_EQ(slice_files(), 0);
  const auto everything = FilesUnder(dir_.path());
  for (const auto& [path, bytes] : before) {
    for (const auto& [file, content] : everything) {
      EXPECT_EQ(content.find(bytes), std::string::npos)
          << "bytes of checkpoint " << path << " remain in " << file;
    }
  }
  for (const v1::Sample& sample : samples) {
    for (const auto& [file, content] : everything) {
      if (file.ends_with(".log")) continue;  // the test's process logs
      EXPECT_EQ(content.find(sample.features()), std::string::npos)
          << "features of " << sample.id() << " remain in " << file;
      EXPECT_EQ(content.find(sample.id()), std::string::npos)
          << "id " << sample.id() << " remains in " << file;
    }
  }
}

// A holder gone for good after a restart: RetireWorker releases the model
// deletion waiting for it (the holder is named only by the model being
// deleted).
TEST_F(ChaosTest, RetiringAGoneHolderReleasesAModelDeletion) {
  ASSERT_NO_FATAL_FAILURE(StartCoordinator());
  for (int i = 0; i < 3; ++i) ASSERT_NO_FATAL_FAILURE(StartWorker(true));
  ASSERT_NO_FATAL_FAILURE(
      CreateTrainedModel("tiny", TinyConfig(2, 8), TinySamples(60, 1, 0)));
  workers_[1]->Kill();
  ASSERT_NO_FATAL_FAILURE(WaitUntilDead("tiny", "worker-1"));
  v1::DeleteModelRequest request;
  request.set_model_id("tiny");
  v1::ModelDeletion deletion;
  ASSERT_TRUE(Call(&v1::Oubli::Stub::DeleteModel, request, &deletion).ok());
  const std::string address = coordinator_.address();
  coordinator_.Kill();
  ASSERT_NO_FATAL_FAILURE(
      StartCoordinator({absl::StrCat("--listen=", address)}));
  request.set_status_only(true);
  v1::RetireWorkerRequest retire;
  retire.set_name("worker-1");
  v1::RetiredWorker retired;
  grpc::Status status;
  for (int i = 0; i < 300; ++i) {  // 30 s: refused within a worker timeout
    status = Call(&v1::Oubli::Stub::RetireWorker, retire, &retired);
    if (status.ok()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(status.ok()) << status.error_message();
  for (int i = 0; i < 600; ++i) {  // 60 s
    ASSERT_TRUE(Call(&v1::Oubli::Stub::DeleteModel, request, &deletion).ok());
    if (deletion.stage() == v1::PURGED) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(deletion.stage(), v1::PURGED) << deletion.note();
  EXPECT_FALSE(std::filesystem::exists(dir_.path() / "data" / "tiny"));
}

}  // namespace
}  // namespace oubli
