// Abuse cannot exhaust the coordinator: calls in flight, open watch
// streams and the samples of one ingest stream are bounded, and each call
// past a bound is answered RESOURCE_EXHAUSTED at once while the server
// goes on serving. (A message over --max_message_bytes:
// grpc_service_test's OversizedMessageIsResourceExhausted.)
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "coordinator/grpc_service.h"
#include "oubli/v1/oubli.grpc.pb.h"
#include "tests/testing/service_client.h"
#include "tests/testing/test_util.h"

namespace oubli::coordinator {
namespace {

namespace v1 = ::oubli::v1;
using ::testing::HasSubstr;
using testing_util::TinySamples;

// A watch stream kept open (its deletion never reaches RESTORED: the
// server does not retrain in the background).
struct OpenWatch {
  grpc::ClientContext context;
  std::unique_ptr<grpc::ClientReader<v1::DeletionReceipt>> reader;
  v1::DeletionReceipt first;
  bool open = false;
};

class ResourceLimitsTest : public testing_util::ServiceClientTest {
 protected:
  void Start(CoordinatorServer::Options options) {
    options.listen_address = "127.0.0.1:0";
    options.data_dir = (dir_.path() / "models").string();
    options.background_retrain = false;
    auto server = CoordinatorServer::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    stub_ = testing_util::NewStub(server_->address());
  }
  void TearDown() override {
    for (auto& watch : watches_) watch->context.TryCancel();
    watches_.clear();
    stub_.reset();
    server_.reset();
  }

  // A trained model with one deletion that stays short of RESTORED.
  std::string PendingDeletion() {
    CreateTrainedModel("m");
    v1::DeletionReceipt receipt;
    EXPECT_TRUE(Delete("m", {"sample-1000"}, "", &receipt).ok());
    return receipt.deletion_id();
  }

  // Opens a watch on `deletion_id`; open when its first receipt arrived.
  OpenWatch* Watch(const std::string& deletion_id) {
    auto watch = std::make_unique<OpenWatch>();
    watch->context.set_deadline(testing_util::Deadline(60));
    v1::WatchDeletionRequest request;
    request.set_deletion_id(deletion_id);
    watch->reader = stub_->WatchDeletion(&watch->context, request);
    watch->open = watch->reader->Read(&watch->first);
    watches_.push_back(std::move(watch));
    return watches_.back().get();
  }

  // Cancels the watch and waits for its end.
  static void Close(OpenWatch* watch) {
    watch->context.TryCancel();
    v1::DeletionReceipt ignored;
    while (watch->reader->Read(&ignored)) {
    }
    (void)watch->reader->Finish();
  }

