// WorkerServing, the shard serving built on the worker pool, against a
// fake worker over real gRPC on loopback: what it asks for, and what it
// stops asking.
#include "coordinator/worker_serving.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/grpc_server.h"
#include "coordinator/worker_pool.h"
#include "oubli/cluster/cluster.grpc.pb.h"

namespace oubli::coordinator {
namespace {

constexpr char kEnvironment[] = "test-environment";
constexpr int kClasses = 3;

// Like the real worker, keeps the checkpoints it was sent and drops those a
// request does not name; loading fails with `load_error` when set. Records
// the shards of every PredictShards call.
class FakeWorker final : public cluster::Worker::Service {
 public:
  explicit FakeWorker(grpc::Status load_error)
      : load_error_(std::move(load_error)) {}

  grpc::Status PredictShards(
      grpc::ServerContext*, const cluster::PredictShardsRequest* request,
      cluster::PredictShardsResponse* response) override {
    absl::MutexLock lock(&mu_);
    std::vector<std::string> kept;
    for (const std::string& sha : loaded_) {
      for (const cluster::ShardCheckpoint& shard : request->shards()) {
        if (shard.checkpoint_sha256() == sha) {
          kept.push_back(sha);
          break;
        }
      }
    }
    loaded_ = std::move(kept);
    std::vector<int> asked;
    response->set_classes(kClasses);
    for (const cluster::ShardCheckpoint& shard : request->shards()) {
      asked.push_back(shard.shard());
      cluster::ShardProbabilities* answer = response->add_shards();
      answer->set_shard(shard.shard());
      bool held = false;
      for (const std::string& sha : loaded_) {
        held |= sha == shard.checkpoint_sha256();
      }
      answer->set_loaded(held);
      if (held) {
        std::vector<float> p(request->rows() * kClasses, 1.0f / kClasses);
        answer->set_probabilities(p.data(), p.size() * sizeof(float));
      }
    }
    calls_.push_back(asked);
    return grpc::Status::OK;
  }

  grpc::Status LoadShard(grpc::ServerContext*,
                         const cluster::LoadShardRequest* request,
                         cluster::LoadShardResponse*) override {
    absl::MutexLock lock(&mu_);
    ++loads_;
    if (!load_error_.ok()) return load_error_;
    loaded_.push_back(request->checkpoint_sha256());
    return grpc::Status::OK;
  }

  void Preload(const std::string& sha) {
    absl::MutexLock lock(&mu_);
    loaded_.push_back(sha);
  }
  std::vector<std::vector<int>> calls() {
    absl::MutexLock lock(&mu_);
    return calls_;
  }
  int loads() {
    absl::MutexLock lock(&mu_);
    return loads_;
  }
  std::vector<std::string> held() {
    absl::MutexLock lock(&mu_);
    return loaded_;
  }

 private:
  const grpc::Status load_error_;
  absl::Mutex mu_;
  std::vector<std::string> loaded_ ABSL_GUARDED_BY(mu_);
  std::vector<std::vector<int>> calls_ ABSL_GUARDED_BY(mu_);
  int loads_ ABSL_GUARDED_BY(mu_) = 0;
};

class WorkerPoolServingTest : public ::testing::Test {
 protected:
  static WorkerPool::Options PoolOptions() {
    WorkerPool::Options options;
    options.worker_timeout = absl::Minutes(10);  // the fake never heartbeats
    return options;
  }

  // Serves `fake_` (which outlives the server) as worker "fake".
  void Serve(grpc::Status load_error = grpc::Status::OK) {
    fake_ = std::make_unique<FakeWorker>(std::move(load_error));
    absl::StatusOr<StartedGrpcServer> started =
        StartGrpcServer("127.0.0.1:0", grpc::InsecureServerCredentials(),
                        1 << 20, "oubli.cluster.Worker",
                        [&](grpc::ServerBuilder& builder) {
                          builder.RegisterService(fake_.get());
                        });
    ASSERT_TRUE(started.ok()) << started.status();
    server_ = std::move(started->server);
    ASSERT_TRUE(pool_
                    ->Register(absl::StrCat("127.0.0.1:", started->port),
                               kEnvironment, "fake", false)
                    .ok());
  }
  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown();
  }

  // Shards 0 and 1 of model "m", one row of 2 features.
  ShardServing::Query Query() {
    ShardServing::Query query;
    query.model_id = "m";
    query.config_text = "config";
    query.environment = kEnvironment;
    query.shards = {{0, "sha-0"}, {1, "sha-1"}};
    query.checkpoint = [](size_t i) -> absl::StatusOr<std::string> {
      return absl::StrCat("checkpoint-", i);
    };
    query.inputs = inputs_;
    query.rows = 1;
    query.classes = kClasses;
    return query;
  }

