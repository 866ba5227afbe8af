#include "storage/lineage_store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "absl/strings/str_cat.h"
#include "oubli/internal/records.pb.h"
#include "storage/sample_record.h"
#include "tests/testing/test_util.h"

namespace oubli::storage {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Pair;

namespace fs = std::filesystem;
using testing_util::RandomBytes;

Sample MakeSample(const std::string& id, const std::string& owner,
                  int32_t label = 1, std::string features = "abcd") {
  Sample sample;
  sample.id = id;
  sample.owner = owner;
  sample.label = label;
  sample.feature_type = FeatureType::kU8;
  sample.features = std::move(features);
  return sample;
}

AssignedSample Assign(Sample sample, int32_t shard, int32_t slice) {
  return AssignedSample{std::move(sample), SliceRef{shard, slice}};
}

void ExpectSameSample(const Sample& actual, const Sample& expected) {
  EXPECT_EQ(actual.id, expected.id);
  EXPECT_EQ(actual.owner, expected.owner);
  EXPECT_EQ(actual.label, expected.label);
  EXPECT_EQ(actual.feature_type, expected.feature_type);
  EXPECT_EQ(actual.features, expected.features);
}

// True if a regular file under `dir` whose name contains `name_part`
// contains `needle`; `where` receives its name.
bool AnyFileContains(const fs::path& dir, const std::string& needle,
                     std::string* where, const std::string& name_part = "") {
  for (const std::string& path : testing_util::FilesContaining(dir, needle)) {
    const std::string name = fs::path(path).filename().string();
    if (name.find(name_part) != std::string::npos) {
      *where = name;
      return true;
    }
  }
  where->clear();
  return false;
}

// True if a 64-byte run from the start, middle or end of `payload` occurs in
// a file under `dir` (whose name contains `name_part`).
bool PayloadOnDisk(const fs::path& dir, const std::string& payload,
                   std::string* where, const std::string& name_part = "") {
  for (size_t offset : {size_t{0}, payload.size() / 2, payload.size() - 64}) {
    if (AnyFileContains(dir, payload.substr(offset, 64), where, name_part)) {
      return true;
    }
  }
  return false;
}

class LineageStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { Reopen(); }

  void Reopen() {
    store_.reset();
    LineageStore::Options options;
    options.path = dir_.string();
    auto store = LineageStore::Open(options);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
  }

  IngestResult IngestOk(std::vector<AssignedSample> samples) {
    auto result = store_->Ingest(samples);
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? *result : IngestResult{};
  }

  SampleRecord GetRecord(const std::string& id) {
    auto record = store_->GetSample(id);
    EXPECT_TRUE(record.ok()) << record.status();
    EXPECT_TRUE(record.ok() && record->has_value()) << id << " missing";
    return record.ok() && record->has_value() ? **record : SampleRecord{};
  }

  // Declared before store_: removed after the database is closed.
  testing_util::ScopedTempDir temp_dir_;
  const fs::path dir_ = temp_dir_.path();
  std::unique_ptr<LineageStore> store_;
};

