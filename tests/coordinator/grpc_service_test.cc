// The public gRPC API end to end: an in-process oubli-coordinator on
// 127.0.0.1:0, a real channel, a tiny model. Asserts behaviour (codes,
// fields, stage order, bitwise verification), never timing.
#include "coordinator/grpc_service.h"

#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "oubli/v1/oubli.grpc.pb.h"
#include "tests/testing/service_client.h"

namespace oubli::coordinator {
namespace {

namespace v1 = ::oubli::v1;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::SizeIs;
using ::testing::StartsWith;
using testing_util::Deadline;
using testing_util::kTinyClasses;
using testing_util::kTinyWidth;
using testing_util::TinyConfig;
using testing_util::TinySamples;

class GrpcServiceTest : public testing_util::ServiceClientTest {
 protected:
  void SetUp() override {
    root_ = std::filesystem::temp_directory_path() /
            ("oubli-grpc-test-" + std::to_string(::getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(root_);
    StartServer(int64_t{64} << 20);
  }
  void TearDown() override {
    stub_.reset();
    server_.reset();
    std::filesystem::remove_all(root_);
  }

  void StartServer(int64_t max_message_bytes) {
    stub_.reset();
    server_.reset();
    CoordinatorServer::Options options;
    options.listen_address = "127.0.0.1:0";
    options.data_dir = (root_ / "models").string();
    options.max_message_bytes = max_message_bytes;
    auto server = CoordinatorServer::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    ASSERT_GT(server_->port(), 0);
    stub_ = testing_util::NewStub(server_->address());
  }

  std::filesystem::path root_;
  std::unique_ptr<CoordinatorServer> server_;
};

TEST_F(GrpcServiceTest, CreateIsIdempotentAndRejectsAConflictingConfig) {
  v1::Model model;
  grpc::Status status = Create("tiny", TinyConfig(), &model);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(model.model_id(), "tiny");
  EXPECT_EQ(model.config().shards(), 2);
  EXPECT_EQ(model.config().input_channels(), 1);  // server default filled in
  EXPECT_EQ(model.worker_placement(), "local");

  v1::Model again;
  status = Create("tiny", TinyConfig(), &again);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(again.config_fingerprint(), model.config_fingerprint());

  v1::ModelConfig other = TinyConfig();
  other.set_seed(2);
  status = Create("tiny", other, &again);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_THAT(status.error_message(), HasSubstr("different config"));
  // It names what differs, weight-neutral settings too.
  EXPECT_THAT(status.error_message(), HasSubstr("seed: '1', requested '2'"));
  other = TinyConfig();
  other.set_base_fallback(true);
  status = Create("tiny", other, &again);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_THAT(status.error_message(),
              HasSubstr("serving.base_fallback: 'false', requested 'true'"));
}

// Placement: owner unless told; a repeat that leaves it unset keeps the
// existing model's (e.g. a model made before placement existed); a repeat
// that names another placement conflicts.
TEST_F(GrpcServiceTest, CreateDefaultsToOwnerPlacementAndRepeatsKeepTheirs) {
  v1::Model fresh;
  ASSERT_TRUE(Create("fresh", TinyConfig(), &fresh).ok());
  EXPECT_EQ(fresh.config().placement().by(), v1::PLACEMENT_OWNER);
  EXPECT_EQ(fresh.config().placement().risk_slices(), 0);

  v1::ModelConfig by_sample = TinyConfig();
  by_sample.mutable_placement()->set_by(v1::PLACEMENT_SAMPLE);
  v1::Model old;
  ASSERT_TRUE(Create("old", by_sample, &old).ok());
  EXPECT_EQ(old.config().placement().by(), v1::PLACEMENT_SAMPLE);
  v1::Model again;
  grpc::Status status = Create("old", TinyConfig(), &again);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(again.config().placement().by(), v1::PLACEMENT_SAMPLE);
  EXPECT_EQ(again.config_fingerprint(), old.config_fingerprint());
  v1::ModelConfig by_owner = TinyConfig();
  by_owner.mutable_placement()->set_by(v1::PLACEMENT_OWNER);
  status = Create("old", by_owner, &again);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::ALREADY_EXISTS);

  // Refusals name the field.
  v1::ModelConfig bad = TinyConfig();
  bad.mutable_placement()->set_risk_slices(testing_util::kTinySlices);  // none left
  status = Create("bad", bad, &again);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("placement.risk_slices"));
  bad = TinyConfig();
  bad.mutable_placement()->set_risk_slices(1);
  bad.mutable_placement()->set_risk_shards(TinyConfig().shards());
  status = Create("bad", bad, &again);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("placement.risk_shards"));
  bad = TinyConfig();
  bad.mutable_placement()->set_by(static_cast<v1::Placement>(7));
  status = Create("bad", bad, &again);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("config.placement.by"));
  // A deletion_risk hint outside [0, 1] rejects that sample, by name.
  std::vector<v1::Sample> samples = TinySamples(2, 3);
  samples[1].set_deletion_risk(1.5f);
  v1::IngestSamplesResponse ingested;
  status = Ingest("fresh", {samples}, &ingested);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(ingested.accepted(), 1);
  ASSERT_EQ(ingested.rejected_size(), 1);
  EXPECT_EQ(ingested.rejected(0).sample_id(), samples[1].id());
  EXPECT_THAT(ingested.rejected(0).reason(), HasSubstr("deletion_risk"));
}

