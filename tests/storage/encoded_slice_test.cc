#include "storage/encoded_slice.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "common/hash.h"

namespace oubli::storage {
namespace {

Sample U8Sample(const std::string& id, int label, int width, char fill) {
  Sample s;
  s.id = id;
  s.owner = "o";
  s.label = label;
  s.features.assign(width, fill);
  return s;
}

Sample F32Sample(const std::string& id, int label, std::vector<float> values) {
  Sample s;
  s.id = id;
  s.label = label;
  s.feature_type = FeatureType::kF32;
  s.features.assign(reinterpret_cast<const char*>(values.data()),
                    values.size() * sizeof(float));
  return s;
}

TEST(EncodedSliceTest, KeepsUint8PixelsAndDecodesLikeTraining) {
  const std::vector<Sample> samples = {U8Sample("a", 1, 3, '\x7f'),
                                       U8Sample("b", 2, 3, '\xff')};
  auto slice = EncodedSlice::FromSamples(samples, 3);
  ASSERT_TRUE(slice.ok()) << slice.status();
  EXPECT_EQ((*slice)->rows(), 2);
  EXPECT_EQ((*slice)->digest(), Sha256Hex((*slice)->bytes()));
  const internal::SliceRows rows = (*slice)->Parse();
  EXPECT_EQ(rows.feature_type(), static_cast<int>(FeatureType::kU8));
  EXPECT_EQ(rows.features().size(), 6u);  // one byte per pixel
  for (int r = 0; r < 2; ++r) {
    float decoded[3], expected[3];
    DecodeRow(rows, r, decoded);
    DecodeFeatures(samples[r], expected);
    EXPECT_EQ(std::memcmp(decoded, expected, sizeof(decoded)), 0);
  }
}

TEST(EncodedSliceTest, MixedEncodingsTravelAsTheFloatsTrainingSees) {
  const std::vector<Sample> samples = {U8Sample("a", 0, 2, '\x33'),
                                       F32Sample("b", 1, {0.25f, -3.5f})};
  auto slice = EncodedSlice::FromSamples(samples, 2);
  ASSERT_TRUE(slice.ok()) << slice.status();
  const internal::SliceRows rows = (*slice)->Parse();
  EXPECT_EQ(rows.feature_type(), static_cast<int>(FeatureType::kF32));
  for (int r = 0; r < 2; ++r) {
    float decoded[2], expected[2];
    DecodeRow(rows, r, decoded);
    DecodeFeatures(samples[r], expected);
    EXPECT_EQ(std::memcmp(decoded, expected, sizeof(decoded)), 0) << r;
  }
}

TEST(EncodedSliceTest, RefusesRowsOutOfOrderOrOfTheWrongWidth) {
  EXPECT_EQ(EncodedSlice::FromSamples(
                {U8Sample("b", 0, 2, 'x'), U8Sample("a", 0, 2, 'x')}, 2)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(EncodedSlice::FromSamples(
                {U8Sample("a", 0, 2, 'x'), U8Sample("a", 0, 2, 'x')}, 2)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(EncodedSlice::FromSamples({U8Sample("a", 0, 3, 'x')}, 2)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(EncodedSlice::FromSamples({}, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(EncodedSliceTest, ReceivedBytesMustHashToTheirNameAndBeWellFormed) {
  auto slice = EncodedSlice::FromSamples(
      {U8Sample("a", 0, 4, '1'), U8Sample("b", 1, 4, '2')}, 4);
  ASSERT_TRUE(slice.ok());
  auto copy = EncodedSlice::FromBytes((*slice)->bytes(), (*slice)->digest());
  ASSERT_TRUE(copy.ok()) << copy.status();
  EXPECT_EQ((*copy)->rows(), 2);
  EXPECT_EQ((*copy)->bytes(), (*slice)->bytes());

  std::string flipped = (*slice)->bytes();
  flipped.back() ^= 1;
  EXPECT_EQ(EncodedSlice::FromBytes(flipped, (*slice)->digest()).status().code(),
            absl::StatusCode::kDataLoss);

  // Well hashed but not a slice: each malformation named.
  auto reject = [](const internal::SliceRows& rows) {
    std::string bytes;
    rows.SerializeToString(&bytes);
    const std::string digest = Sha256Hex(bytes);
    return EncodedSlice::FromBytes(bytes, digest).status().code();
  };
  internal::SliceRows good = (*slice)->Parse();
  internal::SliceRows rows = good;
  rows.mutable_features()->pop_back();
  EXPECT_EQ(reject(rows), absl::StatusCode::kInvalidArgument);
  rows = good;
  rows.add_labels(3);
  EXPECT_EQ(reject(rows), absl::StatusCode::kInvalidArgument);
  rows = good;
  rows.set_ids(1, "a");
  EXPECT_EQ(reject(rows), absl::StatusCode::kInvalidArgument);
  rows = good;
  rows.set_feature_type(7);
  EXPECT_EQ(reject(rows), absl::StatusCode::kInvalidArgument);
  rows = good;
  rows.set_features_per_row(0);
  EXPECT_EQ(reject(rows), absl::StatusCode::kInvalidArgument);
  rows = good;
  rows.set_features_per_row(int64_t{1} << 62);
  EXPECT_EQ(reject(rows), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(EncodedSlice::FromBytes("\xff\xff", Sha256Hex("\xff\xff"))
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(EncodedSliceTest, WithoutDropsExactlyTheGoneSamples) {
  auto slice = EncodedSlice::FromSamples(
      {U8Sample("a", 0, 2, '1'), U8Sample("b", 1, 2, '2'),
       U8Sample("c", 2, 2, '3')},
      2);
  ASSERT_TRUE(slice.ok());
  int64_t removed = -1;
  auto without = (*slice)->Without({"b", "zz"}, &removed);
  ASSERT_TRUE(without.ok()) << without.status();
  EXPECT_EQ(removed, 1);
  auto direct = EncodedSlice::FromSamples(
      {U8Sample("a", 0, 2, '1'), U8Sample("c", 2, 2, '3')}, 2);
  ASSERT_TRUE(direct.ok());
  // The same bytes as encoding the survivors directly: the same name.
  EXPECT_EQ((*without)->digest(), (*direct)->digest());
  EXPECT_EQ((*without)->bytes().find("22"), std::string::npos);
}

Sample TokenSample(const std::string& id, std::vector<uint32_t> tokens,
                   int prompt, int label = 0) {
  Sample s;
  s.id = id;
  s.label = label;
  s.features = EncodeTokens(tokens, &s.feature_type);
  s.prompt_tokens = prompt;
  return s;
}

TEST(TokenSliceTest, KeepsVariableRowsAndTheNarrowestIds) {
  const std::vector<Sample> samples = {TokenSample("a", {1, 2, 3}, 1, 4),
                                       TokenSample("b", {7}, 0),
                                       TokenSample("c", {9, 8, 7, 6, 5}, 5)};
  auto slice = EncodedSlice::FromTokenSamples(samples);
  ASSERT_TRUE(slice.ok()) << slice.status();
  EXPECT_TRUE((*slice)->holds_tokens());
  EXPECT_EQ((*slice)->rows(), 3);
  internal::SliceRows rows = (*slice)->Parse();
  EXPECT_EQ(rows.feature_type(), static_cast<int>(FeatureType::kTokensU16));
  EXPECT_EQ(rows.features().size(), 9u * 2);
  EXPECT_EQ(DecodeTokenRows(rows),
            (std::vector<std::vector<int32_t>>{{1, 2, 3}, {7}, {9, 8, 7, 6, 5}}));
  EXPECT_EQ(rows.prompt_tokens(0), 1);
  EXPECT_EQ(rows.prompt_tokens(2), 5);
  EXPECT_EQ(rows.labels(0), 4);
  // Rebuilt as samples (what a merge does), the same rows again.
  std::vector<Sample> back;
  AppendSamples(rows, &back);
  auto again = EncodedSlice::FromTokenSamples(back);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)->digest(), (*slice)->digest());
  // Received bytes are checked like feature slices.
  auto received = EncodedSlice::FromBytes((*slice)->bytes(), (*slice)->digest());
  ASSERT_TRUE(received.ok()) << received.status();
  EXPECT_TRUE((*received)->holds_tokens());
}

TEST(TokenSliceTest, OneWideIdWidensTheSlice) {
  auto slice = EncodedSlice::FromTokenSamples(
      {TokenSample("a", {1, 2}, 0), TokenSample("b", {70000}, 0)});
  ASSERT_TRUE(slice.ok()) << slice.status();
  internal::SliceRows rows = (*slice)->Parse();
  EXPECT_EQ(rows.feature_type(), static_cast<int>(FeatureType::kTokensU32));
  EXPECT_EQ(DecodeTokenRows(rows),
            (std::vector<std::vector<int32_t>>{{1, 2}, {70000}}));
}

TEST(TokenSliceTest, WithoutKeepsTheOtherRowsWhole) {
  auto slice = EncodedSlice::FromTokenSamples(
      {TokenSample("a", {1, 2, 3}, 1), TokenSample("b", {4, 5}, 2),
       TokenSample("c", {6}, 0)});
  ASSERT_TRUE(slice.ok());
  int64_t removed = 0;
  auto kept = (*slice)->Without({"b"}, &removed);
  ASSERT_TRUE(kept.ok()) << kept.status();
  EXPECT_EQ(removed, 1);
  auto expected = EncodedSlice::FromTokenSamples(
      {TokenSample("a", {1, 2, 3}, 1), TokenSample("c", {6}, 0)});
  EXPECT_EQ((*kept)->digest(), (*expected)->digest());
}

TEST(TokenSliceTest, RefusesFeaturesAmongTokensAndMalformedRows) {
  EXPECT_EQ(EncodedSlice::FromTokenSamples(
                {TokenSample("a", {1}, 0), U8Sample("b", 0, 4, 'x')})
                .status()
                .message(),
            "sample 'b' holds features; the model expects tokens");
  EXPECT_EQ(EncodedSlice::FromSamples({TokenSample("a", {1, 2, 3, 4}, 0)}, 4)
                .status()
                .message(),
            "sample 'a' holds tokens; the model expects features");
  EXPECT_FALSE(EncodedSlice::FromTokenSamples({TokenSample("a", {}, 0)}).ok());
  EXPECT_FALSE(
      EncodedSlice::FromTokenSamples({TokenSample("a", {1, 2}, 3)}).ok());
  // Bytes whose lengths do not add up are refused on arrival.
  internal::SliceRows rows =
      (*EncodedSlice::FromTokenSamples({TokenSample("a", {1, 2}, 0)}))->Parse();
  rows.set_row_tokens(0, 3);
  const std::string bytes = rows.SerializeAsString();
  auto received = EncodedSlice::FromBytes(bytes, Sha256Hex(bytes));
  EXPECT_EQ(received.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(received.status().message().find("hold 3 tokens, but 4 bytes"),
            std::string::npos)
      << received.status();
  rows.set_row_tokens(0, 2);
  rows.set_prompt_tokens(0, 3);
  const std::string bad_prompt = rows.SerializeAsString();
  EXPECT_FALSE(EncodedSlice::FromBytes(bad_prompt, Sha256Hex(bad_prompt)).ok());
}

TEST(EncodedSliceTest, EmptySliceHasNoRows) {
  auto empty = EncodedSlice::Empty(5);
  ASSERT_NE(empty, nullptr);
  EXPECT_EQ(empty->rows(), 0);
  EXPECT_EQ(empty->features_per_row(), 5);
  EXPECT_TRUE(EncodedSlice::FromBytes(empty->bytes(), empty->digest()).ok());
}

}  // namespace
}  // namespace oubli::storage