TEST(SampleRecordTest, RoundTripsAndRefusesWhatTheStoreNeverWrites) {
  SampleRecord record;
  record.sample.owner = "alice";
  record.sample.label = 2;
  std::vector<uint32_t> tokens = {7, 70000};
  record.sample.features = EncodeTokens(tokens, &record.sample.feature_type);
  record.sample.prompt_tokens = 1;
  record.where = {3, 1};
  record.state = SampleState::kDeleted;
  record.deletion_id = "del-000000000009";
  auto decoded = DecodeSampleRecord("s", EncodeSampleRecord(record));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->sample.id, "s");
  EXPECT_EQ(decoded->sample.feature_type, FeatureType::kTokensU32);
  EXPECT_EQ(decoded->sample.features, record.sample.features);
  EXPECT_EQ(decoded->sample.prompt_tokens, 1);
  EXPECT_EQ(decoded->where.shard, 3);
  EXPECT_EQ(decoded->where.slice, 1);
  EXPECT_EQ(decoded->state, SampleState::kDeleted);
  EXPECT_EQ(decoded->deletion_id, "del-000000000009");

  auto refused = [](const internal::SampleRecord& proto) {
    auto out = DecodeSampleRecord("s", proto.SerializeAsString());
    EXPECT_EQ(out.status().code(), absl::StatusCode::kDataLoss);
    return std::string(out.status().message());
  };
  internal::SampleRecord proto;
  proto.set_shard(-1);
  EXPECT_EQ(refused(proto),
            "sample record for id 's' names shard -1 slice 0 (negative)");
  proto.set_shard(0);
  proto.set_feature_type(9);
  EXPECT_EQ(refused(proto), "sample record for id 's' has unknown feature type 9");
  EXPECT_EQ(DecodeSampleRecord("s", "\xff").status().message(),
            "sample record for id 's' does not parse");
}

TEST_F(LineageStoreTest, MetaRoundTripsAndSurvivesReopen) {
  auto missing = store_->GetMeta("plan");
  ASSERT_TRUE(missing.ok()) << missing.status();
  EXPECT_FALSE(missing->has_value());

  ASSERT_TRUE(store_->PutMeta("plan", "shards=4").ok());
  ASSERT_TRUE(store_->PutMeta("plan", "shards=5").ok());
  Reopen();
  auto value = store_->GetMeta("plan");
  ASSERT_TRUE(value.ok()) << value.status();
  EXPECT_EQ(value->value_or(""), "shards=5");
  EXPECT_EQ(store_->path(), dir_.string());
}

TEST_F(LineageStoreTest, MetaListsByPrefixAndDeletes) {
  ASSERT_TRUE(store_->PutMeta("chunks/b", "2").ok());
  ASSERT_TRUE(store_->PutMeta("chunks/a", "1").ok());
  ASSERT_TRUE(store_->PutMeta("chunkz", "not listed").ok());
  ASSERT_TRUE(store_->PutMeta("plan", "shards=4").ok());
  using Entries = std::vector<std::pair<std::string, std::string>>;
  auto listed = store_->ListMeta("chunks/");
  ASSERT_TRUE(listed.ok()) << listed.status();
  EXPECT_EQ(*listed, (Entries{{"chunks/a", "1"}, {"chunks/b", "2"}}));

  ASSERT_TRUE(store_->DeleteMeta("chunks/a").ok());
  ASSERT_TRUE(store_->DeleteMeta("chunks/never").ok());  // absent is fine
  Reopen();
  EXPECT_EQ(*store_->ListMeta("chunks/"), (Entries{{"chunks/b", "2"}}));
  EXPECT_FALSE(store_->GetMeta("chunks/a")->has_value());
  EXPECT_EQ(store_->GetMeta("plan")->value_or(""), "shards=4");
}

TEST_F(LineageStoreTest, OpenWithoutCreateFailsForMissingDb) {
  LineageStore::Options options;
  options.path = (dir_ / "absent").string();
  options.create_if_missing = false;
  auto store = LineageStore::Open(options);
  ASSERT_FALSE(store.ok());
  EXPECT_THAT(std::string(store.status().message()), HasSubstr(options.path));
}

