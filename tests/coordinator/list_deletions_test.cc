// ListDeletions through the public API: newest first, pages that tile the
// log exactly, filters by stage, owner (after PURGED too) and time, a
// precise refusal for every bad argument, and the edges of paging (the
// default page size, an empty log, deletions arriving between pages, the
// cap on records examined per call).
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "coordinator/deletion_log.h"
#include "coordinator/grpc_service.h"
#include "oubli/internal/deletion.pb.h"
#include "oubli/v1/oubli.grpc.pb.h"
#include "storage/lineage_store.h"
#include "tests/testing/service_client.h"
#include "tests/testing/test_util.h"

namespace oubli::coordinator {
namespace {

namespace v1 = ::oubli::v1;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

class ListDeletionsTest : public testing_util::ServiceClientTest {
 protected:
  void Start(bool background_retrain) {
    CoordinatorServer::Options options;
    options.listen_address = "127.0.0.1:0";
    options.data_dir = (dir_.path() / "models").string();
    options.background_retrain = background_retrain;
    auto server = CoordinatorServer::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    stub_ = testing_util::NewStub(server_->address());
  }
  void TearDown() override {
    stub_.reset();
    server_.reset();
  }

  // Five deletions, oldest first: owner-1, two single ids, owner-3, one id.
  void FiveDeletions() {
    ASSERT_NO_FATAL_FAILURE(CreateTrainedModel("m"));
    v1::DeletionReceipt receipt;
    ASSERT_TRUE(ForgetOwner("m", "owner-1", &receipt).ok());
    ids_.push_back(receipt.deletion_id());
    for (const char* id : {"sample-1000", "sample-1001"}) {
      ASSERT_TRUE(Delete("m", {id}, "", &receipt).ok());
      ids_.push_back(receipt.deletion_id());
    }
    ASSERT_TRUE(ForgetOwner("m", "owner-3", &receipt).ok());
    ids_.push_back(receipt.deletion_id());
    ASSERT_TRUE(Delete("m", {"sample-1050"}, "", &receipt).ok());
    ids_.push_back(receipt.deletion_id());
  }

  grpc::Status List(v1::ListDeletionsRequest request,
                    v1::ListDeletionsResponse* response) {
    request.set_model_id(request.model_id().empty() ? "m" : request.model_id());
    return Call(&v1::Oubli::Stub::ListDeletions, request, response);
  }

  // Every id the query returns, following tokens, with `page_size`.
  std::vector<std::string> ListAll(v1::ListDeletionsRequest request,
                                   int page_size, int* pages) {
    std::vector<std::string> ids;
    request.set_page_size(page_size);
    *pages = 0;
    while (true) {
      v1::ListDeletionsResponse response;
      grpc::Status status = List(request, &response);
      EXPECT_TRUE(status.ok()) << status.error_message();
      if (!status.ok()) break;
      ++*pages;
      for (const auto& r : response.deletions()) ids.push_back(r.deletion_id());
      if (response.next_page_token().empty()) break;
      request.set_page_token(response.next_page_token());
    }
    return ids;
  }

  std::vector<std::string> NewestFirst() const {
    return std::vector<std::string>(ids_.rbegin(), ids_.rend());
  }

