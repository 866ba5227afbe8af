#include "common/types.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace oubli {
namespace {

TEST(ValidateSampleIdTest, AcceptsUtf8RejectsGarbage) {
  EXPECT_TRUE(ValidateSampleId("sample-1").ok());
  EXPECT_TRUE(ValidateSampleId("\xc3\xa9t\xc3\xa9").ok());  // "été"
  EXPECT_FALSE(ValidateSampleId("").ok());
  EXPECT_FALSE(ValidateSampleId(std::string(257, 'a')).ok());
  EXPECT_FALSE(ValidateSampleId("bad\xff").ok());
  EXPECT_FALSE(ValidateSampleId("\xc3").ok());          // truncated
  EXPECT_FALSE(ValidateSampleId("\xc0\xaf").ok());      // overlong
  EXPECT_FALSE(ValidateSampleId("\xed\xa0\x80").ok());  // surrogate
  EXPECT_FALSE(ValidateSampleId(std::string("a\0b", 3)).ok());
  EXPECT_FALSE(ValidateSampleId("tab\there").ok());
}

TEST(CheckVocabularyTest, NamesTheFirstIdOutsideTheVocabulary) {
  const std::vector<int32_t> fits = {0, 5, 9};
  EXPECT_TRUE(CheckVocabulary(fits, 10).ok());
  EXPECT_TRUE(CheckVocabulary(std::vector<int32_t>{}, 10).ok());
  const absl::Status high = CheckVocabulary(std::vector<int32_t>{3, 10, 11}, 10);
  EXPECT_EQ(high.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(high.message(), "token 1 (id 10) is outside the vocabulary [0, 10)");
  // A uint32 id >= 2^31 arrives as a negative int32: shown as sent.
  EXPECT_EQ(CheckVocabulary(std::vector<int32_t>{-5}, 10).message(),
            "token 0 (id 4294967291) is outside the vocabulary [0, 10)");
  // int64 ids (a trainer's tensor) are shown as they are.
  const std::vector<int64_t> wide = {1, 2, -1};
  EXPECT_EQ(CheckVocabulary(wide, 10).message(),
            "token 2 (id -1) is outside the vocabulary [0, 10)");
  EXPECT_EQ(CheckVocabulary(std::vector<int64_t>{int64_t{1} << 40}, 10)
                .message(),
            "token 0 (id 1099511627776) is outside the vocabulary [0, 10)");
  EXPECT_TRUE(CheckVocabulary(std::vector<int64_t>{0, 9}, 10).ok());
}

TEST(Utf8SequenceLengthTest, MeasuresValidSequencesAndRejectsInvalidOnes) {
  EXPECT_EQ(Utf8SequenceLength("a", 0), 1u);
  EXPECT_EQ(Utf8SequenceLength(std::string("\0", 1), 0), 1u);
  EXPECT_EQ(Utf8SequenceLength("x\xc3\xa9", 1), 2u);         // U+00E9
  EXPECT_EQ(Utf8SequenceLength("\xe2\x82\xac", 0), 3u);      // U+20AC
  EXPECT_EQ(Utf8SequenceLength("\xf0\x9f\x98\x80", 0), 4u);  // U+1F600
  EXPECT_EQ(Utf8SequenceLength("\xf4\x8f\xbf\xbf", 0), 4u);  // U+10FFFF
  EXPECT_EQ(Utf8SequenceLength("\xff", 0), 0u);              // bad lead
  EXPECT_EQ(Utf8SequenceLength("\x80", 0), 0u);              // continuation
  EXPECT_EQ(Utf8SequenceLength("\xc3", 0), 0u);              // truncated
  EXPECT_EQ(Utf8SequenceLength("\xe2\x82", 0), 0u);          // truncated
  EXPECT_EQ(Utf8SequenceLength("\xc3\x28", 0), 0u);          // bad continuation
  EXPECT_EQ(Utf8SequenceLength("\xc0\xaf", 0), 0u);          // overlong
  EXPECT_EQ(Utf8SequenceLength("\xe0\x80\xaf", 0), 0u);      // overlong
  EXPECT_EQ(Utf8SequenceLength("\xed\xa0\x80", 0), 0u);      // surrogate
  EXPECT_EQ(Utf8SequenceLength("\xf4\x90\x80\x80", 0), 0u);  // > U+10FFFF
}

TEST(ValidateSampleTest, ChecksFeaturesAndLabel) {
  Sample s{"id", "owner", 1, FeatureType::kU8, "abc"};
  EXPECT_TRUE(ValidateSample(s).ok());
  s.features.clear();
  EXPECT_FALSE(ValidateSample(s).ok());
  s = Sample{"id", "owner", 1, FeatureType::kF32, "abc"};
  EXPECT_FALSE(ValidateSample(s).ok());  // not a multiple of 4
  s = Sample{"id", "owner", -1, FeatureType::kU8, "abc"};
  EXPECT_FALSE(ValidateSample(s).ok());
  // The deletion-risk hint is a probability.
  for (float risk : {0.0f, 0.25f, 1.0f}) {
    s = Sample{"id", "owner", 1, FeatureType::kU8, "abc", risk};
    EXPECT_TRUE(ValidateSample(s).ok()) << risk;
  }
  for (float risk : {-0.01f, 1.01f, std::nanf("")}) {
    s = Sample{"id", "owner", 1, FeatureType::kU8, "abc", risk};
    const absl::Status status = ValidateSample(s);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << risk;
    EXPECT_NE(status.message().find("deletion_risk"), std::string::npos);
  }
}

TEST(TokensTest, EncodeNarrowestAndDecodeBack) {
  FeatureType type;
  const std::string narrow = EncodeTokens({0, 1, 65535}, &type);
  EXPECT_EQ(type, FeatureType::kTokensU16);
  EXPECT_EQ(narrow.size(), 6u);
  EXPECT_EQ(DecodeTokens(type, narrow), (std::vector<int32_t>{0, 1, 65535}));
  const std::string wide = EncodeTokens({3, 65536}, &type);
  EXPECT_EQ(type, FeatureType::kTokensU32);
  EXPECT_EQ(DecodeTokens(type, wide), (std::vector<int32_t>{3, 65536}));
  Sample s;
  s.id = "t";
  s.owner = "o";
  s.features = wide;
  s.feature_type = type;
  EXPECT_EQ(s.NumFeatures(), 2);
}

TEST(TokensTest, ValidateSampleChecksTokenBytesAndPrompt) {
  Sample s;
  s.id = "t";
  s.owner = "o";
  s.features = EncodeTokens({5, 6, 7}, &s.feature_type);
  s.prompt_tokens = 3;
  EXPECT_TRUE(ValidateSample(s).ok()) << ValidateSample(s);
  s.prompt_tokens = 4;
  EXPECT_EQ(ValidateSample(s).message(),
            "sample 't' has prompt_tokens 4 outside [0, 3]");
  s.prompt_tokens = 0;
  s.features.push_back('x');
  EXPECT_EQ(ValidateSample(s).message(),
            "sample 't' has token bytes of 7 bytes, not a multiple of 2");
  s.feature_type = FeatureType::kTokensU32;
  s.features = std::string("\x00\x00\x00\x80", 4);  // 2^31
  EXPECT_EQ(ValidateSample(s).message(),
            "sample 't' has a token id of 2^31 or more");
  s.feature_type = FeatureType::kU8;
  s.features = "abcd";
  s.prompt_tokens = 1;
  EXPECT_EQ(ValidateSample(s).message(),
            "sample 't' has prompt_tokens but no tokens");
}

TEST(DecodeFeaturesTest, ScalesBytesAndCopiesFloats) {
  Sample u8{"id", "o", 0, FeatureType::kU8, std::string("\x00\xff", 2)};
  float out[2];
  DecodeFeatures(u8, out);
  EXPECT_EQ(out[0], 0.0f);
  EXPECT_EQ(out[1], 1.0f);
  const float values[2] = {1.5f, -2.0f};
  Sample f32{"id", "o", 0, FeatureType::kF32,
             std::string(reinterpret_cast<const char*>(values), 8)};
  DecodeFeatures(f32, out);
  EXPECT_EQ(out[0], 1.5f);
  EXPECT_EQ(out[1], -2.0f);
}

}  // namespace
}  // namespace oubli