TEST_F(GrpcServiceTest, ListModelsSummarizesEveryModelById) {
  v1::Model zeta_model;
  ASSERT_TRUE(Create("zeta", TinyConfig(), &zeta_model).ok());
  CreateTrainedModel("alpha");
  v1::Model alpha_model;
  ASSERT_TRUE(GetModel("alpha", &alpha_model).ok());

  grpc::ClientContext context;
  v1::ListModelsResponse response;
  grpc::Status status =
      stub_->ListModels(&context, v1::ListModelsRequest(), &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.models_size(), 2);
  const v1::ModelSummary& alpha = response.models(0);
  const v1::ModelSummary& zeta = response.models(1);
  EXPECT_EQ(alpha.model_id(), "alpha");  // by id
  EXPECT_EQ(zeta.model_id(), "zeta");
  EXPECT_TRUE(alpha.training_requested());
  EXPECT_EQ(alpha.config_fingerprint(), alpha_model.config_fingerprint());
  EXPECT_EQ(alpha.fingerprint(), alpha_model.fingerprint());
  EXPECT_EQ(alpha.active_samples(), alpha_model.active_samples());
  EXPECT_EQ(alpha.shards(), 2);
  EXPECT_EQ(alpha.shards_served(), 2);
  EXPECT_EQ(alpha.shards_full_length(), 2);
  EXPECT_FALSE(zeta.training_requested());
  EXPECT_EQ(zeta.active_samples(), 0);
  EXPECT_EQ(zeta.shards_served(), 0);
  EXPECT_EQ(zeta.pending_deletions(), 0);
  EXPECT_FALSE(zeta.has_oldest_pending_accepted_at());
}

TEST_F(GrpcServiceTest, ModelsSurviveARestart) {
  v1::Model model;
  ASSERT_TRUE(Create("kept", TinyConfig(), &model).ok());
  StartServer(int64_t{64} << 20);  // same data dir
  grpc::ClientContext context;
  v1::GetModelRequest request;
  request.set_model_id("kept");
  v1::Model reopened;
  grpc::Status status = stub_->GetModel(&context, request, &reopened);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(reopened.config_fingerprint(), model.config_fingerprint());
}

TEST_F(GrpcServiceTest, StreamingIngestCountsDuplicatesAndRejects) {
  v1::Model model;
  ASSERT_TRUE(Create("tiny", TinyConfig(), &model).ok());
  std::vector<v1::Sample> first = TinySamples(10, 1);
  std::vector<v1::Sample> second = {first[0]};  // duplicate
  v1::Sample bad_label = TinySamples(11, 1)[10];
  bad_label.set_label(kTinyClasses);
  second.push_back(bad_label);
  v1::Sample bad_utf8 = first[1];
  bad_utf8.set_id(std::string("bad-\xff\xfe", 6));
  second.push_back(bad_utf8);

  v1::IngestSamplesResponse response;
  grpc::Status status = Ingest("tiny", {first, second}, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.accepted(), 10);
  EXPECT_EQ(response.duplicates(), 1);
  ASSERT_THAT(response.rejected(), SizeIs(2));
  std::vector<std::string> reasons;
  for (const auto& r : response.rejected()) reasons.push_back(r.reason());
  EXPECT_THAT(reasons, ::testing::UnorderedElementsAre(HasSubstr("label"),
                                                       HasSubstr("UTF-8")));
}

