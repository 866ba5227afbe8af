#include "worker/ml/safetensors.h"

#include <ATen/CPUGeneratorImpl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>

#include "tests/testing/test_util.h"

namespace oubli::ml {
namespace {

using ::testing::HasSubstr;

// 8-byte LE length + header + data, for hand-written files.
std::string MakeFile(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  const uint64_t size = header.size();
  std::memcpy(out.data(), &size, 8);
  return out + header + data;
}

std::string HeaderOf(const std::string& file) {
  uint64_t size;
  std::memcpy(&size, file.data(), 8);
  return file.substr(8, size);
}

std::string BytesOf(const torch::Tensor& t) {
  torch::Tensor c = t.contiguous();
  return std::string(static_cast<const char*>(c.data_ptr()), c.nbytes());
}

NamedTensors AllDtypes() {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(3);
  torch::Tensor f32 = torch::empty({2, 3}).uniform_(-1, 1, gen);
  f32[0][0] = -0.0f;
  f32[0][1] = std::numeric_limits<float>::quiet_NaN();
  return {
      {"f32", f32},
      {"f64", torch::empty({4}, torch::kFloat64).uniform_(-1, 1, gen)},
      {"f16", torch::empty({3, 1}).uniform_(-1, 1, gen).to(torch::kFloat16)},
      {"bf16", torch::empty({5}).uniform_(-1, 1, gen).to(torch::kBFloat16)},
      {"i64", torch::tensor({int64_t{-5}, std::numeric_limits<int64_t>::max()})},
      {"i32", torch::arange(-3, 3, torch::kInt32).reshape({2, 3})},
      {"u8", torch::arange(250, 256, torch::kInt64).to(torch::kUInt8)},
      {"bool", torch::tensor({true, false, true})},
      {"scalar", torch::tensor(2.5)},
      {"empty", torch::zeros({0, 4})},
  };
}

void ExpectSameTensors(const NamedTensors& actual,
                       const NamedTensors& expected_unsorted) {
  NamedTensors expected = expected_unsorted;
  std::sort(expected.begin(), expected.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t i = 0; i < actual.size(); ++i) {
    EXPECT_EQ(actual[i].first, expected[i].first);
    EXPECT_EQ(actual[i].second.scalar_type(), expected[i].second.scalar_type())
        << actual[i].first;
    EXPECT_EQ(actual[i].second.sizes(), expected[i].second.sizes())
        << actual[i].first;
    EXPECT_EQ(BytesOf(actual[i].second), BytesOf(expected[i].second))
        << actual[i].first;
  }
}

TEST(SafetensorsTest, RoundTripsAllDtypesBitExactly) {
  const NamedTensors tensors = AllDtypes();
  auto bytes = SerializeSafetensors(tensors);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  auto parsed = ParseSafetensors(*bytes);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ExpectSameTensors(*parsed, tensors);
}

TEST(SafetensorsTest, ParsedTensorsOwnTheirMemory) {
  auto bytes = SerializeSafetensors({{"x", torch::ones({3})}});
  ASSERT_TRUE(bytes.ok());
  auto parsed = ParseSafetensors(*bytes);
  ASSERT_TRUE(parsed.ok());
  std::fill(bytes->begin(), bytes->end(), '\xff');
  EXPECT_TRUE(torch::equal((*parsed)[0].second, torch::ones({3})));
}

TEST(SafetensorsTest, NonContiguousInputIsWrittenInLogicalOrder) {
  torch::Tensor t = torch::arange(6, torch::kFloat32).reshape({2, 3}).t();
  auto parsed = ParseSafetensors(*SerializeSafetensors({{"t", t}}));
  ASSERT_TRUE(parsed.ok());
  EXPECT_TRUE(torch::equal((*parsed)[0].second, t));
}

TEST(SafetensorsTest, ExactCompactLayout) {
  NamedTensors tensors = {
      {"b", torch::tensor({1.0f, 2.0f})},
      {"a", torch::tensor({7}, torch::kInt32)},
  };
  auto bytes = SerializeSafetensors(tensors);
  ASSERT_TRUE(bytes.ok());
  const std::string json =
      "{\"a\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[0,4]},"
      "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}";
  const std::string header = HeaderOf(*bytes);
  EXPECT_EQ(header.size() % 8, 0u);
  EXPECT_EQ(header.substr(0, json.size()), json);
  EXPECT_EQ(header.substr(json.size()),
            std::string(header.size() - json.size(), ' '));
  EXPECT_LT(header.size() - json.size(), 8u);
  EXPECT_EQ(bytes->substr(8 + header.size()),
            BytesOf(tensors[1].second) + BytesOf(tensors[0].second));
}

TEST(SafetensorsTest, DeterministicBytesIndependentOfInputOrder) {
  NamedTensors tensors = AllDtypes();
  auto first = SerializeSafetensors(tensors);
  auto second = SerializeSafetensors(tensors);
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(*first, *second);
  std::mt19937 rng(5);
  for (int trial = 0; trial < 5; ++trial) {
    std::shuffle(tensors.begin(), tensors.end(), rng);
    EXPECT_EQ(*SerializeSafetensors(tensors), *first);
  }
  // Re-serializing parsed tensors reproduces the file.
  EXPECT_EQ(*SerializeSafetensors(*ParseSafetensors(*first)), *first);
}

TEST(SafetensorsTest, EmptyListRoundTrips) {
  auto bytes = SerializeSafetensors({});
  ASSERT_TRUE(bytes.ok());
  EXPECT_EQ(HeaderOf(*bytes), "{}      ");
  auto parsed = ParseSafetensors(*bytes);
  ASSERT_TRUE(parsed.ok());
  EXPECT_TRUE(parsed->empty());
}

TEST(SafetensorsTest, SerializeRejectsBadInput) {
  EXPECT_THAT(SerializeSafetensors({{"a", torch::ones({1})},
                                    {"a", torch::ones({1})}})
                  .status()
                  .message(),
              HasSubstr("duplicate tensor name 'a'"));
  EXPECT_FALSE(SerializeSafetensors({{"", torch::ones({1})}}).ok());
  EXPECT_FALSE(SerializeSafetensors({{"__metadata__", torch::ones({1})}}).ok());
  EXPECT_FALSE(SerializeSafetensors({{"x", torch::Tensor()}}).ok());
  EXPECT_THAT(
      SerializeSafetensors({{"c", torch::ones({1}, torch::kComplexFloat)}})
          .status()
          .message(),
      HasSubstr("unsupported dtype"));
  EXPECT_FALSE(SerializeSafetensors({{"bad\xff", torch::ones({1})}}).ok());
}

TEST(SafetensorsTest, NamesWithSpecialCharactersRoundTrip) {
  NamedTensors tensors = {{"quote\"back\\slash\nnew\x01 \xc3\xa9",
                           torch::ones({1})}};
  auto parsed = ParseSafetensors(*SerializeSafetensors(tensors));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ((*parsed)[0].first, tensors[0].first);
}

TEST(SafetensorsTest, ReadsHandWrittenFileWithMetadata) {
  // As PyTorch's exporter writes it: metadata first, unsorted names,
  // whitespace, escapes, and no padding.
  const std::string header =
      "{\"__metadata__\": {\"format\": \"pt\", \"note\": \"a\\u00e9\\n\"},\n"
      " \"w\\u0031\": {\"dtype\": \"F32\", \"shape\": [2], "
      "\"data_offsets\": [4, 12]},\n"
      " \"mask\": {\"data_offsets\": [0, 4], \"dtype\": \"U8\", "
      "\"shape\": [2, 2]}}";
  std::string data;
  data += std::string("\x01\x02\x03\x04", 4);
  const float values[2] = {1.5f, -2.0f};
  data.append(reinterpret_cast<const char*>(values), 8);
  auto parsed = ParseSafetensors(MakeFile(header, data));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_EQ(parsed->size(), 2u);
  EXPECT_EQ((*parsed)[0].first, "mask");
  EXPECT_TRUE(torch::equal((*parsed)[0].second,
                           torch::tensor({1, 2, 3, 4}, torch::kUInt8)
                               .reshape({2, 2})));
  EXPECT_EQ((*parsed)[1].first, "w1");
  EXPECT_TRUE(torch::equal((*parsed)[1].second, torch::tensor({1.5f, -2.0f})));
}

struct BadCase {
  std::string label;
  std::string file;
  std::string message;  // expected substring
};

std::vector<BadCase> BadCases() {
  const std::string f32x2 = std::string(8, '\0');
  auto one = [](const std::string& entry) { return "{" + entry + "}"; };
  std::string many_zeros = "0";
  for (int i = 0; i < (1 << 20); ++i) many_zeros += ",0";
  std::vector<BadCase> cases = {
      {"too short", std::string(5, '\0'), "shorter than the 8-byte"},
      {"header larger than file",
       std::string("\x40\x00\x00\x00\x00\x00\x00\x00{}", 10),
       "exceeds the 2 bytes"},
      {"huge header length", std::string(8, '\xff') + "{}", "header length"},
      {"not json", MakeFile("hello", ""), "malformed JSON"},
      {"not an object", MakeFile("[1,2]", ""), "must be a JSON object"},
      {"truncated json", MakeFile("{\"a\":{\"dtype\":\"F32\"", ""),
       "malformed JSON"},
      {"trailing garbage", MakeFile("{} x", ""), "trailing characters"},
      {"deep nesting",
       MakeFile("{\"__metadata__\":" + std::string(5000, '[') +
                    std::string(5000, ']') + "}",
                ""),
       "nesting too deep"},
      {"duplicate names",
       MakeFile("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,"
                "4]},\"a\":{\"dtype\":\"F32\",\"shape\":[1],"
                "\"data_offsets\":[4,8]}}",
                f32x2),
       "duplicate key \"a\""},
      {"unknown dtype",
       MakeFile(one("\"a\":{\"dtype\":\"I8\",\"shape\":[2],"
                    "\"data_offsets\":[0,2]}"),
                "\x01\x02"),
       "unsupported dtype 'I8'"},
      {"unknown field",
       MakeFile(one("\"a\":{\"dtype\":\"F32\",\"shape\":[2],"
                    "\"data_offsets\":[0,8],\"x\":1}"),
                f32x2),
       "unknown field 'x'"},
      {"missing field",
       MakeFile(one("\"a\":{\"dtype\":\"F32\",\"shape\":[2]}"), f32x2),
       "needs the fields"},
      {"negative dim",
       MakeFile(one("\"a\":{\"dtype\":\"F32\",\"shape\":[-2],"
                    "\"data_offsets\":[0,8]}"),
                f32x2),
       "non-negative integers, got '-2'"},
      {"fractional dim",
       MakeFile(one("\"a\":{\"dtype\":\"F32\",\"shape\":[2.0],"
                    "\"data_offsets\":[0,8]}"),
                f32x2),
       "non-negative integers"},
      {"dim overflowing u64",
       MakeFile(one("\"a\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999"
                    "9],\"data_offsets\":[0,8]}"),
                f32x2),
       "non-negative integers"},
      {"shape product overflow",
       MakeFile(one("\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,"
                    "4294967296],\"data_offsets\":[0,8]}"),
                f32x2),
       "is too large"},
      {"shape bytes mismatch",
       MakeFile(one("\"a\":{\"dtype\":\"F32\",\"shape\":[3],"
                    "\"data_offsets\":[0,8]}"),
                f32x2),
       "needs 12 bytes but data_offsets [0, 8] span 8"},
      {"offsets past end",
       MakeFile(one("\"a\":{\"dtype\":\"F32\",\"shape\":[4],"
                    "\"data_offsets\":[0,16]}"),
                f32x2),
       "exceed the data section of 8 bytes"},
      {"reversed offsets",
       MakeFile(one("\"a\":{\"dtype\":\"F32\",\"shape\":[0],"
                    "\"data_offsets\":[8,0]}"),
                f32x2),
       "reversed"},
      {"three offsets",
       MakeFile(one("\"a\":{\"dtype\":\"F32\",\"shape\":[2],"
                    "\"data_offsets\":[0,8,8]}"),
                f32x2),
       "must have 2 entries"},
      {"overlap",
       MakeFile("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,"
                "8]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],"
                "\"data_offsets\":[4,8]}}",
                f32x2),
       "overlaps tensor"},
      {"gap",
       MakeFile(one("\"a\":{\"dtype\":\"F32\",\"shape\":[1],"
                    "\"data_offsets\":[4,8]}"),
                f32x2),
       "data bytes [0, 4) belong to no tensor"},
      {"trailing data",
       MakeFile(one("\"a\":{\"dtype\":\"F32\",\"shape\":[1],"
                    "\"data_offsets\":[0,4]}"),
                f32x2),
       "data bytes [4, 8) belong to no tensor"},
      {"bad bool byte",
       MakeFile(one("\"a\":{\"dtype\":\"BOOL\",\"shape\":[2],"
                    "\"data_offsets\":[0,2]}"),
                std::string("\x01\x02", 2)),
       "BOOL data"},
      {"metadata not strings",
       MakeFile("{\"__metadata__\":{\"k\":1}}", ""), "must be a string"},
      {"lone surrogate",
       MakeFile("{\"__metadata__\":{\"k\":\"\\ud800\"}}", ""),
       "surrogate"},
      {"raw control char", MakeFile("{\"a\nb\":1}", ""), "control character"},
      {"invalid utf8", MakeFile("{\"\xc0\xaf\":1}", ""), "invalid UTF-8"},
      {"too many values", MakeFile("{\"a\":[" + many_zeros + "]}", ""),
       "more than 1048576 values"},
      {"tensor not an object", MakeFile("{\"a\":[1]}", ""),
       "must map to an object"},
  };
  return cases;
}

TEST(SafetensorsTest, RejectsMalformedFilesWithPreciseErrors) {
  for (const BadCase& c : BadCases()) {
    auto parsed = ParseSafetensors(c.file);
    ASSERT_FALSE(parsed.ok()) << c.label;
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument)
        << c.label;
    EXPECT_THAT(parsed.status().message(), HasSubstr(c.message))
        << c.label << ": " << parsed.status();
  }
}

// Random mutations of a valid file must never crash: either a clean error
// or tensors that serialize again.
TEST(SafetensorsTest, FuzzedMutationsNeverCrash) {
  const std::string valid = *SerializeSafetensors(AllDtypes());
  const size_t header_end = 8 + HeaderOf(valid).size();
  std::mt19937_64 rng(12345);
  int accepted = 0;
  for (int trial = 0; trial < 600; ++trial) {
    std::string file = valid;
    const int mutations = 1 + static_cast<int>(rng() % 4);
    for (int m = 0; m < mutations; ++m) {
      // Mostly hit the header, where parsing happens.
      const size_t limit = (rng() % 4 == 0) ? file.size() : header_end;
      if (file.empty() || limit == 0) break;
      const size_t pos = rng() % std::min(limit, file.size());
      switch (rng() % 5) {
        case 0:  // random byte
          file[pos] = static_cast<char>(rng());
          break;
        case 1:  // structural character
          file[pos] = "{}[]\":,0123456789-.eE\\ u"[rng() % 25];
          break;
        case 2:  // truncate
          file.resize(pos);
          break;
        case 3:  // delete a byte
          file.erase(pos, 1);
          break;
        case 4:  // duplicate a slice
          file.insert(pos, file.substr(pos, rng() % 16));
          break;
      }
    }
    auto parsed = ParseSafetensors(file);
    if (parsed.ok()) {
      ++accepted;
      EXPECT_TRUE(SerializeSafetensors(*parsed).ok());
    } else {
      EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
    }
  }
  // Data-only mutations stay valid, so some files must be accepted.
  EXPECT_GT(accepted, 0);
}

TEST(SafetensorsTest, FileRoundTripAndErrors) {
  const testing_util::ScopedTempDir temp_dir;
  const std::string path = (temp_dir.path() / "model.safetensors").string();
  const NamedTensors tensors = AllDtypes();
  ASSERT_TRUE(WriteSafetensorsFile(path, tensors).ok());
  auto read = ReadSafetensorsFile(path);
  ASSERT_TRUE(read.ok()) << read.status();
  ExpectSameTensors(*read, tensors);
  EXPECT_EQ(testing_util::ReadWholeFile(path), *SerializeSafetensors(tensors));

  EXPECT_EQ(ReadSafetensorsFile(path + ".missing").status().code(),
            absl::StatusCode::kNotFound);
  testing_util::WriteWholeFile(path, "garbage!");
  auto bad = ReadSafetensorsFile(path);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr(path));
  EXPECT_FALSE(
      WriteSafetensorsFile("/nonexistent-dir/x.safetensors", tensors).ok());
}

}  // namespace
}  // namespace oubli::ml