TEST_F(LineageStoreTest, IngestStoresSamplesAndIndexes) {
  Sample floats = MakeSample("f", "bob", 7, std::string("\0\0\x80\x3f", 4));
  floats.feature_type = FeatureType::kF32;
  IngestResult result =
      IngestOk({Assign(MakeSample("c", "ann"), 0, 1),
                Assign(MakeSample("a", "ann", 2), 0, 1),
                Assign(MakeSample("b", "anna"), 0, 2), Assign(floats, 3, 0)});
  EXPECT_EQ(result.accepted, 4);
  EXPECT_EQ(result.duplicates, 0);
  EXPECT_THAT(result.rejected, IsEmpty());

  SampleRecord record = GetRecord("f");
  ExpectSameSample(record.sample, floats);
  EXPECT_EQ(record.where, (SliceRef{3, 0}));
  EXPECT_EQ(record.state, SampleState::kActive);
  EXPECT_TRUE(record.deletion_id.empty());

  auto unknown = store_->GetSample("nope");
  ASSERT_TRUE(unknown.ok());
  EXPECT_FALSE(unknown->has_value());

  auto members = store_->SliceMembers({0, 1});
  ASSERT_TRUE(members.ok()) << members.status();
  EXPECT_THAT(*members, ElementsAre("a", "c"));
  // "ann" must not match "anna"'s samples.
  auto owned = store_->OwnerSamples("ann");
  ASSERT_TRUE(owned.ok()) << owned.status();
  EXPECT_THAT(*owned, ElementsAre("a", "c"));
  auto count = store_->CountActiveSamples();
  ASSERT_TRUE(count.ok());
  EXPECT_EQ(*count, 4);

  auto read = store_->ReadActiveSamples({"f", "a"});
  ASSERT_TRUE(read.ok()) << read.status();
  ASSERT_EQ(read->size(), 2u);
  ExpectSameSample((*read)[0], floats);
  EXPECT_EQ((*read)[1].id, "a");
  EXPECT_EQ((*read)[1].label, 2);
}