TEST_F(GrpcServiceTest, TrainJobSucceedsThenPredictAndGetModelAgree) {
  v1::Model model;
  ASSERT_TRUE(Create("tiny", TinyConfig(), &model).ok());
  std::vector<float> rows(2 * kTinyWidth, 0.5f);
  v1::PredictResponse untrained;
  EXPECT_EQ(Predict("tiny", 2, rows, &untrained).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);

  v1::IngestSamplesResponse ingest;
  ASSERT_TRUE(Ingest("tiny", {TinySamples(60, 1)}, &ingest).ok());
  const v1::Job job = TrainAndWait("tiny");
  ASSERT_EQ(job.state(), v1::Job::SUCCEEDED) << job.error();
  EXPECT_THAT(job.job_id(), StartsWith("job-"));
  EXPECT_GT(job.total_prefixes(), 0);
  EXPECT_EQ(job.trained_prefixes(), job.total_prefixes());
  EXPECT_DOUBLE_EQ(job.progress(), 1.0);
  EXPECT_TRUE(job.has_finished_at());

  v1::PredictResponse prediction;
  grpc::Status status = Predict("tiny", 2, rows, &prediction);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(prediction.rows(), 2);
  EXPECT_EQ(prediction.classes(), kTinyClasses);
  ASSERT_THAT(prediction.probabilities(), SizeIs(2 * kTinyClasses));
  EXPECT_NEAR(prediction.probabilities(0) + prediction.probabilities(1) +
                  prediction.probabilities(2),
              1.0, 1e-4);
  EXPECT_THAT(prediction.predicted_classes(), SizeIs(2));
  ASSERT_THAT(prediction.served(), SizeIs(2));
  for (const auto& served : prediction.served()) {
    EXPECT_TRUE(served.served());
    EXPECT_THAT(served.prefix(), SizeIs(4));  // full length L
  }

  // The same input as little-endian bytes gives the same answer.
  grpc::ClientContext context;
  v1::PredictRequest request;
  request.set_model_id("tiny");
  request.set_rows(2);
  request.set_features_f32le(
      std::string(reinterpret_cast<const char*>(rows.data()), rows.size() * 4));
  v1::PredictResponse from_bytes;
  ASSERT_TRUE(stub_->Predict(&context, request, &from_bytes).ok());
  EXPECT_EQ(from_bytes.probabilities(0), prediction.probabilities(0));

  grpc::ClientContext model_context;
  v1::GetModelRequest model_request;
  model_request.set_model_id("tiny");
  v1::Model status_model;
  ASSERT_TRUE(
      stub_->GetModel(&model_context, model_request, &status_model).ok());
  EXPECT_EQ(status_model.fingerprint(), prediction.fingerprint());
  EXPECT_EQ(status_model.active_samples(), 60);
  EXPECT_EQ(status_model.missing_prefixes(), 0);
  EXPECT_TRUE(status_model.training_requested());
  ASSERT_THAT(status_model.shards(), SizeIs(2));
  for (const auto& shard : status_model.shards()) {
    ASSERT_THAT(shard.sequences(), SizeIs(2));
    for (const auto& sequence : shard.sequences()) {
      EXPECT_EQ(sequence.valid_length(), 4);
    }
  }
}

