// DeleteModel through the public API: durable before the reply, calls to
// the model refused while it goes, nothing of it left in any file after
// PURGED (byte scan), its ledger kept and verifiable, the id reusable, and
// a deletion a crash interrupted finished by the next start.
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "common/file_util.h"
#include "common/signing_key.h"
#include "coordinator/grpc_service.h"
#include "coordinator/ledger_format.h"
#include "oubli/internal/records.pb.h"
#include "oubli/v1/oubli.grpc.pb.h"
#include "tests/testing/in_process_coordinator.h"
#include "tests/testing/service_client.h"
#include "tests/testing/test_util.h"

namespace oubli::coordinator {
namespace {

namespace v1 = ::oubli::v1;
using ::testing::IsEmpty;
using testing_util::FilesContaining;
using testing_util::TinySamples;

class DeleteModelTest : public testing_util::InProcessCoordinatorTest {
 protected:
  grpc::Status DeleteModel(const std::string& model_id,
                           v1::ModelDeletion* deletion) {
    v1::DeleteModelRequest request;
    request.set_model_id(model_id);
    return Call(&v1::Oubli::Stub::DeleteModel, request, deletion);
  }

  // Follows the deletion until PURGED (hang guard: 60 s).
  v1::ModelDeletion WaitPurged(const std::string& model_id) {
    v1::ModelDeletion deletion;
    v1::DeleteModelRequest request;
    request.set_model_id(model_id);
    request.set_status_only(true);
    for (int i = 0; i < 600; ++i) {
      grpc::Status status =
          Call(&v1::Oubli::Stub::DeleteModel, request, &deletion);
      EXPECT_TRUE(status.ok()) << status.error_message();
      if (!status.ok() || deletion.stage() == v1::PURGED) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return deletion;
  }

  // Nothing of `samples` in any file under the data dir (owners too, when
  // no other model has owners of the same names).
  void ExpectNoTraceOf(const std::vector<v1::Sample>& samples,
                       bool owners = true) {
    for (const v1::Sample& sample : samples) {
      EXPECT_THAT(FilesContaining(data_dir(), sample.id()), IsEmpty())
          << sample.id();
      EXPECT_THAT(FilesContaining(data_dir(), sample.features()), IsEmpty())
          << "features of " << sample.id();
    }
    if (owners) {
      EXPECT_THAT(FilesContaining(data_dir(), "owner-"), IsEmpty());
    }
  }

};

TEST_F(DeleteModelTest, NothingOfTheModelIsLeftAndItsLedgerIsKept) {
  const std::vector<v1::Sample> samples = TinySamples(60);
  ASSERT_NO_FATAL_FAILURE(
      CreateTrainedModel("m", testing_util::TinyConfig(), samples));
  v1::DeletionReceipt receipt;
  ASSERT_TRUE(ForgetOwner("m", "owner-2", &receipt).ok());
  ASSERT_NO_FATAL_FAILURE(WatchToRestored(receipt.deletion_id()));
  // Another model stays untouched.
  ASSERT_NO_FATAL_FAILURE(CreateTrainedModel(
      "other", testing_util::TinyConfig(), TinySamples(60, 2, 5000)));

  v1::ModelDeletion deletion;
  ASSERT_TRUE(DeleteModel("m", &deletion).ok());
  EXPECT_EQ(deletion.model_id(), "m");
  EXPECT_TRUE(deletion.has_accepted_at());
  // The model is out of service from the reply on.
  v1::Model model;
  const grpc::StatusCode during = GetModel("m", &model).error_code();
  EXPECT_TRUE(during == grpc::StatusCode::FAILED_PRECONDITION ||
              during == grpc::StatusCode::NOT_FOUND)
      << during;

  deletion = WaitPurged("m");
  ASSERT_EQ(deletion.stage(), v1::PURGED) << deletion.note();
  EXPECT_TRUE(deletion.has_purged_at());
  EXPECT_EQ(GetModel("m", &model).error_code(), grpc::StatusCode::NOT_FOUND);
  v1::ListModelsResponse models;
  ASSERT_TRUE(Call(&v1::Oubli::Stub::ListModels, v1::ListModelsRequest(),
                   &models)
                  .ok());
  ASSERT_EQ(models.models_size(), 1);
  EXPECT_EQ(models.models(0).model_id(), "other");
  EXPECT_FALSE(std::filesystem::exists(data_dir() / "m"));
  ExpectNoTraceOf(samples, /*owners=*/false);  // "other" has owner-N too
  EXPECT_TRUE(GetModel("other", &model).ok());
  EXPECT_EQ(model.active_samples(), 60);

  // The ledger (digests only) verifies with the coordinator's key.
  const std::string ledger = testing_util::ReadWholeFile(
      data_dir() / "~deleted-ledgers" / "m");
  auto records = DecodeLedgerFile(ledger);
  ASSERT_TRUE(records.ok()) << records.status();
  auto key = VerifyingKey::FromPem(
      testing_util::ReadWholeFile(data_dir() / "ledger-key.pem.pub"));
  ASSERT_TRUE(key.ok());
  auto summary = VerifyLedger("m", *records, **key);
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_EQ(summary->entries, 4);

  // Idempotent after PURGED; the id can be created again, and following
  // the old deletion never touches the new model.
  ASSERT_TRUE(DeleteModel("m", &deletion).ok());
  EXPECT_EQ(deletion.stage(), v1::PURGED);
  ASSERT_TRUE(Create("m", testing_util::TinyConfig(), &model).ok());
  EXPECT_EQ(WaitPurged("m").stage(), v1::PURGED);
  EXPECT_TRUE(GetModel("m", &model).ok());
  EXPECT_EQ(model.active_samples(), 0);
  v1::DeleteModelRequest status_only;
  status_only.set_model_id("never-deleted");
  status_only.set_status_only(true);
  EXPECT_EQ(Call(&v1::Oubli::Stub::DeleteModel, status_only, &deletion)
                .error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(DeleteModelTest, AnUnknownModelIsNotFound) {
  v1::ModelDeletion deletion;
  EXPECT_EQ(DeleteModel("nope", &deletion).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(DeleteModelTest, ADeletionACrashInterruptedIsFinishedAtTheNextStart) {
  const std::vector<v1::Sample> samples = TinySamples(60);
  ASSERT_NO_FATAL_FAILURE(
      CreateTrainedModel("m", testing_util::TinyConfig(), samples));
  server_.reset();
  // As DeleteModel leaves it when the process dies right after its reply.
  internal::ModelDeletionRecord record;
  record.set_model_id("m");
  record.set_accepted_unix_nanos(absl::ToUnixNanos(absl::Now()));
  std::filesystem::create_directories(data_dir() / "~deleted-models");
  ASSERT_TRUE(WriteFileAtomically(
                  (data_dir() / "~deleted-models" / "m").string(),
                  record.SerializeAsString())
                  .ok());
  ASSERT_NO_FATAL_FAILURE(Start());
  v1::Model model;
  EXPECT_NE(GetModel("m", &model).error_code(), grpc::StatusCode::OK);
  const v1::ModelDeletion deletion = WaitPurged("m");
  ASSERT_EQ(deletion.stage(), v1::PURGED) << deletion.note();
  EXPECT_FALSE(std::filesystem::exists(data_dir() / "m"));
  ExpectNoTraceOf(samples);
}

}  // namespace
}  // namespace oubli::coordinator
