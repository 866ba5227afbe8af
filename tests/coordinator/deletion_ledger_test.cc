// The deletion ledger: chained and signed entries written with the
// deletion records, the offline check catching every kind of tampering,
// and the whole path through the public API (ExportLedger) across a
// coordinator restart.
#include "coordinator/deletion_ledger.h"

#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/signing_key.h"
#include "coordinator/deletion_log.h"
#include "coordinator/grpc_service.h"
#include "oubli/v1/ledger.pb.h"
#include "oubli/v1/oubli.grpc.pb.h"
#include "storage/lineage_store.h"
#include "tests/testing/in_process_coordinator.h"
#include "tests/testing/service_client.h"
#include "tests/testing/test_util.h"

namespace oubli::coordinator {
namespace {

namespace v1 = ::oubli::v1;
using internal::DeletionRecord;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing_util::TinyConfig;
using testing_util::TinySamples;

// A lineage store and a ledger over it, written the way the engine does:
// records and their ledger entries in one batch.
class DeletionLedgerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto key = SigningKey::LoadOrCreate((dir_.path() / "key.pem").string());
    ASSERT_TRUE(key.ok()) << key.status();
    key_ = *std::move(key);
    auto verifying = VerifyingKey::FromPem(key_->public_key_pem());
    ASSERT_TRUE(verifying.ok()) << verifying.status();
    verifying_ = *std::move(verifying);
    ASSERT_NO_FATAL_FAILURE(OpenStore());
  }

  void OpenStore() {
    ledger_.reset();
    store_.reset();
    auto store =
        storage::LineageStore::Open({(dir_.path() / "lineage").string(), true});
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    auto ledger = DeletionLedger::Open(store_.get(), "m", key_.get());
    ASSERT_TRUE(ledger.ok()) << ledger.status();
    ledger_ = *std::move(ledger);
  }

  static DeletionRecord Record(const std::string& id, int stages) {
    DeletionRecord record;
    record.set_deletion_id(id);
    record.add_requested_ids("secret-sample-" + id);
    record.add_resolved_ids("secret-sample-" + id);
    const int64_t t = 1000;
    if (stages >= 1) record.set_accepted_unix_nanos(t);
    if (stages >= 2) record.set_forgotten_unix_nanos(t + 1);
    if (stages >= 3) record.set_purged_unix_nanos(t + 2);
    if (stages >= 4) record.set_restored_unix_nanos(t + 3);
    return record;
  }

  void Accept(const DeletionRecord& record) {
    storage::LineageStore::NewDeletion entry{
        record.deletion_id(), record.SerializeAsString(), {}};
    ASSERT_TRUE(ledger_
                    ->Append({record},
                             [&](const storage::LineageStore::MetaPuts& puts) {
                               return store_->RecordDeletions({entry}, puts);
                             })
                    .ok());
  }

  void Update(const DeletionRecord& record) {
    ASSERT_TRUE(WriteDeletions(*store_, ledger_.get(), {record}).ok());
  }

  std::vector<std::string> Export() {
    auto records = ledger_->Read(1, 1000);
    EXPECT_TRUE(records.ok()) << records.status();
    return records.ok() ? *records : std::vector<std::string>();
  }

  // The ledger of three deletions at various stages.
  std::vector<std::string> ThreeDeletions() {
    Accept(Record("del-1", 1));
    Accept(Record("del-2", 1));
    Update(Record("del-1", 3));  // FORGOTTEN and PURGED together
    Accept(Record("del-3", 1));
    Update(Record("del-2", 4));
    Update(Record("del-1", 4));
    return Export();
  }

  testing_util::ScopedTempDir dir_;
  std::unique_ptr<SigningKey> key_;
  std::unique_ptr<VerifyingKey> verifying_;
  std::unique_ptr<storage::LineageStore> store_;
  std::unique_ptr<DeletionLedger> ledger_;
};

TEST_F(DeletionLedgerTest, EveryStageIsLedgeredOnceInWriteOrder) {
  const std::vector<std::string> records = ThreeDeletions();
  auto summary = VerifyLedger("m", records, *verifying_);
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_EQ(summary->entries, 9);
  EXPECT_THAT(summary->stages.at("del-1"), ElementsAre(1, 2, 3, 4));
  EXPECT_THAT(summary->stages.at("del-2"), ElementsAre(1, 2, 3, 4));
  EXPECT_THAT(summary->stages.at("del-3"), ElementsAre(1));
  // Rewriting a record with no new stage adds nothing.
  Update(Record("del-1", 4));
  EXPECT_EQ(Export().size(), 9u);
  // Digests, never the ids themselves.
  for (const std::string& record : records) {
    EXPECT_THAT(record, Not(HasSubstr("secret-sample")));
  }
}

