#include "storage/datasets.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <zlib.h>

#include <cstring>
#include <filesystem>

#include "tests/testing/test_util.h"

namespace oubli::storage {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

namespace fs = std::filesystem;
using testing_util::ReadWholeFile;
using testing_util::WriteWholeFile;

void AppendBigEndian32(uint32_t value, std::string* out) {
  for (int shift = 24; shift >= 0; shift -= 8) {
    out->push_back(static_cast<char>((value >> shift) & 0xff));
  }
}

std::string IdxBytes(uint32_t magic, const std::vector<uint32_t>& dims,
                     const std::string& data) {
  std::string bytes;
  AppendBigEndian32(magic, &bytes);
  for (uint32_t dim : dims) AppendBigEndian32(dim, &bytes);
  return bytes + data;
}

// `count` images of rows x cols whose pixel j of image i is (i * 16 + j).
std::string ImagePixels(int count, int rows, int cols) {
  std::string pixels;
  for (int i = 0; i < count; ++i) {
    for (int j = 0; j < rows * cols; ++j) {
      pixels.push_back(static_cast<char>((i * 16 + j) & 0xff));
    }
  }
  return pixels;
}

std::string ImagesIdx(int count, int rows, int cols) {
  return IdxBytes(0x803,
                  {static_cast<uint32_t>(count), static_cast<uint32_t>(rows),
                   static_cast<uint32_t>(cols)},
                  ImagePixels(count, rows, cols));
}

std::string LabelsIdx(const std::string& labels) {
  return IdxBytes(0x801, {static_cast<uint32_t>(labels.size())}, labels);
}

void WriteGzip(const fs::path& path, const std::string& bytes) {
  gzFile file = gzopen(path.c_str(), "wb");
  ASSERT_NE(file, nullptr) << path;
  ASSERT_EQ(gzwrite(file, bytes.data(), static_cast<unsigned>(bytes.size())),
            static_cast<int>(bytes.size()));
  ASSERT_EQ(gzclose(file), Z_OK);
}

std::vector<float> Floats(const Sample& sample) {
  EXPECT_EQ(sample.feature_type, FeatureType::kF32);
  std::vector<float> values(sample.NumFeatures());
  DecodeFeatures(sample, values.data());
  return values;
}

std::vector<std::string> Ids(const std::vector<Sample>& samples) {
  std::vector<std::string> ids;
  for (const Sample& sample : samples) ids.push_back(sample.id);
  return ids;
}

class DatasetsTest : public ::testing::Test {
 protected:
  // Five 2x3 images labelled 3,1,4,1,5 in plain or gzipped files.
  IdxOptions WriteIdxPair(bool gzip) {
    IdxOptions options;
    const std::string suffix = gzip ? ".gz" : "";
    options.images_path = (dir_ / ("images" + suffix)).string();
    options.labels_path = (dir_ / ("labels" + suffix)).string();
    auto write = gzip ? WriteGzip : WriteWholeFile;
    write(options.images_path, ImagesIdx(5, 2, 3));
    write(options.labels_path, LabelsIdx("\3\1\4\1\5"));
    options.id_prefix = "img-";
    options.samples_per_owner = 2;
    return options;
  }

  absl::StatusOr<std::vector<Sample>> LoadCsvText(const std::string& text) {
    const fs::path path = dir_ / "data.csv";
    WriteWholeFile(path, text);
    return LoadCsv(path.string(), "row-");
  }

