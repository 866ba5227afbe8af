#include "storage/chunk_store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "storage/erasure_code.h"
#include "tests/testing/test_util.h"

namespace oubli::storage {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using testing_util::FilesContaining;
using testing_util::RandomBytes;

class ChunkStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = ChunkStore::Open((temp_dir_.path() / "chunks").string());
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
  }

  testing_util::ScopedTempDir temp_dir_;  // outlives store_
  std::unique_ptr<ChunkStore> store_;
};

TEST_F(ChunkStoreTest, PutGetListAndDestroyByCheckpoint) {
  const std::string a0 = RandomBytes(640, 1), a2 = RandomBytes(640, 2);
  const std::string b1 = RandomBytes(128, 3);
  ASSERT_TRUE(store_->Put("aa", 0, a0, Crc32c(a0)).ok());
  ASSERT_TRUE(store_->Put("aa", 2, a2, Crc32c(a2)).ok());
  ASSERT_TRUE(store_->Put("bb", 1, b1, Crc32c(b1)).ok());
  EXPECT_EQ(*store_->Get("aa", 2), a2);
  EXPECT_TRUE(absl::IsNotFound(store_->Get("aa", 1).status()));
  EXPECT_THAT(*store_->ListCheckpoints(), ElementsAre("aa", "bb"));

  absl::StatusOr<int> destroyed = store_->DestroyAll("aa");
  ASSERT_TRUE(destroyed.ok()) << destroyed.status();
  EXPECT_EQ(*destroyed, 2);
  EXPECT_THAT(*store_->ListCheckpoints(), ElementsAre("bb"));
  // Destroyed means gone from every file, not just unlinked from a name.
  EXPECT_THAT(FilesContaining(temp_dir_.path(), a0), IsEmpty());
  EXPECT_EQ(*store_->DestroyAll("aa"), 0);  // idempotent
  EXPECT_EQ(*store_->Get("bb", 1), b1);
}

TEST_F(ChunkStoreTest, RejectsCorruptChunksAndHostileNames) {
  const std::string data = RandomBytes(64, 4);
  EXPECT_TRUE(absl::IsDataLoss(store_->Put("aa", 0, data, Crc32c(data) ^ 1)));
  EXPECT_TRUE(absl::IsNotFound(store_->Get("aa", 0).status()));
  for (const char* key : {"", "../etc", "AA", "a/b"}) {
    EXPECT_TRUE(
        absl::IsInvalidArgument(store_->Put(key, 0, data, Crc32c(data))))
        << key;
  }
  EXPECT_TRUE(absl::IsInvalidArgument(
      store_->Put(std::string(127, 'a'), 0, data, Crc32c(data))));
  EXPECT_TRUE(absl::IsInvalidArgument(store_->Put("aa", -1, data, 0)));
  EXPECT_TRUE(absl::IsInvalidArgument(
      store_->Put("aa", ChunkStore::kMaxChunks, data, Crc32c(data))));
}

}  // namespace
}  // namespace oubli::storage