  std::shared_ptr<WorkerPool> pool_ =
      std::make_shared<WorkerPool>(PoolOptions());
  WorkerServing serving_{pool_};
  std::unique_ptr<FakeWorker> fake_;  // before server_: destroyed after it
  std::unique_ptr<grpc::Server> server_;
  std::vector<float> inputs_ = {0.5f, 0.25f};
};

// A partial miss is loaded once and kept: the second round names every
// shard again (the worker drops slots a request does not name), so the
// next request finds both.
TEST_F(WorkerPoolServingTest, APartialMissIsLoadedOnceAndKept) {
  ASSERT_NO_FATAL_FAILURE(Serve());
  fake_->Preload("sha-0");
  for (int request = 0; request < 2; ++request) {
    const std::vector<ShardServing::ShardResult> results =
        serving_.Predict(Query());
    ASSERT_EQ(results.size(), 2u);
    for (const ShardServing::ShardResult& result : results) {
      ASSERT_TRUE(result.probabilities.ok()) << result.probabilities.status();
      EXPECT_EQ(result.worker, "fake");
      EXPECT_EQ(result.probabilities->size(), static_cast<size_t>(kClasses));
    }
  }
  EXPECT_EQ(fake_->calls(),
            (std::vector<std::vector<int>>{{0, 1}, {0, 1}, {0, 1}}));
  EXPECT_EQ(fake_->loads(), 1);
}

// A worker that cannot load the model's checkpoints (its own trouble, such
// as missing base weights) is not sent that model's shards again for a
// while; the caller computes them. A purge's sync still reaches it.
TEST_F(WorkerPoolServingTest, AWorkerThatCannotLoadAModelIsLeftAlone) {
  ASSERT_NO_FATAL_FAILURE(Serve(grpc::Status(
      grpc::StatusCode::FAILED_PRECONDITION, "base weights not loadable")));
  fake_->Preload("sha-1");  // loaded before its trouble began
  for (int request = 0; request < 3; ++request) {
    const std::vector<ShardServing::ShardResult> results =
        serving_.Predict(Query());
    ASSERT_EQ(results.size(), 2u);
    EXPECT_FALSE(results[0].probabilities.ok()) << "request " << request;
    // Answered by the worker the first time only.
    EXPECT_EQ(results[1].probabilities.ok(), request == 0)
        << "request " << request;
  }
  // One request reached it: both shards asked, one load refused (the other
  // shards would fail the same way), no second round.
  EXPECT_EQ(fake_->calls(), (std::vector<std::vector<int>>{{0, 1}}));
  EXPECT_EQ(fake_->loads(), 1);

  // The purge's sync names nothing for it: it drops what it still held.
  EXPECT_EQ(fake_->held(), std::vector<std::string>{"sha-1"});
  ASSERT_TRUE(serving_.Sync(Query()).ok());
  ASSERT_EQ(fake_->calls().size(), 2u);
  EXPECT_TRUE(fake_->calls().back().empty());
  EXPECT_TRUE(fake_->held().empty());

  // Another model is still its to serve.
  ShardServing::Query other = Query();
  other.model_id = "other";
  serving_.Predict(other);
  EXPECT_EQ(fake_->calls().size(), 3u);
}

// A load that fails because of the checkpoint (not the worker) does not
// keep the worker from the model's other shards.
TEST_F(WorkerPoolServingTest, ACheckpointsOwnLoadFailureIsNotHeldAgainstIt) {
  ASSERT_NO_FATAL_FAILURE(Serve(
      grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "corrupt checkpoint")));
  serving_.Predict(Query());
  serving_.Predict(Query());
  EXPECT_EQ(fake_->calls().size(), 2u);
  EXPECT_EQ(fake_->loads(), 4);
}

// PURGED may only follow once no worker can still hold a dropped copy: a
// worker that does not confirm the drop, or stopped answering within a
// lease, holds the purge back (Unavailable) for the models it served only;
// so do an earlier coordinator's workers for a model opened from disk.
TEST_F(WorkerPoolServingTest, SyncWaitsWhileAWorkerMayStillHoldCopies) {
  ASSERT_NO_FATAL_FAILURE(Serve());
  serving_.Predict(Query());
  server_->Shutdown();
  server_.reset();
  ShardServing::Query sync = Query();
  sync.rows = 0;
  sync.shards.clear();
  EXPECT_EQ(serving_.Sync(sync).code(), absl::StatusCode::kUnavailable);
  const absl::Status again = serving_.Sync(sync);  // dead now, lease not over
  EXPECT_EQ(again.code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(again.message().find("fake"), std::string::npos) << again;
  ShardServing::Query other = sync;
  other.model_id = "other";  // never served there
  EXPECT_TRUE(serving_.Sync(other).ok());
  other.reopened = true;
  EXPECT_EQ(serving_.Sync(other).code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace oubli::coordinator