  testing_util::ScopedTempDir temp_dir_;
  const fs::path dir_ = temp_dir_.path();
};

TEST_F(DatasetsTest, LoadIdxReadsPlainAndGzippedFiles) {
  for (bool gzip : {false, true}) {
    auto samples = LoadIdx(WriteIdxPair(gzip));
    ASSERT_TRUE(samples.ok()) << samples.status();
    ASSERT_EQ(samples->size(), 5u);
    EXPECT_THAT(Ids(*samples),
                ElementsAre("img-00000", "img-00001", "img-00002", "img-00003",
                            "img-00004"));
    const Sample& third = (*samples)[2];
    EXPECT_EQ(third.label, 4);
    EXPECT_EQ(third.owner, "owner-1");  // index 2 / 2 samples per owner
    EXPECT_EQ(third.feature_type, FeatureType::kU8);
    EXPECT_EQ(third.features, std::string("\x20\x21\x22\x23\x24\x25"));
    EXPECT_EQ((*samples)[4].owner, "owner-2");
    EXPECT_TRUE(ValidateSample(third).ok());
  }
}

TEST_F(DatasetsTest, LoadIdxHonoursOffsetAndLimit) {
  IdxOptions options = WriteIdxPair(true);
  options.offset = 2;
  options.limit = 2;
  options.owner_prefix = "subject-";
  auto middle = LoadIdx(options);
  ASSERT_TRUE(middle.ok()) << middle.status();
  EXPECT_THAT(Ids(*middle), ElementsAre("img-00002", "img-00003"));
  // Ids and owners come from the absolute index, not the position.
  EXPECT_EQ((*middle)[0].owner, "subject-1");
  EXPECT_EQ((*middle)[0].features, std::string("\x20\x21\x22\x23\x24\x25"));

  options.limit = -1;
  auto rest = LoadIdx(options);
  ASSERT_TRUE(rest.ok());
  EXPECT_EQ(rest->size(), 3u);
  options.limit = 100;
  auto clipped = LoadIdx(options);
  ASSERT_TRUE(clipped.ok());
  EXPECT_EQ(clipped->size(), 3u);
  options.offset = 5;
  auto none = LoadIdx(options);
  ASSERT_TRUE(none.ok());
  EXPECT_THAT(*none, IsEmpty());
  options.offset = 6;
  EXPECT_EQ(LoadIdx(options).status().code(), absl::StatusCode::kOutOfRange);
  options.offset = -1;
  EXPECT_EQ(LoadIdx(options).status().code(),
            absl::StatusCode::kInvalidArgument);
  options.offset = 0;
  options.samples_per_owner = 0;
  EXPECT_EQ(LoadIdx(options).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(DatasetsTest, LoadIdxWidensIdPaddingForLargeFiles) {
  constexpr int kCount = 100001;
  IdxOptions options;
  options.images_path = (dir_ / "images").string();
  options.labels_path = (dir_ / "labels").string();
  WriteWholeFile(options.images_path,
                 IdxBytes(0x803, {kCount, 1, 1}, std::string(kCount, '\7')));
  WriteWholeFile(options.labels_path, LabelsIdx(std::string(kCount, '\2')));
  options.offset = kCount - 1;
  auto last = LoadIdx(options);
  ASSERT_TRUE(last.ok()) << last.status();
  EXPECT_THAT(Ids(*last), ElementsAre("100000"));
  options.offset = 7;
  options.limit = 1;
  auto early = LoadIdx(options);
  ASSERT_TRUE(early.ok());
  EXPECT_THAT(Ids(*early), ElementsAre("000007"));
}

TEST_F(DatasetsTest, LoadIdxRejectsMalformedFiles) {
  IdxOptions options = WriteIdxPair(false);
  struct Case {
    std::string name;
    std::string images;
    std::string labels;
    std::string expected;  // substring of the error message
  };
  const std::vector<Case> cases = {
      {"swapped magic", LabelsIdx("\1\2"), LabelsIdx("\1\2"), "magic"},
      {"labels magic", ImagesIdx(2, 2, 2), ImagesIdx(2, 2, 2), "magic"},
      {"truncated data", ImagesIdx(3, 2, 2).substr(0, 20), LabelsIdx("\1\2\3"),
       "promises 12 bytes"},
      {"trailing data", ImagesIdx(3, 2, 2) + "x", LabelsIdx("\1\2\3"),
       "file has 13"},
      {"short header", std::string("\0\0\x08\x03\0\0", 6), LabelsIdx("\1"),
       "too short"},
      {"zero rows", IdxBytes(0x803, {1, 0, 4}, ""), LabelsIdx("\1"),
       "dimension 1 is zero"},
      {"count mismatch", ImagesIdx(3, 2, 2), LabelsIdx("\1\2"),
       "has 3 images but"},
  };
  for (const Case& c : cases) {
    WriteWholeFile(options.images_path, c.images);
    WriteWholeFile(options.labels_path, c.labels);
    auto samples = LoadIdx(options);
    ASSERT_FALSE(samples.ok()) << c.name;
    EXPECT_EQ(samples.status().code(), absl::StatusCode::kInvalidArgument)
        << c.name;
    const std::string message(samples.status().message());
    EXPECT_THAT(message, HasSubstr(c.expected)) << c.name;
    // The message names the offending file.
    EXPECT_THAT(message, HasSubstr(dir_.string())) << c.name;
  }
}

TEST_F(DatasetsTest, LoadIdxReportsMissingAndCorruptGzipFiles) {
  IdxOptions options = WriteIdxPair(true);
  options.labels_path = (dir_ / "nope.gz").string();
  auto missing = LoadIdx(options);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.status().message()),
              HasSubstr(options.labels_path));

  // Cut a gzip stream short: zlib reports the early end.
  options = WriteIdxPair(true);
  const std::string gz = ReadWholeFile(options.images_path);
  WriteWholeFile(options.images_path, gz.substr(0, gz.size() - 12));
  auto truncated = LoadIdx(options);
  ASSERT_FALSE(truncated.ok());
  EXPECT_THAT(std::string(truncated.status().message()),
              HasSubstr(options.images_path));
}

TEST_F(DatasetsTest, LoadFashionMnistMapsSplitsToFiles) {
  WriteGzip(dir_ / "train-images-idx3-ubyte.gz", ImagesIdx(4, 2, 2));
  WriteGzip(dir_ / "train-labels-idx1-ubyte.gz", LabelsIdx("\1\2\3\4"));
  // The test split is present uncompressed only.
  WriteWholeFile(dir_ / "t10k-images-idx3-ubyte", ImagesIdx(2, 2, 2));
  WriteWholeFile(dir_ / "t10k-labels-idx1-ubyte", LabelsIdx("\7\10"));

  auto train = LoadFashionMnist(dir_.string(), "train", 1, 2, 1);
  ASSERT_TRUE(train.ok()) << train.status();
  EXPECT_THAT(Ids(*train),
              ElementsAre("fmnist-train-00001", "fmnist-train-00002"));
  EXPECT_EQ((*train)[0].label, 2);
  EXPECT_EQ((*train)[0].owner, "owner-1");
  auto test = LoadFashionMnist(dir_.string(), "test");
  ASSERT_TRUE(test.ok()) << test.status();
  EXPECT_THAT(Ids(*test),
              ElementsAre("fmnist-test-00000", "fmnist-test-00001"));
  EXPECT_EQ((*test)[1].label, 8);

  EXPECT_EQ(LoadFashionMnist(dir_.string(), "validation").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      LoadFashionMnist((dir_ / "empty").string(), "train").status().code(),
      absl::StatusCode::kNotFound);
}

TEST_F(DatasetsTest, LoadsAFewRealFashionMnistSamples) {
  if (!fs::exists(fs::path(kFashionMnistDir) / "t10k-labels-idx1-ubyte.gz")) {
    GTEST_SKIP() << "Fashion-MNIST not installed at " << kFashionMnistDir;
  }
  auto samples = LoadFashionMnist(kFashionMnistDir, "test", 0, 3);
  ASSERT_TRUE(samples.ok()) << samples.status();
  ASSERT_EQ(samples->size(), 3u);
  EXPECT_EQ((*samples)[0].id, "fmnist-test-00000");
  EXPECT_EQ((*samples)[0].features.size(), 28u * 28u);
  // First test labels: ankle boot, pullover, trouser.
  EXPECT_EQ((*samples)[0].label, 9);
  EXPECT_EQ((*samples)[1].label, 2);
  EXPECT_EQ((*samples)[2].label, 1);
}

TEST_F(DatasetsTest, LoadCsvWithoutHeaderUsesLineNumbers) {
  auto samples = LoadCsvText("1,alice,0.5,-2\n0 , bob ,1e3,  4.25 \n");
  ASSERT_TRUE(samples.ok()) << samples.status();
  ASSERT_EQ(samples->size(), 2u);
  EXPECT_EQ((*samples)[0].id, "row-1");
  EXPECT_EQ((*samples)[0].owner, "alice");
  EXPECT_EQ((*samples)[0].label, 1);
  EXPECT_THAT(Floats((*samples)[0]), ElementsAre(0.5f, -2.0f));
  EXPECT_EQ((*samples)[1].id, "row-2");
  EXPECT_EQ((*samples)[1].owner, "bob");
  EXPECT_THAT(Floats((*samples)[1]), ElementsAre(1000.0f, 4.25f));
  // Little-endian float bytes: 0.5f is 0x3f000000.
  EXPECT_EQ((*samples)[0].features.substr(0, 4), std::string("\0\0\0\x3f", 4));
}

TEST_F(DatasetsTest, LoadCsvWithHeaderCrlfAndBlankLines) {
  auto samples =
      LoadCsvText("label,owner,x,y\r\n\r\n2,carol,1,2\r\n3,dave,3,4\r\n\n");
  ASSERT_TRUE(samples.ok()) << samples.status();
  EXPECT_THAT(Ids(*samples), ElementsAre("row-3", "row-4"));
  EXPECT_THAT(Floats((*samples)[1]), ElementsAre(3.0f, 4.0f));
  EXPECT_EQ((*samples)[1].owner, "dave");
}

TEST_F(DatasetsTest, LoadCsvTakesIdsFromIdColumn) {
  auto samples =
      LoadCsvText("id,label,owner,f1\nq-1,0,erin,0.25\nq-2,9,erin,1\n");
  ASSERT_TRUE(samples.ok()) << samples.status();
  EXPECT_THAT(Ids(*samples), ElementsAre("q-1", "q-2"));
  EXPECT_EQ((*samples)[1].label, 9);
  EXPECT_THAT(Floats((*samples)[0]), ElementsAre(0.25f));
}

TEST_F(DatasetsTest, LoadCsvReadsGzippedFiles) {
  const fs::path path = dir_ / "data.csv.gz";
  WriteGzip(path, "label,owner,a\n4,frank,1.5\n");
  auto samples = LoadCsv(path.string(), "gz-");
  ASSERT_TRUE(samples.ok()) << samples.status();
  EXPECT_THAT(Ids(*samples), ElementsAre("gz-2"));
  EXPECT_THAT(Floats((*samples)[0]), ElementsAre(1.5f));
}

TEST_F(DatasetsTest, LoadCsvErrorsNameTheLine) {
  struct Case {
    std::string text;
    std::string expected;  // substring after "data.csv:"
  };
  const std::vector<Case> cases = {
      {"1,a,1,2\n1,b,1,2\n1,c,1\n", "3: has 3 columns but line 1 has 4"},
      {"label,owner,x\n1,a,1,2\n", "2: has 4 columns but line 1 has 3"},
      {"1,a,1\n1,b,abc\n", "2: column 3 value 'abc' is not a finite number"},
      {"1,a,nan\n", "1: column 3 value 'nan'"},
      {"1,a,1e99\n", "1: column 3 value '1e99'"},
      {"1,a,1\n-1,b,2\n", "2: label '-1' is not a non-negative integer"},
      {"1.5,a,1\n", "1: label '1.5'"},
      {"x,a,1\n", "1: label 'x'"},
      {"1,a\n", "1: expected 3 or more columns, found 2"},
      {"1,,1\n", "1: sample 'row-1': owner is empty"},
      {"label,x,y\n1,a,1\n", "1: header must be"},
      {"id,label,owner,f\na,1,o,1\na,2,o,2\n",
       "3: id 'a' is already used on line 2"},
  };
  for (const Case& c : cases) {
    auto samples = LoadCsvText(c.text);
    ASSERT_FALSE(samples.ok()) << c.text;
    EXPECT_EQ(samples.status().code(), absl::StatusCode::kInvalidArgument)
        << c.text;
    EXPECT_THAT(std::string(samples.status().message()),
                HasSubstr("data.csv:" + c.expected))
        << c.text;
  }
  EXPECT_THAT(std::string(LoadCsvText("label,owner,x\n").status().message()),
              HasSubstr("no data rows"));
  EXPECT_EQ(LoadCsv((dir_ / "absent.csv").string(), "p").status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace oubli::storage
