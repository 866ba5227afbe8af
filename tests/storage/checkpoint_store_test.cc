#include "storage/checkpoint_store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "tests/testing/test_util.h"

namespace oubli::storage {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

namespace fs = std::filesystem;
using testing_util::FilesContaining;
using testing_util::RandomBytes;
using testing_util::ReadWholeFile;
using testing_util::WriteWholeFile;

class CheckpointStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = CheckpointStore::Open((dir_ / "ckpt").string());
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
  }

  // Declared before store_: removed after the store is closed.
  testing_util::ScopedTempDir temp_dir_;
  const fs::path dir_ = temp_dir_.path();
  std::unique_ptr<CheckpointStore> store_;
};

TEST_F(CheckpointStoreTest, PutGetRoundTrip) {
  const std::string bytes = RandomBytes(100000, 1);
  ASSERT_TRUE(store_->Put("00ff", bytes).ok());
  EXPECT_TRUE(store_->Contains("00ff"));
  auto read = store_->Get("00ff");
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, bytes);
  // Stored as a plain file named by the key.
  EXPECT_EQ(ReadWholeFile(dir_ / "ckpt" / "00ff"), bytes);
  EXPECT_EQ(store_->dir(), (dir_ / "ckpt").string());

  ASSERT_TRUE(store_->Put("0a", "").ok());
  auto empty = store_->Get("0a");
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(*empty, "");
}

TEST_F(CheckpointStoreTest, GetOfMissingKeyIsNotFound) {
  EXPECT_FALSE(store_->Contains("abc"));
  auto read = store_->Get("abc");
  EXPECT_EQ(read.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(read.status().message()), HasSubstr("abc"));
}

TEST_F(CheckpointStoreTest, PutIsIdempotentAndReplacesCorruptFiles) {
  ASSERT_TRUE(store_->Put("beef", "weights-v1").ok());
  ASSERT_TRUE(store_->Put("beef", "weights-v1").ok());
  auto list = store_->List();
  ASSERT_TRUE(list.ok());
  EXPECT_THAT(*list, ElementsAre("beef"));

  // A damaged file under the key is replaced by the new bytes.
  WriteWholeFile(dir_ / "ckpt" / "beef", "garbage");
  ASSERT_TRUE(store_->Put("beef", "weights-v1").ok());
  auto read = store_->Get("beef");
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(*read, "weights-v1");
  // No temp files are left behind.
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir_ / "ckpt")) {
    names.push_back(entry.path().filename().string());
  }
  EXPECT_THAT(names, ElementsAre("beef"));
}

TEST_F(CheckpointStoreTest, InvalidKeysAreRejected) {
  for (const std::string& key :
       {std::string(""), std::string("../x"), std::string("ABCD"),
        std::string("abc/def"), std::string("12g4"), std::string("a.tmp"),
        std::string(129, 'a'), std::string("ab\0cd", 5)}) {
    EXPECT_EQ(store_->Put(key, "x").code(), absl::StatusCode::kInvalidArgument)
        << key;
    EXPECT_EQ(store_->Get(key).status().code(),
              absl::StatusCode::kInvalidArgument)
        << key;
    EXPECT_EQ(store_->Destroy(key).code(), absl::StatusCode::kInvalidArgument)
        << key;
    EXPECT_FALSE(store_->Contains(key)) << key;
  }
  EXPECT_TRUE(store_->Put(std::string(128, 'f'), "x").ok());
  EXPECT_FALSE(fs::exists(dir_ / "x"));
}

TEST_F(CheckpointStoreTest, ListIsSortedAndTotalBytesSumsFiles) {
  ASSERT_TRUE(store_->Put("c0", std::string(30, 'c')).ok());
  ASSERT_TRUE(store_->Put("0a", std::string(10, 'a')).ok());
  ASSERT_TRUE(store_->Put("b1", std::string(20, 'b')).ok());
  // Files that are not checkpoints are not listed.
  WriteWholeFile(dir_ / "ckpt" / "README", "not a checkpoint");
  auto list = store_->List();
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_THAT(*list, ElementsAre("0a", "b1", "c0"));
  auto total = store_->TotalBytes();
  ASSERT_TRUE(total.ok()) << total.status();
  EXPECT_EQ(*total, 60);
}

TEST_F(CheckpointStoreTest, DestroyIsIdempotentAndLeavesNoBytesBehind) {
  const std::string secret = RandomBytes(3 << 20, 7);
  ASSERT_TRUE(store_->Put("dead", secret).ok());
  ASSERT_TRUE(store_->Put("f00d", "keep me").ok());
  // A hard link sees the same blocks; it shows the bytes were overwritten
  // in place rather than only unlinked.
  const fs::path witness = dir_ / "witness";
  fs::create_hard_link(dir_ / "ckpt" / "dead", witness);

  ASSERT_TRUE(store_->Destroy("dead").ok());
  ASSERT_TRUE(store_->Destroy("dead").ok());
  ASSERT_TRUE(store_->Destroy("0123").ok());  // never existed
  EXPECT_FALSE(store_->Contains("dead"));
  EXPECT_EQ(store_->Get("dead").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ReadWholeFile(witness), std::string(secret.size(), '\0'));

  const std::string needle = secret.substr(secret.size() / 2, 64);
  EXPECT_THAT(FilesContaining(dir_ / "ckpt", needle), IsEmpty());
  auto list = store_->List();
  ASSERT_TRUE(list.ok());
  EXPECT_THAT(*list, ElementsAre("f00d"));
  auto kept = store_->Get("f00d");
  ASSERT_TRUE(kept.ok());
  EXPECT_EQ(*kept, "keep me");
}

TEST_F(CheckpointStoreTest, OpenRemovesStaleTempFilesAndKeepsCheckpoints) {
  ASSERT_TRUE(store_->Put("aa", "complete").ok());
  const fs::path stale = dir_ / "ckpt" / "bb.tmp";
  WriteWholeFile(stale, "half-written checkpoint");
  const fs::path witness = dir_ / "stale-witness";
  fs::create_hard_link(stale, witness);
  store_.reset();

  auto reopened = CheckpointStore::Open((dir_ / "ckpt").string());
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  EXPECT_FALSE(fs::exists(stale));
  // Shredded, not just unlinked.
  EXPECT_EQ(ReadWholeFile(witness),
            std::string(std::string("half-written checkpoint").size(), '\0'));
  auto list = (*reopened)->List();
  ASSERT_TRUE(list.ok());
  EXPECT_THAT(*list, ElementsAre("aa"));
  auto read = (*reopened)->Get("aa");
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(*read, "complete");
}

TEST_F(CheckpointStoreTest, OpenCreatesNestedDirectoryAndRejectsEmptyPath) {
  auto nested = CheckpointStore::Open((dir_ / "a" / "b" / "c").string());
  ASSERT_TRUE(nested.ok()) << nested.status();
  EXPECT_TRUE(fs::is_directory(dir_ / "a" / "b" / "c"));
  auto list = (*nested)->List();
  ASSERT_TRUE(list.ok());
  EXPECT_THAT(*list, IsEmpty());
  EXPECT_EQ(CheckpointStore::Open("").status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace oubli::storage