  testing_util::ScopedTempDir dir_;
  std::unique_ptr<CoordinatorServer> server_;
  std::vector<std::unique_ptr<OpenWatch>> watches_;
};

TEST_F(ResourceLimitsTest, WatchStreamsPastTheLimitAreRefused) {
  CoordinatorServer::Options options;
  options.max_watch_streams = 3;
  ASSERT_NO_FATAL_FAILURE(Start(options));
  const std::string deletion = PendingDeletion();
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(Watch(deletion)->open) << i;
  OpenWatch* refused = Watch(deletion);
  EXPECT_FALSE(refused->open);
  grpc::Status status = refused->reader->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(status.error_message(), HasSubstr("3 WatchDeletion streams"));
  // Other calls go on meanwhile, and a closed watch frees its slot.
  v1::Model model;
  EXPECT_TRUE(GetModel("m", &model).ok());
  Close(watches_[0].get());
  bool reopened = false;
  for (int attempt = 0; attempt < 100 && !reopened; ++attempt) {  // 10 s
    reopened = Watch(deletion)->open;
    if (!reopened) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(reopened);
}

TEST_F(ResourceLimitsTest, CallsPastTheLimitAreRefused) {
  CoordinatorServer::Options options;
  options.max_concurrent_calls = 3;
  ASSERT_NO_FATAL_FAILURE(Start(options));
  const std::string deletion = PendingDeletion();
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(Watch(deletion)->open) << i;
  v1::Model model;
  grpc::Status status = GetModel("m", &model);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(status.error_message(), HasSubstr("3 concurrent calls"));
  for (auto& watch : watches_) Close(watch.get());
  for (int attempt = 0; attempt < 100; ++attempt) {  // 10 s
    status = GetModel("m", &model);
    if (status.ok()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(status.ok()) << status.error_message();
}

TEST_F(ResourceLimitsTest, AnEndlessIngestStreamEndsAtItsLimit) {
  CoordinatorServer::Options options;
  options.max_ingest_stream_samples = 25;
  ASSERT_NO_FATAL_FAILURE(Start(options));
  v1::Model model;
  ASSERT_TRUE(Create("m", testing_util::TinyConfig(), &model).ok());
  const std::vector<v1::Sample> samples = TinySamples(50);
  std::vector<std::vector<v1::Sample>> batches;
  for (int i = 0; i < 5; ++i) {
    batches.emplace_back(samples.begin() + 10 * i,
                         samples.begin() + 10 * (i + 1));
  }
  v1::IngestSamplesResponse response;
  grpc::Status status = Ingest("m", batches, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(status.error_message(), HasSubstr("more than 25 samples"));
  // The messages within the limit are stored; a new stream goes on.
  ASSERT_TRUE(GetModel("m", &model).ok());
  EXPECT_EQ(model.active_samples(), 20);
  EXPECT_TRUE(Ingest("m", {batches[2], batches[3]}, &response).ok());
  ASSERT_TRUE(GetModel("m", &model).ok());
  EXPECT_EQ(model.active_samples(), 40);
}

// Backpressure: a message bigger than the whole ingest budget could never
// be admitted, so its stream is told to send smaller ones (the messages
// before it are kept); messages within the budget go through one after
// another. (Waiting for room: ingest_budget_test.)
TEST_F(ResourceLimitsTest, AnIngestMessageOverTheIngestBudgetIsRefused) {
  const std::vector<v1::Sample> samples = TinySamples(40);
  std::vector<std::vector<v1::Sample>> batches = {
      {samples.begin(), samples.begin() + 10},
      {samples.begin() + 10, samples.end()}};
  v1::IngestSamplesRequest probe;
  probe.set_model_id("m");
  for (const v1::Sample& s : batches[0]) *probe.add_samples() = s;
  CoordinatorServer::Options options;
  // Room for a 10-sample message, not for the 30-sample one.
  options.ingest_memory_bytes = static_cast<int64_t>(probe.ByteSizeLong()) + 64;
  ASSERT_NO_FATAL_FAILURE(Start(options));
  v1::Model model;
  ASSERT_TRUE(Create("m", testing_util::TinyConfig(), &model).ok());
  v1::IngestSamplesResponse response;
  grpc::Status status = Ingest("m", batches, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(status.error_message(), HasSubstr("smaller messages"));
  ASSERT_TRUE(GetModel("m", &model).ok());
  EXPECT_EQ(model.active_samples(), 10);
  std::vector<std::vector<v1::Sample>> small;
  for (size_t i = 10; i < samples.size(); i += 10) {
    small.emplace_back(samples.begin() + i, samples.begin() + i + 10);
  }
  EXPECT_TRUE(Ingest("m", small, &response).ok());
  ASSERT_TRUE(GetModel("m", &model).ok());
  EXPECT_EQ(model.active_samples(), 40);
}

TEST_F(ResourceLimitsTest, BadLimitsFailTheStart) {
  CoordinatorServer::Options options;
  options.listen_address = "127.0.0.1:0";
  options.data_dir = (dir_.path() / "models").string();
  options.max_watch_streams = 0;
  auto server = CoordinatorServer::Start(options);
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace oubli::coordinator
