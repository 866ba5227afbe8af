#include "storage/erasure_code.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <climits>
#include <cstdint>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "tests/testing/test_util.h"

namespace oubli::storage {
namespace {

using ::testing::HasSubstr;

using testing_util::RandomBytes;

std::string ToString(absl::string_view view) {
  return std::string(view.data(), view.size());
}

// All subsets of {0..n-1} with at most `max_size` elements, as index lists.
std::vector<std::vector<int>> SubsetsUpTo(int n, int max_size) {
  std::vector<std::vector<int>> subsets;
  for (uint32_t mask = 0; mask < (1u << n); ++mask) {
    if (__builtin_popcount(mask) > max_size) continue;
    std::vector<int> subset;
    for (int i = 0; i < n; ++i) {
      if (mask & (1u << i)) subset.push_back(i);
    }
    subsets.push_back(subset);
  }
  return subsets;
}

std::vector<std::optional<ChunkView>> WithErasures(
    const EncodedBlob& encoded, const std::vector<int>& erased) {
  std::vector<std::optional<ChunkView>> views = encoded.Views();
  for (int index : erased) views[index].reset();
  return views;
}

std::string PatternName(const std::vector<int>& erased) {
  std::string name = "{";
  for (int index : erased) absl::StrAppendFormat(&name, "%d,", index);
  return name + "}";
}

TEST(Crc32cTest, MatchesStandardCheckValueAndChains) {
  EXPECT_EQ(Crc32c("123456789"), 0xE3069283u);
  EXPECT_EQ(Crc32c(""), 0u);
  const std::string data = RandomBytes(10000, 1);
  const absl::string_view view(data);
  EXPECT_EQ(Crc32c(view.substr(4321), Crc32c(view.substr(0, 4321))),
            Crc32c(view));
}

TEST(DefaultCodeForTest, FollowsPlacementRule) {
  EXPECT_EQ(DefaultCodeFor(0), std::make_pair(1, 0));
  EXPECT_EQ(DefaultCodeFor(1), std::make_pair(1, 0));
  EXPECT_EQ(DefaultCodeFor(2), std::make_pair(1, 1));
  EXPECT_EQ(DefaultCodeFor(3), std::make_pair(1, 1));
  EXPECT_EQ(DefaultCodeFor(4), std::make_pair(2, 2));
  EXPECT_EQ(DefaultCodeFor(5), std::make_pair(3, 2));
  EXPECT_EQ(DefaultCodeFor(6), std::make_pair(4, 2));
  EXPECT_EQ(DefaultCodeFor(100), std::make_pair(4, 2));
  for (int workers = 1; workers <= 20; ++workers) {
    auto [k, m] = DefaultCodeFor(workers);
    EXPECT_LE(k + m, workers) << "one chunk per worker";
    EXPECT_TRUE(ReedSolomonCode::Create(k, m).ok());
  }
}

TEST(ReedSolomonCodeTest, RejectsInvalidParameters) {
  for (auto [k, m] : std::vector<std::pair<int, int>>{
           {0, 0}, {0, 2}, {-1, 1}, {4, -1}, {200, 56}, {255, 1}, {256, 0},
           // As a corrupt manifest may claim: k + m does not fit an int.
           {INT_MAX, 1}, {1, INT_MAX}}) {
    auto code = ReedSolomonCode::Create(k, m);
    EXPECT_EQ(code.status().code(), absl::StatusCode::kInvalidArgument)
        << k << "," << m;
  }
  EXPECT_TRUE(ReedSolomonCode::Create(1, 0).ok());
  EXPECT_TRUE(ReedSolomonCode::Create(254, 1).ok());
  EXPECT_TRUE(ReedSolomonCode::Create(1, 254).ok());
}

TEST(ReedSolomonCodeTest, ChunkSizeIsPaddedToMultipleOf64) {
  auto code = ReedSolomonCode::Create(4, 2);
  ASSERT_TRUE(code.ok());
  EXPECT_EQ(code->ChunkSizeFor(0), 0u);
  EXPECT_EQ(code->ChunkSizeFor(1), 64u);
  EXPECT_EQ(code->ChunkSizeFor(256), 64u);
  EXPECT_EQ(code->ChunkSizeFor(257), 128u);
  EXPECT_EQ(code->ChunkSizeFor(4 * 1000), 1024u);
  EXPECT_EQ(PaddedChunkSize(4, 257), 128u);
  EXPECT_EQ(PaddedChunkSize(1, UINT64_MAX - 63), UINT64_MAX - 63);
  // No chunk size fits: none, rather than one wrapped around to 0.
  EXPECT_EQ(PaddedChunkSize(1, UINT64_MAX), std::nullopt);
  EXPECT_EQ(PaddedChunkSize(4, UINT64_MAX), 0x4000000000000000u);
}

TEST(ReedSolomonCodeTest, EncodingIsSystematicAlignedAndCrcStamped) {
  auto code = ReedSolomonCode::Create(4, 2);
  ASSERT_TRUE(code.ok());
  const std::string blob = RandomBytes(300001, 7);
  auto encoded = code->EncodeBlob(blob);
  ASSERT_TRUE(encoded.ok()) << encoded.status();
  const BlobLayout& layout = encoded->layout;
  EXPECT_EQ(layout.data_chunks, 4);
  EXPECT_EQ(layout.parity_chunks, 2);
  EXPECT_EQ(layout.original_size, blob.size());
  EXPECT_EQ(layout.chunk_size % 64, 0u);
  EXPECT_GE(layout.chunk_size * 4, blob.size());
  ASSERT_EQ(encoded->chunks.size(), 6u);

  std::string concatenated;
  for (int i = 0; i < 6; ++i) {
    const Chunk& chunk = encoded->chunks[i];
    EXPECT_EQ(chunk.index, i);
    EXPECT_EQ(chunk.bytes.size(), layout.chunk_size);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(chunk.bytes.data()) % 64, 0u);
    EXPECT_EQ(chunk.crc32c, Crc32c(chunk.bytes.view()));
    EXPECT_EQ(layout.chunk_crc32c[i], chunk.crc32c);
    if (i < 4) concatenated.append(ToString(chunk.bytes.view()));
  }
  // Data chunks are the blob itself followed by zero padding.
  EXPECT_EQ(concatenated.substr(0, blob.size()), blob);
  EXPECT_EQ(concatenated.substr(blob.size()),
            std::string(concatenated.size() - blob.size(), '\0'));
}

struct CodeParams {
  int k;
  int m;
};

class EveryLossPatternTest : public ::testing::TestWithParam<CodeParams> {};

TEST_P(EveryLossPatternTest, RoundTripsAllSizes) {
  const auto [k, m] = GetParam();
  auto code = ReedSolomonCode::Create(k, m);
  ASSERT_TRUE(code.ok());
  // Edge sizes around 64-byte boundaries, odd sizes, and sizes spanning
  // several 64 KiB stripes per chunk (up to ~1 MiB total).
  const std::vector<size_t> sizes = {0,
                                     1,
                                     63,
                                     64,
                                     65,
                                     127,
                                     1000,
                                     4097,
                                     size_t{64} * 1024 * k + 3,
                                     300001,
                                     1048576 - 13,
                                     1048576 + 17};
  const auto patterns = SubsetsUpTo(k + m, m);
  for (size_t size : sizes) {
    const std::string blob = RandomBytes(size, size * 31 + k);
    auto encoded = code->EncodeBlob(blob);
    ASSERT_TRUE(encoded.ok()) << encoded.status();
    for (const auto& erased : patterns) {
      auto decoded =
          code->DecodeBlob(encoded->layout, WithErasures(*encoded, erased));
      ASSERT_TRUE(decoded.ok())
          << "size " << size << " lost " << PatternName(erased) << ": "
          << decoded.status();
      ASSERT_EQ(*decoded, blob)
          << "size " << size << " lost " << PatternName(erased);
    }
  }
}

TEST_P(EveryLossPatternTest, BorrowingEncodeGivesTheSameChunks) {
  const auto [k, m] = GetParam();
  auto code = ReedSolomonCode::Create(k, m);
  ASSERT_TRUE(code.ok());
  BorrowedEncodedBlob borrowed;  // reused across sizes, as Protect might
  for (size_t size :
       {size_t{0}, size_t{1}, size_t{64} * k, size_t{64} * 1024 * k + 3,
        size_t{300001}, size_t{1048576} * k}) {
    const std::string blob = RandomBytes(size, size * 7 + k);
    auto owned = code->EncodeBlob(blob);
    ASSERT_TRUE(owned.ok()) << owned.status();
    ASSERT_TRUE(code->EncodeBlobBorrowing(blob, &borrowed).ok());
    EXPECT_EQ(borrowed.layout.chunk_size, owned->layout.chunk_size);
    EXPECT_EQ(borrowed.layout.chunk_crc32c, owned->layout.chunk_crc32c);
    ASSERT_EQ(borrowed.chunks.size(), static_cast<size_t>(k + m));
    for (int i = 0; i < k + m; ++i) {
      EXPECT_EQ(borrowed.chunks[i], owned->chunks[i].bytes.view())
          << "size " << size << " chunk " << i;
    }
    // Whole data chunks are the blob itself, not copies.
    if (size >= size_t{64} * k && size % (size_t{64} * k) == 0) {
      EXPECT_EQ(borrowed.chunks[0].data(), blob.data());
    }
    auto decoded = code->DecodeBlob(borrowed.layout, borrowed.Views());
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_EQ(*decoded, blob);
  }
}

TEST_P(EveryLossPatternTest, MoreThanMErasuresIsDataLoss) {
  const auto [k, m] = GetParam();
  auto code = ReedSolomonCode::Create(k, m);
  ASSERT_TRUE(code.ok());
  const std::string blob = RandomBytes(5000, 3);
  auto encoded = code->EncodeBlob(blob);
  ASSERT_TRUE(encoded.ok());
  std::vector<int> erased;
  for (int i = 0; i <= m; ++i) erased.push_back(2 * i % (k + m));
  auto decoded =
      code->DecodeBlob(encoded->layout, WithErasures(*encoded, erased));
  EXPECT_EQ(decoded.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(decoded.status().message(),
              HasSubstr(absl::StrFormat("need %d intact chunks but only %d of "
                                        "%d are usable (%d missing",
                                        k, k - 1, k + m, m + 1)));
}

TEST_P(EveryLossPatternTest, RepairRegeneratesEveryLossPattern) {
  const auto [k, m] = GetParam();
  auto code = ReedSolomonCode::Create(k, m);
  ASSERT_TRUE(code.ok());
  const std::string blob = RandomBytes(200003, 11);
  auto encoded = code->EncodeBlob(blob);
  ASSERT_TRUE(encoded.ok());
  for (const auto& lost : SubsetsUpTo(k + m, m)) {
    auto repaired =
        code->RepairChunks(encoded->layout, WithErasures(*encoded, lost), lost);
    ASSERT_TRUE(repaired.ok())
        << PatternName(lost) << ": " << repaired.status();
    ASSERT_EQ(repaired->size(), lost.size());
    for (size_t i = 0; i < lost.size(); ++i) {
      const Chunk& original = encoded->chunks[lost[i]];
      const Chunk& rebuilt = (*repaired)[i];
      EXPECT_EQ(rebuilt.index, lost[i]);
      EXPECT_EQ(rebuilt.crc32c, original.crc32c);
      ASSERT_EQ(rebuilt.bytes.view(), original.bytes.view())
          << "chunk " << lost[i] << " of pattern " << PatternName(lost);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Codes, EveryLossPatternTest,
                         ::testing::Values(CodeParams{4, 2}, CodeParams{6, 3}),
                         [](const auto& info) {
                           return absl::StrFormat("RS_%d_%d", info.param.k,
                                                  info.param.m);
                         });

TEST(ReedSolomonCodeTest, CorruptChunksAreDetectedAndTreatedAsErasures) {
  auto code = ReedSolomonCode::Create(4, 2);
  ASSERT_TRUE(code.ok());
  const std::string blob = RandomBytes(700001, 5);
  auto encoded = code->EncodeBlob(blob);
  ASSERT_TRUE(encoded.ok());

  // Corrupt copies of the chunks; ChunkViews point into these strings.
  std::vector<std::string> stored;
  for (const Chunk& chunk : encoded->chunks) {
    stored.push_back(ToString(chunk.bytes.view()));
  }
  auto views_of = [&stored]() {
    std::vector<std::optional<ChunkView>> views;
    for (const std::string& s : stored) views.push_back(ChunkView{s});
    return views;
  };

  // One flipped byte deep inside a data chunk (not in the first stripe).
  stored[1][stored[1].size() - 5] ^= 0x40;
  auto decoded = code->DecodeBlob(encoded->layout, views_of());
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(*decoded, blob);

  // Repairing parity 5 first picks the corrupt chunk 1 as a survivor, finds
  // its CRC wrong and restarts from the other survivors.
  auto parity =
      code->RepairChunks(encoded->layout, views_of(), std::vector<int>{5});
  ASSERT_TRUE(parity.ok()) << parity.status();
  EXPECT_EQ((*parity)[0].bytes.view(), encoded->chunks[5].bytes.view());
  EXPECT_EQ((*parity)[0].crc32c, encoded->chunks[5].crc32c);

  // Plus a corrupt parity chunk: still m = 2 erasures in total.
  stored[4][0] ^= 0x01;
  decoded = code->DecodeBlob(encoded->layout, views_of());
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(*decoded, blob);

  // Repair of the corrupt chunks ignores them and rebuilds the originals.
  auto repaired =
      code->RepairChunks(encoded->layout, views_of(), std::vector<int>{1, 4});
  ASSERT_TRUE(repaired.ok()) << repaired.status();
  EXPECT_EQ((*repaired)[0].bytes.view(), encoded->chunks[1].bytes.view());
  EXPECT_EQ((*repaired)[1].bytes.view(), encoded->chunks[4].bytes.view());

  // A third bad chunk (corrupt) exceeds m.
  stored[0][100] ^= 0x01;
  decoded = code->DecodeBlob(encoded->layout, views_of());
  EXPECT_EQ(decoded.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(decoded.status().message(), HasSubstr("failed CRC32C"));
}

TEST(ReedSolomonCodeTest, RepairChecksRegeneratedCrcAgainstManifest) {
  auto code = ReedSolomonCode::Create(4, 2);
  ASSERT_TRUE(code.ok());
  auto encoded = code->EncodeBlob(RandomBytes(9999, 6));
  ASSERT_TRUE(encoded.ok());
  BlobLayout tampered = encoded->layout;
  tampered.chunk_crc32c[5] ^= 1;
  auto repaired = code->RepairChunks(tampered, WithErasures(*encoded, {5}),
                                     std::vector<int>{5});
  EXPECT_EQ(repaired.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(repaired.status().message(), HasSubstr("regenerated chunk 5"));
}

TEST(ReedSolomonCodeTest, WrongSizedChunkCountsAsErasure) {
  auto code = ReedSolomonCode::Create(4, 2);
  ASSERT_TRUE(code.ok());
  const std::string blob = RandomBytes(10000, 9);
  auto encoded = code->EncodeBlob(blob);
  ASSERT_TRUE(encoded.ok());
  auto views = encoded->Views();
  views[2] = ChunkView{views[2]->bytes.substr(0, 64)};  // truncated
  views[5].reset();
  auto decoded = code->DecodeBlob(encoded->layout, views);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(*decoded, blob);
  views[0].reset();
  decoded = code->DecodeBlob(encoded->layout, views);
  EXPECT_EQ(decoded.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(decoded.status().message(), HasSubstr("1 wrong size"));
}

TEST(ReedSolomonCodeTest, MirrorAndNoParityCodes) {
  auto mirror = ReedSolomonCode::Create(1, 1);
  ASSERT_TRUE(mirror.ok());
  const std::string blob = RandomBytes(12345, 2);
  auto encoded = mirror->EncodeBlob(blob);
  ASSERT_TRUE(encoded.ok());
  // RS(1,1) parity is a plain copy.
  EXPECT_EQ(encoded->chunks[0].bytes.view(), encoded->chunks[1].bytes.view());
  for (int lost = 0; lost < 2; ++lost) {
    auto decoded =
        mirror->DecodeBlob(encoded->layout, WithErasures(*encoded, {lost}));
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_EQ(*decoded, blob);
  }
  EXPECT_EQ(mirror->DecodeBlob(encoded->layout, WithErasures(*encoded, {0, 1}))
                .status()
                .code(),
            absl::StatusCode::kDataLoss);

  auto single = ReedSolomonCode::Create(1, 0);
  ASSERT_TRUE(single.ok());
  encoded = single->EncodeBlob(blob);
  ASSERT_TRUE(encoded.ok());
  ASSERT_EQ(encoded->chunks.size(), 1u);
  auto decoded = single->DecodeBlob(encoded->layout, encoded->Views());
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(*decoded, blob);
  EXPECT_EQ(single->DecodeBlob(encoded->layout, WithErasures(*encoded, {0}))
                .status()
                .code(),
            absl::StatusCode::kDataLoss);
}

TEST(ReedSolomonCodeTest, WideCodeNearFieldLimit) {
  auto code = ReedSolomonCode::Create(200, 55);
  ASSERT_TRUE(code.ok());
  const std::string blob = RandomBytes(200 * 64 * 3 - 7, 4);
  auto encoded = code->EncodeBlob(blob);
  ASSERT_TRUE(encoded.ok());
  std::vector<int> erased;
  for (int i = 0; i < 55; ++i) erased.push_back(i * 4);  // data and parity
  auto decoded =
      code->DecodeBlob(encoded->layout, WithErasures(*encoded, erased));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(*decoded, blob);
}

TEST(ReedSolomonCodeTest, EmptyBlobUsesZeroSizedChunks) {
  auto code = ReedSolomonCode::Create(4, 2);
  ASSERT_TRUE(code.ok());
  auto encoded = code->EncodeBlob("");
  ASSERT_TRUE(encoded.ok());
  EXPECT_EQ(encoded->layout.chunk_size, 0u);
  for (const Chunk& chunk : encoded->chunks) EXPECT_TRUE(chunk.bytes.empty());
  auto decoded =
      code->DecodeBlob(encoded->layout, WithErasures(*encoded, {0, 3}));
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(*decoded, "");
  auto repaired = code->RepairChunks(
      encoded->layout, WithErasures(*encoded, {0, 5}), std::vector<int>{0, 5});
  ASSERT_TRUE(repaired.ok()) << repaired.status();
  EXPECT_EQ(repaired->size(), 2u);
}

TEST(ReedSolomonCodeTest, RejectsMismatchedLayoutsAndRepairIndices) {
  auto code = ReedSolomonCode::Create(4, 2);
  auto other = ReedSolomonCode::Create(6, 3);
  ASSERT_TRUE(code.ok());
  ASSERT_TRUE(other.ok());
  const std::string blob = RandomBytes(1000, 8);
  auto encoded = code->EncodeBlob(blob);
  ASSERT_TRUE(encoded.ok());
  EXPECT_EQ(
      other->DecodeBlob(encoded->layout, encoded->Views()).status().code(),
      absl::StatusCode::kInvalidArgument);
  auto short_views = encoded->Views();
  short_views.pop_back();
  EXPECT_EQ(code->DecodeBlob(encoded->layout, short_views).status().code(),
            absl::StatusCode::kInvalidArgument);
  BlobLayout bad_size = encoded->layout;
  bad_size.chunk_size += 64;
  EXPECT_EQ(code->DecodeBlob(bad_size, encoded->Views()).status().code(),
            absl::StatusCode::kInvalidArgument);
  // A blob of 2^64 - 1 bytes, whose chunk size a sum past 2^64 would have
  // made 0.
  BlobLayout huge = encoded->layout;
  huge.original_size = UINT64_MAX;
  huge.chunk_size = 0;
  EXPECT_EQ(code->DecodeBlob(huge, encoded->Views()).status().code(),
            absl::StatusCode::kInvalidArgument);
  for (const std::vector<int>& lost :
       {std::vector<int>{6}, std::vector<int>{-1}, std::vector<int>{2, 2}}) {
    EXPECT_EQ(code->RepairChunks(encoded->layout, encoded->Views(), lost)
                  .status()
                  .code(),
              absl::StatusCode::kInvalidArgument);
  }
  // More chunks to repair than the code can rebuild.
  EXPECT_EQ(code->RepairChunks(encoded->layout, encoded->Views(),
                               std::vector<int>{0, 1, 2})
                .status()
                .code(),
            absl::StatusCode::kDataLoss);
}

TEST(ReedSolomonCodeTest, EncodeBlobIntoReusesBuffers) {
  auto code = ReedSolomonCode::Create(6, 3);
  ASSERT_TRUE(code.ok());
  EncodedBlob reused;
  ASSERT_TRUE(code->EncodeBlobInto(RandomBytes(500000, 1), &reused).ok());
  const uint8_t* first_buffer = reused.chunks[0].bytes.data();
  const std::string second = RandomBytes(500000, 2);
  ASSERT_TRUE(code->EncodeBlobInto(second, &reused).ok());
  EXPECT_EQ(reused.chunks[0].bytes.data(), first_buffer);
  auto fresh = code->EncodeBlob(second);
  ASSERT_TRUE(fresh.ok());
  EXPECT_EQ(reused.layout.chunk_crc32c, fresh->layout.chunk_crc32c);
  for (int i = 0; i < 9; ++i) {
    EXPECT_EQ(reused.chunks[i].bytes.view(), fresh->chunks[i].bytes.view());
  }
  // A different size reallocates and still round-trips.
  const std::string third = RandomBytes(1234, 3);
  ASSERT_TRUE(code->EncodeBlobInto(third, &reused).ok());
  std::string decoded = "stale contents that must be replaced";
  ASSERT_TRUE(code->DecodeBlobInto(reused.layout,
                                   WithErasures(reused, {0, 4, 8}), &decoded)
                  .ok());
  EXPECT_EQ(decoded, third);
}

TEST(ReedSolomonCodeTest, StripeApiReconstructsParityAndData) {
  auto code = ReedSolomonCode::Create(4, 2);
  ASSERT_TRUE(code.ok());
  constexpr size_t kLen = 256;
  std::vector<AlignedBuffer> fragments;
  for (int i = 0; i < 6; ++i) fragments.emplace_back(kLen);
  for (int d = 0; d < 4; ++d) {
    const std::string bytes = RandomBytes(kLen, 100 + d);
    std::memcpy(fragments[d].data(), bytes.data(), kLen);
  }
  std::vector<const uint8_t*> data;
  for (int d = 0; d < 4; ++d) data.push_back(fragments[d].data());
  std::vector<uint8_t*> parity = {fragments[4].data(), fragments[5].data()};
  code->EncodeStripe(kLen, data, parity);

  // Rebuild data 1 and parity 5 from {0, 2, 3, 4}.
  AlignedBuffer out1(kLen), out5(kLen);
  std::vector<const uint8_t*> survivors = {
      fragments[0].data(), fragments[2].data(), fragments[3].data(),
      fragments[4].data()};
  std::vector<uint8_t*> outputs = {out1.data(), out5.data()};
  ASSERT_TRUE(code->ReconstructStripe(kLen, std::vector<int>{0, 2, 3, 4},
                                      survivors, std::vector<int>{1, 5},
                                      outputs)
                  .ok());
  EXPECT_EQ(out1.view(), fragments[1].view());
  EXPECT_EQ(out5.view(), fragments[5].view());
  // An output that is also a survivor is rejected.
  EXPECT_EQ(code->ReconstructStripe(kLen, std::vector<int>{0, 2, 3, 4},
                                    survivors, std::vector<int>{4},
                                    std::vector<uint8_t*>{out1.data()})
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ReedSolomonCodeTest, DecodePlanCacheIsReusedWithIdenticalResults) {
  auto code = ReedSolomonCode::Create(6, 3);
  ASSERT_TRUE(code.ok());
  const std::string blob = RandomBytes(400000, 12);
  auto encoded = code->EncodeBlob(blob);
  ASSERT_TRUE(encoded.ok());
  EXPECT_EQ(code->CachedDecodePlans(), 0u);

  // No data lost: a straight copy, no plan needed.
  ASSERT_TRUE(code->DecodeBlob(encoded->layout, encoded->Views()).ok());
  EXPECT_EQ(code->CachedDecodePlans(), 0u);

  const auto views = WithErasures(*encoded, {1, 4});
  auto first = code->DecodeBlob(encoded->layout, views);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(code->CachedDecodePlans(), 1u);
  auto second = code->DecodeBlob(encoded->layout, views);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(code->CachedDecodePlans(), 1u);
  EXPECT_EQ(*first, *second);
  EXPECT_EQ(*first, blob);

  ASSERT_TRUE(
      code->DecodeBlob(encoded->layout, WithErasures(*encoded, {0})).ok());
  EXPECT_EQ(code->CachedDecodePlans(), 2u);
}

TEST(ReedSolomonCodeTest, ConcurrentDecodesShareTheCacheSafely) {
  auto code = ReedSolomonCode::Create(6, 3);
  ASSERT_TRUE(code.ok());
  const std::string blob = RandomBytes(150001, 13);
  auto encoded = code->EncodeBlob(blob);
  ASSERT_TRUE(encoded.ok());
  const auto patterns = SubsetsUpTo(9, 3);

  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      // Each thread walks the patterns from a different starting point so
      // that threads race to build the same plans.
      for (size_t i = 0; i < patterns.size(); ++i) {
        const auto& erased = patterns[(i + t * 17) % patterns.size()];
        auto decoded =
            code->DecodeBlob(encoded->layout, WithErasures(*encoded, erased));
        if (!decoded.ok() || *decoded != blob) failures.fetch_add(1);
        auto repaired = code->RepairChunks(
            encoded->layout, WithErasures(*encoded, erased), erased);
        if (!repaired.ok()) {
          failures.fetch_add(1);
          continue;
        }
        for (size_t j = 0; j < erased.size(); ++j) {
          if ((*repaired)[j].bytes.view() !=
              encoded->chunks[erased[j]].bytes.view()) {
            failures.fetch_add(1);
          }
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_GT(code->CachedDecodePlans(), 0u);
}

}  // namespace
}  // namespace oubli::storage