TEST_F(LineageStoreTest, SliceMembersKeepsSlicesApartAcrossByteBoundaries) {
  IngestOk({Assign(MakeSample("x", "o"), 1, 1),
            Assign(MakeSample("y", "o"), 1, 256),
            Assign(MakeSample("z", "o"), 256, 1),
            Assign(MakeSample("w", "o"), 0, 0)});
  auto one = store_->SliceMembers({1, 1});
  ASSERT_TRUE(one.ok());
  EXPECT_THAT(*one, ElementsAre("x"));
  auto wide = store_->SliceMembers({1, 256});
  ASSERT_TRUE(wide.ok());
  EXPECT_THAT(*wide, ElementsAre("y"));
  auto empty = store_->SliceMembers({9, 9});
  ASSERT_TRUE(empty.ok());
  EXPECT_THAT(*empty, IsEmpty());
  EXPECT_EQ(store_->SliceMembers({-1, 0}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(LineageStoreTest, TokenSamplesKeepTheirIdsAndPrompt) {
  Sample tokens = MakeSample("t", "ann", 1);
  tokens.features = EncodeTokens({3, 70000, 5}, &tokens.feature_type);
  tokens.prompt_tokens = 2;
  IngestOk({Assign(tokens, 0, 0)});
  SampleRecord record = GetRecord("t");
  EXPECT_EQ(record.sample.feature_type, FeatureType::kTokensU32);
  EXPECT_EQ(record.sample.features, tokens.features);
  EXPECT_EQ(record.sample.prompt_tokens, 2);
  // Another prompt split is other content, named as such.
  Sample moved = tokens;
  moved.prompt_tokens = 1;
  IngestResult result = IngestOk({Assign(moved, 0, 0)});
  ASSERT_EQ(result.rejected.size(), 1u);
  EXPECT_THAT(result.rejected[0].second, HasSubstr("prompt tokens"));
  // The tombstone keeps nothing derived from the content.
  ASSERT_TRUE(store_->RecordDeletion("d1", "r", {"t"}).ok());
  ASSERT_TRUE(store_->Purge({"t"}).ok());
  EXPECT_EQ(GetRecord("t").sample.prompt_tokens, 0);
  EXPECT_TRUE(GetRecord("t").sample.features.empty());
}

TEST_F(LineageStoreTest, IngestIsIdempotentById) {
  IngestOk({Assign(MakeSample("s1", "ann"), 0, 0)});
  IngestResult result =
      IngestOk({Assign(MakeSample("s1", "ann"), 0, 0),     // duplicate
                Assign(MakeSample("s1", "bob", 3), 0, 0),  // conflict
                Assign(MakeSample("s1", "ann"), 1, 0),     // moved
                Assign(MakeSample("s2", "ann"), 0, 0),     // new
                Assign(MakeSample("s2", "ann"), 0, 0),     // dup in batch
                Assign(MakeSample("s2", "ann", 1, "zz"), 0, 0)});  // conflict
  EXPECT_EQ(result.accepted, 1);
  EXPECT_EQ(result.duplicates, 2);
  ASSERT_EQ(result.rejected.size(), 3u);
  EXPECT_EQ(result.rejected[0].first, "s1");
  EXPECT_THAT(result.rejected[0].second, HasSubstr("different content"));
  EXPECT_THAT(result.rejected[0].second, HasSubstr("owner"));
  EXPECT_THAT(result.rejected[0].second, HasSubstr("label"));
  EXPECT_THAT(result.rejected[1].second, HasSubstr("shard/slice"));
  EXPECT_EQ(result.rejected[2].first, "s2");
  EXPECT_THAT(result.rejected[2].second, HasSubstr("features"));

  // The stored content is the first version.
  EXPECT_EQ(GetRecord("s1").sample.owner, "ann");
  EXPECT_EQ(GetRecord("s2").sample.features, "abcd");
  auto count = store_->CountActiveSamples();
  ASSERT_TRUE(count.ok());
  EXPECT_EQ(*count, 2);
}

TEST_F(LineageStoreTest, IngestRejectsInvalidSamplesWithValidationMessage) {
  Sample no_features = MakeSample("empty", "ann", 1, "");
  Sample bad_floats = MakeSample("odd", "ann", 1, "abc");
  bad_floats.feature_type = FeatureType::kF32;
  IngestResult result = IngestOk(
      {Assign(MakeSample("", "ann"), 0, 0), Assign(MakeSample("x", ""), 0, 0),
       Assign(no_features, 0, 0), Assign(bad_floats, 0, 0),
       Assign(MakeSample("neg", "ann", -1), 0, 0),
       Assign(MakeSample("where", "ann"), -1, 0),
       Assign(MakeSample("ok", "ann"), 0, 0)});
  EXPECT_EQ(result.accepted, 1);
  ASSERT_EQ(result.rejected.size(), 6u);
  const std::vector<Sample> invalid = {
      MakeSample("", "ann"), MakeSample("x", ""), no_features, bad_floats,
      MakeSample("neg", "ann", -1)};
  for (size_t i = 0; i < invalid.size(); ++i) {
    EXPECT_EQ(result.rejected[i].second, ValidateSample(invalid[i]).message());
  }
  EXPECT_EQ(result.rejected[5].first, "where");
  EXPECT_THAT(result.rejected[5].second, HasSubstr("negative assignment"));
  auto stored = store_->GetSample("x");
  ASSERT_TRUE(stored.ok());
  EXPECT_FALSE(stored->has_value());
}

TEST_F(LineageStoreTest, ReadActiveSamplesReportsUnknownAndDeleted) {
  IngestOk({Assign(MakeSample("a", "ann"), 0, 0),
            Assign(MakeSample("b", "ann"), 0, 0)});
  ASSERT_TRUE(store_->RecordDeletion("d1", "rec", {"b"}).ok());
  EXPECT_EQ(store_->ReadActiveSamples({"a", "zz"}).status().code(),
            absl::StatusCode::kNotFound);
  auto deleted = store_->ReadActiveSamples({"a", "b"});
  EXPECT_EQ(deleted.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(deleted.status().message()), HasSubstr("'b'"));
}

TEST_F(LineageStoreTest, RecordDeletionDeactivatesSamplesAtomically) {
  IngestOk({Assign(MakeSample("a", "ann"), 0, 0),
            Assign(MakeSample("b", "ann"), 0, 1),
            Assign(MakeSample("c", "bob"), 0, 0)});
  ASSERT_TRUE(store_->RecordDeletion("d1", "first", {"a", "b", "a"}).ok());

  SampleRecord a = GetRecord("a");
  EXPECT_EQ(a.state, SampleState::kDeleted);
  EXPECT_EQ(a.deletion_id, "d1");
  EXPECT_EQ(a.sample.features, "abcd");  // payload stays until Purge
  auto owned = store_->OwnerSamples("ann");
  ASSERT_TRUE(owned.ok());
  EXPECT_THAT(*owned, IsEmpty());
  auto members = store_->SliceMembers({0, 0});
  ASSERT_TRUE(members.ok());
  EXPECT_THAT(*members, ElementsAre("c"));
  auto count = store_->CountActiveSamples();
  ASSERT_TRUE(count.ok());
  EXPECT_EQ(*count, 1);

  // A second deletion naming a deleted sample fails and changes nothing,
  // not even for the still-active sample it also names.
  absl::Status again = store_->RecordDeletion("d2", "second", {"c", "a"});
  EXPECT_EQ(again.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(again.message()), HasSubstr("d1"));
  EXPECT_EQ(GetRecord("c").state, SampleState::kActive);
  auto d2 = store_->GetDeletion("d2");
  ASSERT_TRUE(d2.ok());
  EXPECT_FALSE(d2->has_value());

  EXPECT_EQ(store_->RecordDeletion("d3", "r", {"c", "ghost"}).code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(GetRecord("c").state, SampleState::kActive);
  EXPECT_EQ(store_->RecordDeletion("d1", "dup", {}).code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(store_->RecordDeletion("", "r", {"c"}).code(),
            absl::StatusCode::kInvalidArgument);

  // Ids of deleted samples are never reused.
  IngestResult reuse = IngestOk({Assign(MakeSample("a", "ann"), 0, 0)});
  EXPECT_EQ(reuse.accepted, 0);
  EXPECT_THAT(reuse.rejected,
              ElementsAre(Pair("a",
                               "sample a was deleted by deletion d1; ids "
                               "are never reused")));
}

TEST_F(LineageStoreTest, DeletionLogUpdatesIteratesAndSurvivesReopen) {
  IngestOk({Assign(MakeSample("a", "ann"), 0, 0)});
  ASSERT_TRUE(store_->RecordDeletion("d2", "pending", {"a"}).ok());
  ASSERT_TRUE(store_->RecordDeletion("d1", "empty", {}).ok());
  ASSERT_TRUE(store_->UpdateDeletion("d2", "done").ok());
  EXPECT_EQ(store_->UpdateDeletion("d9", "x").code(),
            absl::StatusCode::kNotFound);
  Reopen();

  auto d2 = store_->GetDeletion("d2");
  ASSERT_TRUE(d2.ok());
  EXPECT_EQ(d2->value_or(""), "done");
  std::vector<std::pair<std::string, std::string>> seen;
  ASSERT_TRUE(store_
                  ->ForEachDeletion(
                      [&](absl::string_view id, absl::string_view record) {
                        seen.emplace_back(std::string(id), std::string(record));
                      })
                  .ok());
  EXPECT_THAT(seen, ElementsAre(Pair("d1", "empty"), Pair("d2", "done")));
  EXPECT_EQ(GetRecord("a").state, SampleState::kDeleted);
}

TEST_F(LineageStoreTest, PurgeLeavesTombstoneAndIsIdempotent) {
  IngestOk({Assign(MakeSample("a", "ann", 4), 2, 3),
            Assign(MakeSample("b", "ann"), 0, 0)});
  EXPECT_EQ(store_->Purge({"a"}).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store_->Purge({"ghost"}).code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(store_->RecordDeletion("d1", "r", {"a"}).ok());
  // All or nothing: the active id fails the call before "a" is touched.
  EXPECT_EQ(store_->Purge({"a", "b"}).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(GetRecord("a").state, SampleState::kDeleted);

  ASSERT_TRUE(store_->Purge({"a"}).ok());
  ASSERT_TRUE(store_->Purge({"a"}).ok());
  ASSERT_TRUE(store_->Purge({}).ok());
  SampleRecord a = GetRecord("a");
  EXPECT_EQ(a.state, SampleState::kPurged);
  EXPECT_EQ(a.deletion_id, "d1");
  EXPECT_EQ(a.where, (SliceRef{2, 3}));
  EXPECT_TRUE(a.sample.owner.empty());
  EXPECT_TRUE(a.sample.features.empty());
  EXPECT_EQ(GetRecord("b").state, SampleState::kActive);

  IngestResult reuse = IngestOk({Assign(MakeSample("a", "ann", 4), 2, 3)});
  ASSERT_EQ(reuse.rejected.size(), 1u);
  EXPECT_THAT(reuse.rejected[0].second, HasSubstr("deleted by deletion d1"));
}

// The property purge exists for: afterwards no file in the DB directory
// (SST, WAL, MANIFEST, OPTIONS, LOG) holds the deleted payload or owner,
// wherever the payload sat before.
TEST_F(LineageStoreTest, PurgeRemovesPayloadAndOwnerBytesFromEveryFile) {
  constexpr int kFillers = 300;
  const std::string payload_in_sst = RandomBytes(4096, 0xA11CE);
  const std::string payload_in_wal = RandomBytes(4096, 0xB0B);
  const std::string payload_late = RandomBytes(4096, 0xCAFE);
  // Sorts after the fillers' owners, so it becomes an SST boundary key of
  // the owner index and thus appears in the MANIFEST too.
  const std::string owner_in_sst = "zz-erased-subject-0001";
  const std::string owner_in_wal = "zz-erased-subject-0002";
  std::vector<Sample> fillers;
  for (int i = 0; i < kFillers; ++i) {
    fillers.push_back(MakeSample(absl::StrCat("filler-", i),
                                 absl::StrCat("owner-", i % 7), i % 10,
                                 RandomBytes(1024, i)));
  }
  auto ingest = [&](int begin, int end, std::vector<AssignedSample> extra) {
    for (int i = begin; i < end; ++i) {
      extra.push_back(Assign(fillers[i], i % 3, i % 2));
    }
    EXPECT_EQ(IngestOk(extra).accepted, static_cast<int64_t>(extra.size()));
  };

  // "target-sst" reaches an SST through WAL recovery at reopen; "target-wal"
  // exists only in the memtable and the live WAL.
  ingest(0, 150,
         {Assign(MakeSample("target-sst", owner_in_sst, 1, payload_in_sst), 0,
                 0)});
  Reopen();
  std::string where;
  ASSERT_TRUE(PayloadOnDisk(dir_, payload_in_sst, &where, ".sst"));
  ingest(150, 250,
         {Assign(MakeSample("target-wal", owner_in_wal, 2, payload_in_wal), 1,
                 1)});
  ASSERT_TRUE(PayloadOnDisk(dir_, payload_in_wal, &where, ".log"));
  ASSERT_TRUE(
      store_->RecordDeletion("del-1", "record", {"target-sst", "target-wal"})
          .ok());

  // The checks must be able to fail: everything is still on disk here.
  EXPECT_TRUE(PayloadOnDisk(dir_, payload_in_sst, &where));
  EXPECT_TRUE(PayloadOnDisk(dir_, payload_in_wal, &where));
  EXPECT_TRUE(AnyFileContains(dir_, owner_in_sst, &where));
  EXPECT_TRUE(AnyFileContains(dir_, owner_in_sst, &where, "MANIFEST-"))
      << "precondition: the owner should be an SST boundary key";

  ASSERT_TRUE(store_->Purge({"target-sst", "target-wal"}).ok());
  EXPECT_FALSE(PayloadOnDisk(dir_, payload_in_sst, &where)) << where;
  EXPECT_FALSE(PayloadOnDisk(dir_, payload_in_wal, &where)) << where;
  EXPECT_FALSE(AnyFileContains(dir_, owner_in_sst, &where)) << where;
  EXPECT_FALSE(AnyFileContains(dir_, owner_in_wal, &where)) << where;

  // A later sample lands in a fresh L0 file above the compacted data.
  ingest(
      250, kFillers,
      {Assign(MakeSample("target-late", "subject-3", 3, payload_late), 2, 0)});
  Reopen();
  ASSERT_TRUE(PayloadOnDisk(dir_, payload_late, &where, ".sst"));
  ASSERT_TRUE(store_->RecordDeletion("del-2", "record", {"target-late"}).ok());
  ASSERT_TRUE(store_->Purge({"target-late"}).ok());
  EXPECT_FALSE(PayloadOnDisk(dir_, payload_late, &where)) << where;

  // Nothing comes back after a restart, and everything else is intact.
  Reopen();
  for (const std::string* payload :
       {&payload_in_sst, &payload_in_wal, &payload_late}) {
    EXPECT_FALSE(PayloadOnDisk(dir_, *payload, &where)) << where;
  }
  std::vector<std::string> filler_ids;
  for (const Sample& filler : fillers) filler_ids.push_back(filler.id);
  auto survivors = store_->ReadActiveSamples(filler_ids);
  ASSERT_TRUE(survivors.ok()) << survivors.status();
  for (int i = 0; i < kFillers; ++i) {
    ExpectSameSample((*survivors)[i], fillers[i]);
  }
  auto count = store_->CountActiveSamples();
  ASSERT_TRUE(count.ok());
  EXPECT_EQ(*count, kFillers);
  auto owned = store_->OwnerSamples("owner-3");
  ASSERT_TRUE(owned.ok());
  EXPECT_EQ(owned->size(), static_cast<size_t>(kFillers / 7 + 1));
  EXPECT_EQ(GetRecord("target-sst").state, SampleState::kPurged);
  EXPECT_EQ(GetRecord("target-wal").deletion_id, "del-1");
}

TEST_F(LineageStoreTest, ConcurrentIngestOfOverlappingIdsAcceptsEachOnce) {
  constexpr int kThreads = 4;
  constexpr int kIds = 200;
  std::atomic<int64_t> accepted{0};
  std::atomic<int64_t> duplicates{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kIds; i += 10) {
        std::vector<AssignedSample> batch;
        for (int j = i; j < i + 10; ++j) {
          // Each thread walks the ids in a different rotation.
          const int id = (j + t * 50) % kIds;
          batch.push_back(
              Assign(MakeSample(absl::StrCat("id-", id), "ann"), 0, id % 4));
        }
        auto result = store_->Ingest(batch);
        ASSERT_TRUE(result.ok()) << result.status();
        EXPECT_THAT(result->rejected, IsEmpty());
        accepted += result->accepted;
        duplicates += result->duplicates;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(accepted.load(), kIds);
  EXPECT_EQ(duplicates.load(), kIds * (kThreads - 1));
  auto count = store_->CountActiveSamples();
  ASSERT_TRUE(count.ok());
  EXPECT_EQ(*count, kIds);
}

TEST_F(LineageStoreTest, DiskBytesCountsDatabaseFiles) {
  auto before = store_->DiskBytes();
  ASSERT_TRUE(before.ok()) << before.status();
  EXPECT_GT(*before, 0);
  IngestOk(
      {Assign(MakeSample("big", "ann", 1, RandomBytes(1 << 16, 1)), 0, 0)});
  auto after = store_->DiskBytes();
  ASSERT_TRUE(after.ok());
  EXPECT_GE(*after, *before + (1 << 16));
}

}  // namespace
}  // namespace oubli::storage