TEST_F(GrpcServiceTest, DeleteWatchToRestoredThenVerifyMatches) {
  CreateTrainedModel("tiny");
  v1::DeletionReceipt receipt;
  grpc::Status status =
      Delete("tiny", {"sample-1003", "sample-1017", "nope"}, "key-1", &receipt);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_THAT(receipt.deletion_id(), StartsWith("tiny/del-"));
  EXPECT_EQ(receipt.model_id(), "tiny");
  EXPECT_THAT(receipt.resolved_ids(),
              ::testing::UnorderedElementsAre("sample-1003", "sample-1017"));
  EXPECT_THAT(receipt.unknown_ids(), ElementsAre("nope"));
  // Acknowledged once durable and deactivated; purge follows.
  EXPECT_GE(receipt.stage(), v1::FORGOTTEN);
  EXPECT_TRUE(receipt.has_accepted_at());
  EXPECT_TRUE(receipt.has_forgotten_at());
  EXPECT_FALSE(receipt.affected().empty());
  EXPECT_NE(receipt.fingerprint_forgotten(), receipt.fingerprint_before());

  // Same key, same request: the same deletion, not a new one.
  v1::DeletionReceipt repeat;
  ASSERT_TRUE(
      Delete("tiny", {"sample-1003", "sample-1017", "nope"}, "key-1", &repeat)
          .ok());
  EXPECT_EQ(repeat.deletion_id(), receipt.deletion_id());
  // Same key, other request: refused.
  EXPECT_EQ(Delete("tiny", {"sample-1004"}, "key-1", &repeat).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);

  std::vector<v1::DeletionReceipt> watched;
  status = Watch(receipt.deletion_id(), &watched);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_FALSE(watched.empty());
  EXPECT_EQ(watched.back().stage(), v1::RESTORED);
  EXPECT_TRUE(watched.back().has_restored_at());
  EXPECT_FALSE(watched.back().fingerprint_restored().empty());
  EXPECT_TRUE(watched.back().has_purged_at());
  for (size_t i = 1; i < watched.size(); ++i) {
    EXPECT_GT(watched[i].stage(), watched[i - 1].stage());  // changes only
  }

  grpc::ClientContext get_context;
  v1::GetDeletionRequest get;
  get.set_deletion_id(receipt.deletion_id());
  v1::DeletionReceipt fetched;
  ASSERT_TRUE(stub_->GetDeletion(&get_context, get, &fetched).ok());
  EXPECT_EQ(fetched.stage(), v1::RESTORED);

  // Forgetting an owner goes through the same pipeline.
  v1::DeletionReceipt forgotten;
  status = ForgetOwner("tiny", "owner-4", &forgotten);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(forgotten.owner(), "owner-4");
  EXPECT_THAT(forgotten.resolved_ids(), SizeIs(5));
  watched.clear();
  ASSERT_TRUE(Watch(forgotten.deletion_id(), &watched).ok());
  EXPECT_EQ(watched.back().stage(), v1::RESTORED);

  grpc::ClientContext verify_context;
  verify_context.set_deadline(Deadline(120));
  v1::VerifyRequest verify;
  verify.set_model_id("tiny");
  v1::VerifyResponse report;
  status = stub_->Verify(&verify_context, verify, &report);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(report.restored());
  EXPECT_TRUE(report.match());
  EXPECT_EQ(report.served_fingerprint(), report.scratch_fingerprint());
  EXPECT_THAT(report.shards(), SizeIs(2));
}

// Keyed deletions with one key race: it still maps to one deletion, and
// requests with other keys meanwhile get deletions of their own.
TEST_F(GrpcServiceTest, ConcurrentRequestsWithOneKeyMakeOneDeletion) {
  CreateTrainedModel("tiny");
  constexpr int kSameKey = 6;
  constexpr int kOtherKeys = 6;
  std::vector<std::string> same_key_ids(kSameKey), other_ids(kOtherKeys);
  std::vector<grpc::Status> same_key_status(kSameKey),
      other_status(kOtherKeys);
  std::vector<std::thread> threads;
  for (int i = 0; i < kSameKey; ++i) {
    threads.emplace_back([&, i] {
      v1::DeletionReceipt receipt;
      same_key_status[i] =
          Delete("tiny", {"sample-1005", "sample-1006"}, "same", &receipt);
      same_key_ids[i] = receipt.deletion_id();
    });
  }
  for (int i = 0; i < kOtherKeys; ++i) {
    threads.emplace_back([&, i] {
      v1::DeletionReceipt receipt;
      other_status[i] =
          Delete("tiny", {absl::StrCat("sample-10", 20 + i)},
                 absl::StrCat("other-", i), &receipt);
      other_ids[i] = receipt.deletion_id();
    });
  }
  for (std::thread& t : threads) t.join();
  for (int i = 0; i < kSameKey; ++i) {
    ASSERT_TRUE(same_key_status[i].ok()) << same_key_status[i].error_message();
    EXPECT_EQ(same_key_ids[i], same_key_ids[0]);
  }
  EXPECT_THAT(same_key_ids[0], StartsWith("tiny/del-"));
  std::set<std::string> distinct(other_ids.begin(), other_ids.end());
  for (const grpc::Status& status : other_status) {
    EXPECT_TRUE(status.ok()) << status.error_message();
  }
  EXPECT_EQ(distinct.size(), static_cast<size_t>(kOtherKeys));
  EXPECT_FALSE(distinct.contains(same_key_ids[0]));
}