  testing_util::ScopedTempDir dir_;
  std::unique_ptr<CoordinatorServer> server_;
  std::vector<std::string> ids_;  // oldest first
};

TEST_F(ListDeletionsTest, PagesTileTheLogNewestFirst) {
  ASSERT_NO_FATAL_FAILURE(Start(/*background_retrain=*/true));
  ASSERT_NO_FATAL_FAILURE(FiveDeletions());
  int pages = 0;
  for (int page_size : {1, 2, 4, 5, 6, 1000}) {
    EXPECT_THAT(ListAll({}, page_size, &pages), ElementsAreArray(NewestFirst()))
        << "page_size " << page_size;
    // No empty page at the end: the last page is the one that ends it.
    EXPECT_EQ(pages, (5 + page_size - 1) / page_size) << page_size;
  }
  // Without include_ids, receipts carry counts, not ids.
  v1::ListDeletionsResponse response;
  ASSERT_TRUE(List({}, &response).ok());
  ASSERT_EQ(response.deletions_size(), 5);
  EXPECT_THAT(response.deletions(0).resolved_ids(), IsEmpty());
  EXPECT_EQ(response.deletions(0).resolved_count(), 1);
  v1::ListDeletionsRequest with_ids;
  with_ids.set_include_ids(true);
  ASSERT_TRUE(List(with_ids, &response).ok());
  EXPECT_THAT(response.deletions(0).resolved_ids(), ElementsAre("sample-1050"));
}

TEST_F(ListDeletionsTest, FiltersByOwnerStageAndTime) {
  ASSERT_NO_FATAL_FAILURE(Start(/*background_retrain=*/true));
  ASSERT_NO_FATAL_FAILURE(FiveDeletions());
  for (const std::string& id : ids_) WatchToRestored(id);
  int pages = 0;
  // An owner's deletions, by the name in the request, after PURGED.
  v1::ListDeletionsRequest by_owner;
  by_owner.set_owner("owner-3");
  EXPECT_THAT(ListAll(by_owner, 10, &pages), ElementsAre(ids_[3]));
  by_owner.set_owner("owner-9");
  EXPECT_THAT(ListAll(by_owner, 10, &pages), IsEmpty());
  // Stages.
  v1::ListDeletionsRequest restored;
  restored.add_stages(v1::RESTORED);
  EXPECT_THAT(ListAll(restored, 10, &pages), ElementsAreArray(NewestFirst()));
  v1::ListDeletionsRequest pending;
  for (auto stage : {v1::ACCEPTED, v1::FORGOTTEN, v1::PURGED}) {
    pending.add_stages(stage);
  }
  EXPECT_THAT(ListAll(pending, 10, &pages), IsEmpty());
  // Time: from the third deletion's acceptance on, and before it.
  v1::DeletionReceipt third;
  ASSERT_TRUE(Call(
                  &v1::Oubli::Stub::GetDeletion,
                  [&] {
                    v1::GetDeletionRequest r;
                    r.set_deletion_id(ids_[2]);
                    return r;
                  }(),
                  &third)
                  .ok());
  v1::ListDeletionsRequest since;
  *since.mutable_accepted_after() = third.accepted_at();
  EXPECT_THAT(ListAll(since, 10, &pages),
              ElementsAre(ids_[4], ids_[3], ids_[2]));
  v1::ListDeletionsRequest before;
  *before.mutable_accepted_before() = third.accepted_at();
  EXPECT_THAT(ListAll(before, 1, &pages), ElementsAre(ids_[1], ids_[0]));
}

TEST_F(ListDeletionsTest, PendingDeletionsShowTheirCurrentStage) {
  // No background retraining: every deletion stays short of RESTORED.
  ASSERT_NO_FATAL_FAILURE(Start(/*background_retrain=*/false));
  ASSERT_NO_FATAL_FAILURE(FiveDeletions());
  int pages = 0;
  v1::ListDeletionsRequest restored;
  restored.add_stages(v1::RESTORED);
  EXPECT_THAT(ListAll(restored, 10, &pages), IsEmpty());
  v1::ListDeletionsRequest short_of_restored;
  for (auto stage : {v1::ACCEPTED, v1::FORGOTTEN, v1::PURGED}) {
    short_of_restored.add_stages(stage);
  }
  EXPECT_THAT(ListAll(short_of_restored, 2, &pages),
              ElementsAreArray(NewestFirst()));
}

TEST_F(ListDeletionsTest, BadArgumentsAreRefusedPrecisely) {
  ASSERT_NO_FATAL_FAILURE(Start(/*background_retrain=*/false));
  ASSERT_NO_FATAL_FAILURE(FiveDeletions());
  auto refused = [&](const v1::ListDeletionsRequest& request,
                     grpc::StatusCode code, const std::string& message) {
    v1::ListDeletionsResponse response;
    grpc::Status status = List(request, &response);
    EXPECT_EQ(status.error_code(), code) << status.error_message();
    EXPECT_THAT(status.error_message(), HasSubstr(message));
  };
  v1::ListDeletionsRequest request;
  request.set_page_size(1001);
  refused(request, grpc::StatusCode::INVALID_ARGUMENT, "page_size");
  request.set_page_size(-1);
  refused(request, grpc::StatusCode::INVALID_ARGUMENT, "page_size");
  request = {};
  request.set_page_token("del-000000000003");
  refused(request, grpc::StatusCode::INVALID_ARGUMENT, "page_token");
  request = {};
  request.add_stages(v1::DELETION_STAGE_UNSPECIFIED);
  refused(request, grpc::StatusCode::INVALID_ARGUMENT, "stages");
  request = {};
  request.mutable_accepted_after()->set_seconds(200);
  request.mutable_accepted_before()->set_seconds(100);
  refused(request, grpc::StatusCode::INVALID_ARGUMENT, "accepted_after");
  request = {};
  request.set_owner(std::string(257, 'o'));
  refused(request, grpc::StatusCode::INVALID_ARGUMENT, "owner");
  request = {};
  request.set_model_id("nope");
  refused(request, grpc::StatusCode::NOT_FOUND, "nope");
}

TEST_F(ListDeletionsTest, AnEmptyLogIsOneEmptyPageWithoutAToken) {
  ASSERT_NO_FATAL_FAILURE(Start(/*background_retrain=*/false));
  ASSERT_NO_FATAL_FAILURE(CreateTrainedModel("m"));
  for (int page_size : {0, 1, 1000}) {
    v1::ListDeletionsRequest request;
    request.set_page_size(page_size);
    v1::ListDeletionsResponse response;
    grpc::Status status = List(request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_THAT(response.deletions(), IsEmpty()) << page_size;
    EXPECT_EQ(response.next_page_token(), "") << page_size;
  }
}

TEST_F(ListDeletionsTest, PageSizeZeroMeansOneHundred) {
  ASSERT_NO_FATAL_FAILURE(Start(/*background_retrain=*/false));
  // 101 deletions: one more than the default page holds.
  const std::vector<v1::Sample> samples = testing_util::TinySamples(110);
  v1::Model model;
  ASSERT_TRUE(Create("m", testing_util::TinyConfig(), &model).ok());
  v1::IngestSamplesResponse ingested;
  ASSERT_TRUE(Ingest("m", {samples}, &ingested).ok());
  for (int i = 0; i < 101; ++i) {
    v1::DeletionReceipt receipt;
    grpc::Status status = Delete("m", {samples[i].id()}, "", &receipt);
    ASSERT_TRUE(status.ok()) << status.error_message();
    ids_.push_back(receipt.deletion_id());
  }
  v1::ListDeletionsRequest request;
  request.set_page_size(0);
  v1::ListDeletionsResponse first;
  ASSERT_TRUE(List(request, &first).ok());
  ASSERT_EQ(first.deletions_size(), 100);
  EXPECT_EQ(first.deletions(0).deletion_id(), ids_.back());
  EXPECT_EQ(first.deletions(99).deletion_id(), ids_[1]);
  ASSERT_NE(first.next_page_token(), "");
  request.set_page_token(first.next_page_token());
  v1::ListDeletionsResponse second;
  ASSERT_TRUE(List(request, &second).ok());
  ASSERT_EQ(second.deletions_size(), 1);
  EXPECT_EQ(second.deletions(0).deletion_id(), ids_[0]);
  EXPECT_EQ(second.next_page_token(), "");
}

// A token continues below the last deletion it returned: deletions accepted
// after the first page (newer, so above it) never appear on later pages,
// and none of the older ones is repeated or skipped. A listing started
// afresh shows the new ones first.
TEST_F(ListDeletionsTest, DeletionsArrivingBetweenPagesShiftNothing) {
  ASSERT_NO_FATAL_FAILURE(Start(/*background_retrain=*/false));
  ASSERT_NO_FATAL_FAILURE(FiveDeletions());
  v1::ListDeletionsRequest request;
  request.set_page_size(2);
  std::vector<std::string> seen;
  int pages = 0;
  while (true) {
    v1::ListDeletionsResponse response;
    grpc::Status status = List(request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    for (const auto& r : response.deletions()) seen.push_back(r.deletion_id());
    if (++pages == 1) {
      // Two more while the client holds the first page's token.
      for (const char* id : {"sample-1051", "sample-1052"}) {
        v1::DeletionReceipt receipt;
        ASSERT_TRUE(Delete("m", {id}, "", &receipt).ok());
        ids_.push_back(receipt.deletion_id());
      }
    }
    if (response.next_page_token().empty()) break;
    request.set_page_token(response.next_page_token());
  }
  EXPECT_EQ(pages, 3);
  EXPECT_THAT(seen, ElementsAre(ids_[4], ids_[3], ids_[2], ids_[1], ids_[0]));
  EXPECT_THAT(ListAll({}, 2, &pages), ElementsAreArray(NewestFirst()));
}

// Past kMaxScannedPerPage records examined, a call ends with a short page
// (here an empty one) that still carries a token, and following it finds
// what lies further down. Over the deletion log itself: through the API
// this would take 10,001 deletions.
TEST(ListDeletionsScanCapTest, AShortPageStillCarriesAToken) {
  testing_util::ScopedTempDir dir;
  storage::LineageStore::Options options;
  options.path = (dir.path() / "lineage").string();
  auto store = storage::LineageStore::Open(options);
  ASSERT_TRUE(store.ok()) << store.status();
  // Only the oldest deletion forgot "subject"; every other one is examined
  // and passed over first.
  std::vector<storage::LineageStore::NewDeletion> deletions;
  for (int64_t seq = 1; seq <= kMaxScannedPerPage + 1; ++seq) {
    internal::DeletionRecord record;
    record.set_deletion_id(DeletionIdFor(seq));
    record.set_owner(seq == 1 ? "subject" : absl::StrCat("other-", seq));
    record.set_accepted_unix_nanos(seq);
    deletions.push_back({record.deletion_id(), record.SerializeAsString(), {}});
  }
  ASSERT_TRUE((*store)->RecordDeletions(deletions).ok());
  DeletionQuery query;
  query.owner = "subject";
  query.page_size = 10;
  auto same = [](internal::DeletionRecord record) { return record; };
  auto first = ListDeletions(**store, query, same);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_THAT(first->receipts, IsEmpty());
  ASSERT_NE(first->next_below_id, "");
  query.below_id = first->next_below_id;
  auto second = ListDeletions(**store, query, same);
  ASSERT_TRUE(second.ok()) << second.status();
  ASSERT_EQ(second->receipts.size(), 1u);
  EXPECT_EQ(second->receipts[0].deletion_id, DeletionIdFor(1));
  EXPECT_EQ(second->next_below_id, "");
}

}  // namespace
}  // namespace oubli::coordinator