TEST_F(DeletionLedgerTest, TheChainContinuesAcrossAReopen) {
  ThreeDeletions();
  ASSERT_NO_FATAL_FAILURE(OpenStore());
  EXPECT_EQ(ledger_->head_sequence(), 9);
  Update(Record("del-3", 2));
  auto summary = VerifyLedger("m", Export(), *verifying_);
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_EQ(summary->entries, 10);
  EXPECT_THAT(summary->stages.at("del-3"), ElementsAre(1, 2));
}

TEST_F(DeletionLedgerTest, AnotherKeyCannotContinueTheChain) {
  ThreeDeletions();
  ledger_.reset();
  auto other = SigningKey::LoadOrCreate((dir_.path() / "other.pem").string());
  ASSERT_TRUE(other.ok());
  auto reopened = DeletionLedger::Open(store_.get(), "m", other->get());
  ASSERT_FALSE(reopened.ok());
  EXPECT_EQ(reopened.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(reopened.status().message(), HasSubstr("restore the original"));
}

TEST_F(DeletionLedgerTest, RecordsWrittenWithoutALedgerAreLedgeredAtOpen) {
  // As before this release: records without ledger entries.
  DeletionRecord old = Record("del-7", 3);
  ASSERT_TRUE(
      store_
          ->RecordDeletions({{old.deletion_id(), old.SerializeAsString(), {}}})
          .ok());
  ASSERT_NO_FATAL_FAILURE(OpenStore());
  auto summary = VerifyLedger("m", Export(), *verifying_);
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_THAT(summary->stages.at("del-7"), ElementsAre(1, 2, 3));
}

TEST_F(DeletionLedgerTest, TamperingDroppingAndReorderingAreDetected) {
  const std::vector<std::string> intact = ThreeDeletions();
  ASSERT_TRUE(VerifyLedger("m", intact, *verifying_).ok());

  auto fails = [&](std::vector<std::string> records, const std::string& why) {
    auto summary = VerifyLedger("m", records, *verifying_);
    ASSERT_FALSE(summary.ok()) << why;
    EXPECT_EQ(summary.status().code(), absl::StatusCode::kDataLoss);
    EXPECT_THAT(summary.status().message(), HasSubstr(why));
  };
  // An entry's content changed (a stage moved, re-signing impossible).
  {
    std::vector<std::string> records = intact;
    v1::LedgerRecord record;
    ASSERT_TRUE(record.ParseFromString(records[4]));
    v1::LedgerEntry entry;
    ASSERT_TRUE(entry.ParseFromString(record.entry()));
    entry.set_stage_unix_nanos(entry.stage_unix_nanos() + 1);
    record.set_entry(entry.SerializeAsString());
    records[4] = record.SerializeAsString();
    fails(records, "ledger entry 5: the signature does not verify");
  }
  // A byte flipped anywhere in the stored bytes.
  {
    std::vector<std::string> records = intact;
    records[2][records[2].size() / 2] ^= 0x01;
    auto summary = VerifyLedger("m", records, *verifying_);
    EXPECT_FALSE(summary.ok());
  }
  // An entry dropped.
  {
    std::vector<std::string> records = intact;
    records.erase(records.begin() + 3);
    fails(records, "ledger entry 4: has sequence 5");
  }
  // Two entries swapped.
  {
    std::vector<std::string> records = intact;
    std::swap(records[1], records[2]);
    fails(records, "ledger entry 2: has sequence 3");
  }
  // Another key, another model.
  {
    auto other = SigningKey::LoadOrCreate((dir_.path() / "other.pem").string());
    ASSERT_TRUE(other.ok());
    auto other_verifying = VerifyingKey::FromPem((*other)->public_key_pem());
    ASSERT_TRUE(other_verifying.ok());
    auto summary = VerifyLedger("m", intact, **other_verifying);
    ASSERT_FALSE(summary.ok());
    EXPECT_THAT(summary.status().message(), HasSubstr("signature"));
    summary = VerifyLedger("other-model", intact, *verifying_);
    ASSERT_FALSE(summary.ok());
    EXPECT_THAT(summary.status().message(), HasSubstr("belongs to model 'm'"));
  }
}

TEST(SigningKeyTest, CreatesAPrivateKeyFileAndReloadsTheSameKey) {
  testing_util::ScopedTempDir dir;
  const std::string path = (dir.path() / "key.pem").string();
  auto created = SigningKey::LoadOrCreate(path);
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ(std::filesystem::status(path).permissions() &
                (std::filesystem::perms::group_all |
                 std::filesystem::perms::others_all),
            std::filesystem::perms::none);
  EXPECT_EQ(testing_util::ReadWholeFile(path + ".pub"),
            (*created)->public_key_pem());
  auto loaded = SigningKey::LoadOrCreate(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ((*loaded)->key_id(), (*created)->key_id());
  auto verifying = VerifyingKey::FromPem((*created)->public_key_pem());
  ASSERT_TRUE(verifying.ok());
  EXPECT_TRUE((*verifying)->Verify("message", (*loaded)->Sign("message")));
  EXPECT_FALSE((*verifying)->Verify("messagE", (*loaded)->Sign("message")));
  testing_util::WriteWholeFile(dir.path() / "bad.pem", "not a key");
  EXPECT_EQ(SigningKey::LoadOrCreate((dir.path() / "bad.pem").string())
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(VerifyingKey::FromPem("not a key").ok());
}

// Through the public API: every stage of every deletion is in the export,
// signed with the key in DATA_DIR/ledger-key.pem, across a restart.
class LedgerServiceTest : public testing_util::InProcessCoordinatorTest {
 protected:
  // The whole ledger of `model_id` and the key it came with.
  std::vector<std::string> ExportLedger(const std::string& model_id,
                                        std::string* key_pem) {
    grpc::ClientContext context;
    context.set_deadline(testing_util::Deadline(30));
    v1::ExportLedgerRequest request;
    request.set_model_id(model_id);
    auto reader = stub_->ExportLedger(&context, request);
    std::vector<std::string> records;
    v1::ExportLedgerResponse page;
    while (reader->Read(&page)) {
      if (!page.public_key_pem().empty()) *key_pem = page.public_key_pem();
      for (const v1::LedgerRecord& r : page.records()) {
        records.push_back(r.SerializeAsString());
      }
    }
    grpc::Status status = reader->Finish();
    EXPECT_TRUE(status.ok()) << status.error_message();
    return records;
  }

};

TEST_F(LedgerServiceTest, ExportHasEveryStageSignedAcrossARestart) {
  ASSERT_NO_FATAL_FAILURE(CreateTrainedModel("m"));
  v1::DeletionReceipt by_owner;
  ASSERT_TRUE(ForgetOwner("m", "owner-2", &by_owner).ok());
  v1::DeletionReceipt by_id;
  ASSERT_TRUE(Delete("m", {"sample-1030"}, "", &by_id).ok());
  ASSERT_NO_FATAL_FAILURE(WatchToRestored(by_owner.deletion_id()));
  ASSERT_NO_FATAL_FAILURE(WatchToRestored(by_id.deletion_id()));

  std::string key_pem;
  std::vector<std::string> records = ExportLedger("m", &key_pem);
  const std::string on_disk = testing_util::ReadWholeFile(
      dir_.path() / "models" / "ledger-key.pem.pub");
  EXPECT_EQ(key_pem, on_disk);
  auto key = VerifyingKey::FromPem(on_disk);
  ASSERT_TRUE(key.ok()) << key.status();
  auto summary = VerifyLedger("m", records, **key);
  ASSERT_TRUE(summary.ok()) << summary.status();
  const auto local_id = [](const std::string& qualified) {
    return qualified.substr(qualified.find('/') + 1);
  };
  EXPECT_THAT(summary->stages.at(local_id(by_owner.deletion_id())),
              ElementsAre(1, 2, 3, 4));
  EXPECT_THAT(summary->stages.at(local_id(by_id.deletion_id())),
              ElementsAre(1, 2, 3, 4));
  for (const std::string& record : records) {
    EXPECT_THAT(record, Not(HasSubstr("owner-2")));
    EXPECT_THAT(record, Not(HasSubstr("sample-10")));
  }

  ASSERT_NO_FATAL_FAILURE(Start());
  v1::DeletionReceipt after;
  ASSERT_TRUE(Delete("m", {"sample-1040"}, "", &after).ok());
  ASSERT_NO_FATAL_FAILURE(WatchToRestored(after.deletion_id()));
  records = ExportLedger("m", &key_pem);
  summary = VerifyLedger("m", records, **key);
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_EQ(summary->entries, 12);
  EXPECT_THAT(summary->stages.at(local_id(after.deletion_id())),
              ElementsAre(1, 2, 3, 4));

  // Refusals: an unknown model, a negative start.
  grpc::ClientContext context;
  v1::ExportLedgerRequest request;
  request.set_model_id("nope");
  auto reader = stub_->ExportLedger(&context, request);
  v1::ExportLedgerResponse page;
  while (reader->Read(&page)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::NOT_FOUND);
  grpc::ClientContext negative_context;
  request.set_model_id("m");
  request.set_from_sequence(-1);
  reader = stub_->ExportLedger(&negative_context, request);
  while (reader->Read(&page)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

}  // namespace
}  // namespace oubli::coordinator