// One receipt per stage change, none skipped, even when stages land
// between two looks of the watch: on an untrained model PURGED and
// RESTORED land together (nothing to retrain). Each receipt is as it stood
// at its stage.
TEST_F(GrpcServiceTest, WatchSendsEveryStageEvenWhenTwoLandTogether) {
  v1::Model model;
  ASSERT_TRUE(Create("untrained", TinyConfig(), &model).ok());
  v1::IngestSamplesResponse ingest;
  ASSERT_TRUE(Ingest("untrained", {TinySamples(40, 2)}, &ingest).ok());
  for (int i = 0; i < 5; ++i) {
    v1::DeletionReceipt receipt;
    ASSERT_TRUE(
        Delete("untrained", {"sample-" + std::to_string(1000 + i)}, "",
               &receipt)
            .ok());
    std::vector<v1::DeletionReceipt> watched;
    ASSERT_TRUE(Watch(receipt.deletion_id(), &watched).ok());
    ASSERT_FALSE(watched.empty());
    EXPECT_EQ(watched.back().stage(), v1::RESTORED);
    for (size_t k = 1; k < watched.size(); ++k) {
      EXPECT_EQ(static_cast<int>(watched[k].stage()),
                static_cast<int>(watched[k - 1].stage()) + 1)
          << "deletion " << i << ": a stage was skipped";
    }
    for (const v1::DeletionReceipt& r : watched) {
      EXPECT_EQ(r.has_purged_at(), r.stage() >= v1::PURGED) << r.stage();
      EXPECT_EQ(r.has_restored_at(), r.stage() == v1::RESTORED) << r.stage();
    }
  }
}

TEST_F(GrpcServiceTest, DeletingDuringTrainingIsAccepted) {
  v1::Model model;
  ASSERT_TRUE(Create("tiny", TinyConfig(), &model).ok());
  v1::IngestSamplesResponse ingest;
  ASSERT_TRUE(Ingest("tiny", {TinySamples(60, 1)}, &ingest).ok());
  grpc::ClientContext train_context;
  v1::TrainRequest train;
  train.set_model_id("tiny");
  v1::Job job;
  ASSERT_TRUE(stub_->Train(&train_context, train, &job).ok());

  v1::DeletionReceipt receipt;
  grpc::Status status = Delete("tiny", {"sample-1010"}, "", &receipt);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_THAT(receipt.resolved_ids(), ElementsAre("sample-1010"));

  const v1::Job done = TrainAndWait("tiny");  // returns the running job
  EXPECT_EQ(done.state(), v1::Job::SUCCEEDED) << done.error();
  std::vector<v1::DeletionReceipt> watched;
  ASSERT_TRUE(Watch(receipt.deletion_id(), &watched).ok());
  EXPECT_EQ(watched.back().stage(), v1::RESTORED);

  grpc::ClientContext context;
  v1::GetModelRequest request;
  request.set_model_id("tiny");
  v1::Model after;
  ASSERT_TRUE(stub_->GetModel(&context, request, &after).ok());
  EXPECT_EQ(after.active_samples(), 59);
}

