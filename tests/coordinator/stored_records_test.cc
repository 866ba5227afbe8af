// Reading back what the coordinator stored: chunk manifests and deletion
// records. A corrupt value is DataLoss, never a crash or a layout the
// decoder later refuses (cases tests/fuzz found, and the ones around them).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <climits>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "coordinator/chunk_manifest.h"
#include "coordinator/deletion_record.h"
#include "oubli/internal/deletion.pb.h"
#include "oubli/internal/records.pb.h"
#include "storage/erasure_code.h"

namespace oubli::coordinator {
namespace {

using ::testing::HasSubstr;

// The manifest WorkerChunks::Protect writes for a 1000-byte checkpoint under
// RS(k, m).
internal::ChunkManifest Manifest(int k, int m) {
  auto code = storage::ReedSolomonCode::Create(k, m);
  EXPECT_TRUE(code.ok()) << code.status();
  const storage::BlobLayout layout = code->LayoutFor(1000);
  internal::ChunkManifest manifest;
  manifest.set_data_chunks(k);
  manifest.set_parity_chunks(m);
  manifest.set_original_size(layout.original_size);
  manifest.set_chunk_size(layout.chunk_size);
  for (int i = 0; i < k + m; ++i) {
    manifest.add_chunk_crc32c(0x1000 + i);
    manifest.add_holders("worker-" + std::to_string(i));
  }
  return manifest;
}

absl::StatusCode ParseCode(const internal::ChunkManifest& manifest) {
  internal::ChunkManifest parsed;
  return ParseChunkManifest("k", manifest.SerializeAsString(), &parsed)
      .status()
      .code();
}

TEST(ChunkManifestTest, TheEncodersLayoutReadsBack) {
  const internal::ChunkManifest manifest = Manifest(4, 2);
  internal::ChunkManifest parsed;
  auto layout = ParseChunkManifest("k", manifest.SerializeAsString(), &parsed);
  ASSERT_TRUE(layout.ok()) << layout.status();
  EXPECT_EQ(layout->data_chunks, 4);
  EXPECT_EQ(layout->parity_chunks, 2);
  EXPECT_EQ(layout->original_size, 1000u);
  EXPECT_EQ(layout->chunk_size, 256u);
  EXPECT_EQ(layout->chunk_crc32c.size(), 6u);
  EXPECT_EQ(parsed.holders(5), "worker-5");
}

TEST(ChunkManifestTest, CorruptManifestsAreDataLoss) {
  internal::ChunkManifest parsed;
  EXPECT_EQ(ParseChunkManifest("k", "\xff\xff", &parsed).status().code(),
            absl::StatusCode::kDataLoss);

  // Counts whose sum overflows an int, or that add up to a plausible total.
  internal::ChunkManifest huge_k = Manifest(1, 0);
  huge_k.set_data_chunks(INT_MAX);
  huge_k.set_parity_chunks(1);
  EXPECT_EQ(ParseCode(huge_k), absl::StatusCode::kDataLoss);
  internal::ChunkManifest negative_k = Manifest(1, 1);
  negative_k.set_data_chunks(-1);
  negative_k.set_parity_chunks(3);
  EXPECT_EQ(ParseCode(negative_k), absl::StatusCode::kDataLoss);

  internal::ChunkManifest missing_holder = Manifest(2, 1);
  missing_holder.mutable_holders()->RemoveLast();
  EXPECT_EQ(ParseCode(missing_holder), absl::StatusCode::kDataLoss);

  // A chunk size the encoder does not make: Restore would fetch chunks
  // DecodeBlob then refuses.
  internal::ChunkManifest wrong_size = Manifest(2, 1);
  wrong_size.set_chunk_size(wrong_size.chunk_size() + 1);
  EXPECT_EQ(ParseCode(wrong_size), absl::StatusCode::kDataLoss);
  // A blob of 2^64 - 1 bytes: no chunk size fits (0 wraps around).
  internal::ChunkManifest huge_blob = Manifest(1, 1);
  huge_blob.set_original_size(UINT64_MAX);
  huge_blob.set_chunk_size(0);
  internal::ChunkManifest ignored;
  const absl::Status status =
      ParseChunkManifest("k", huge_blob.SerializeAsString(), &ignored).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(status.message(), HasSubstr("chunk size"));
}

std::string RecordOf(const std::string& id, int64_t accepted_nanos = 1) {
  internal::DeletionRecord record;
  record.set_deletion_id(id);
  record.add_resolved_ids("s-1");
  record.set_accepted_unix_nanos(accepted_nanos);
  return record.SerializeAsString();
}

TEST(DeletionRecordTest, ARecordUnderItsOwnIdReadsBack) {
  const std::string id = DeletionIdFor(42);
  auto record = ParseDeletionRecord(id, RecordOf(id));
  ASSERT_TRUE(record.ok()) << record.status();
  EXPECT_EQ(record->resolved_ids(0), "s-1");
  EXPECT_EQ(DeletionSeqOf(id), 42);
  EXPECT_EQ(DeletionSeqOf("del-7"), 7);  // unpadded, as older tests write
}

TEST(DeletionRecordTest, CorruptRecordsAreDataLoss) {
  // Keys too short to hold the prefix once made reading the log throw.
  for (const std::string key : {"", "x", "del", "del-", "del- 7", "del-+7",
                                "del-7a", "del-99999999999999999999"}) {
    EXPECT_EQ(DeletionSeqOf(key), std::nullopt) << key;
    EXPECT_EQ(ParseDeletionRecord(key, RecordOf(key)).status().code(),
              absl::StatusCode::kDataLoss)
        << key;
  }
  const std::string id = DeletionIdFor(3);
  EXPECT_EQ(ParseDeletionRecord(id, "\xff\xff").status().code(),
            absl::StatusCode::kDataLoss);
  const absl::Status other =
      ParseDeletionRecord(id, RecordOf(DeletionIdFor(4))).status();
  EXPECT_EQ(other.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(other.message(), HasSubstr("names another deletion"));
  EXPECT_EQ(ParseDeletionRecord(id, RecordOf(id, 0)).status().code(),
            absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace oubli::coordinator