TEST_F(GrpcServiceTest, ErrorTable) {
  v1::Model model;
  ASSERT_TRUE(Create("tiny", TinyConfig(), &model).ok());

  // Unknown model.
  {
    grpc::ClientContext context;
    v1::GetModelRequest request;
    request.set_model_id("ghost");
    v1::Model out;
    grpc::Status status = stub_->GetModel(&context, request, &out);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
    EXPECT_EQ(status.error_message(), "model 'ghost' does not exist");
  }
  v1::PredictResponse prediction;
  EXPECT_EQ(Predict("ghost", 1, std::vector<float>(kTinyWidth), &prediction)
                .error_code(),
            grpc::StatusCode::NOT_FOUND);
  v1::IngestSamplesResponse ingest;
  EXPECT_EQ(Ingest("ghost", {TinySamples(1, 1)}, &ingest).error_code(),
            grpc::StatusCode::NOT_FOUND);
  v1::DeletionReceipt receipt;
  EXPECT_EQ(Delete("ghost", {"a"}, "", &receipt).error_code(),
            grpc::StatusCode::NOT_FOUND);

  // Empty batches.
  grpc::Status status = Ingest("tiny", {{}}, &ingest);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("samples"));
  status = Ingest("tiny", {}, &ingest);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  status = Delete("tiny", {}, "", &receipt);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("sample_ids"));

  // An erasure code with one half, or an impossible one.
  v1::ModelConfig half = TinyConfig();
  half.mutable_erasure()->set_data_chunks(2);
  status = Create("coded", half, &model);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("parity_chunks"));
  v1::ModelConfig no_parity = half;
  no_parity.mutable_erasure()->set_parity_chunks(0);
  status = Create("coded", no_parity, &model);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("erasure"));

  // Wrong predict shape, too many rows, both/neither forms.
  status = Predict("tiny", 2, std::vector<float>(kTinyWidth + 1), &prediction);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("features"));
  status = Predict("tiny", 4097, std::vector<float>(kTinyWidth), &prediction);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("4096"));
  status = Predict("tiny", 1, {}, &prediction);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  // Bad UTF-8 ids name the field; the limit on ids names the limit.
  status = Delete("tiny", {"ok", std::string("\xc3\x28", 2)}, "", &receipt);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("sample_ids[1]"));
  EXPECT_THAT(status.error_message(), HasSubstr("UTF-8"));
  {
    grpc::ClientContext context;
    v1::ForgetOwnerRequest request;
    request.set_model_id("tiny");
    request.set_owner(std::string("\xff", 1));
    status = stub_->ForgetOwner(&context, request, &receipt);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(status.error_message(), HasSubstr("owner"));
  }
  status = Delete("tiny", std::vector<std::string>(10001, "x"), "", &receipt);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("10000"));

  // Config out of range names the field.
  v1::ModelConfig bad = TinyConfig();
  bad.set_shards(0);
  status = Create("bad", bad, &model);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("shards"));
  status = Create("../escape", TinyConfig(), &model);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("model_id"));

  // Malformed and unknown deletion ids; unknown job.
  {
    grpc::ClientContext context;
    v1::GetDeletionRequest request;
    request.set_deletion_id("no-model-part");
    status = stub_->GetDeletion(&context, request, &receipt);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(status.error_message(), HasSubstr("deletion_id"));
  }
  {
    grpc::ClientContext context;
    v1::GetDeletionRequest request;
    request.set_deletion_id("tiny/del-000000000042");
    EXPECT_EQ(stub_->GetDeletion(&context, request, &receipt).error_code(),
              grpc::StatusCode::NOT_FOUND);
  }
  {
    grpc::ClientContext context;
    v1::GetJobRequest request;
    request.set_job_id("job-999");
    v1::Job job;
    EXPECT_EQ(stub_->GetJob(&context, request, &job).error_code(),
              grpc::StatusCode::NOT_FOUND);
  }
  // Training with no samples cannot succeed: refused up front.
  {
    grpc::ClientContext context;
    v1::TrainRequest request;
    request.set_model_id("tiny");
    v1::Job job;
    EXPECT_EQ(stub_->Train(&context, request, &job).error_code(),
              grpc::StatusCode::FAILED_PRECONDITION);
  }
}

TEST_F(GrpcServiceTest, OversizedMessageIsResourceExhausted) {
  StartServer(64 << 10);  // 64 KiB
  v1::Model model;
  ASSERT_TRUE(Create("tiny", TinyConfig(), &model).ok());
  v1::PredictResponse prediction;
  // 32k floats = 128 KiB on the wire.
  grpc::Status status =
      Predict("tiny", 2048, std::vector<float>(2048 * kTinyWidth), &prediction);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  // The server is still fine afterwards.
  status = Predict("tiny", 1, std::vector<float>(kTinyWidth), &prediction);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
}

}  // namespace
}  // namespace oubli::coordinator
