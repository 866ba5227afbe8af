#include "storage/datasets.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <system_error>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"

namespace oubli::storage {
namespace {

constexpr uint32_t kIdxImagesMagic = 0x00000803;  // unsigned byte, 3 dims
constexpr uint32_t kIdxLabelsMagic = 0x00000801;  // unsigned byte, 1 dim

// Reads a whole file. gzread passes non-gzip input through unchanged, so
// this serves both plain and ".gz" files.
absl::StatusOr<std::string> ReadMaybeGzipped(const std::string& path) {
  gzFile file = gzopen(path.c_str(), "rb");
  if (file == nullptr) {
    const int error = errno;
    std::string message =
        absl::StrCat("cannot open ", path, ": ",
                     error != 0 ? std::strerror(error) : "out of memory");
    if (error == ENOENT) return absl::NotFoundError(message);
    return absl::InvalidArgumentError(message);
  }
  std::string bytes;
  char buffer[1 << 16];
  while (true) {
    const int n = gzread(file, buffer, sizeof(buffer));
    if (n < 0) {
      int code = 0;
      std::string message =
          absl::StrCat("cannot read ", path, ": ", gzerror(file, &code));
      gzclose(file);
      return absl::DataLossError(message);
    }
    if (n == 0) break;
    bytes.append(buffer, static_cast<size_t>(n));
  }
  // A truncated gzip stream ends reads early with a pending error.
  int code = Z_OK;
  const char* error_text = gzerror(file, &code);
  if (code != Z_OK && code != Z_STREAM_END) {
    std::string message = absl::StrCat("cannot read ", path, ": ", error_text);
    gzclose(file);
    return absl::DataLossError(message);
  }
  gzclose(file);
  return bytes;
}

uint32_t ReadBigEndian32(absl::string_view bytes, size_t offset) {
  const auto* p = reinterpret_cast<const uint8_t*>(bytes.data() + offset);
  return (static_cast<uint32_t>(p[0]) << 24) |
         (static_cast<uint32_t>(p[1]) << 16) |
         (static_cast<uint32_t>(p[2]) << 8) | static_cast<uint32_t>(p[3]);
}

// A parsed IDX file of unsigned bytes: dims and the item payload.
struct IdxFile {
  std::vector<uint32_t> dims;
  std::string bytes;  // the whole file, header included
  size_t header_size = 0;

  // Item `index` (0-based) of `size` bytes.
  std::string Item(int64_t index, uint64_t size) const {
    return bytes.substr(header_size + static_cast<uint64_t>(index) * size,
                        size);
  }

  int64_t count() const { return dims[0]; }
  // Bytes per item (product of all dims but the first).
  uint64_t item_size() const {
    uint64_t size = 1;
    for (size_t i = 1; i < dims.size(); ++i) size *= dims[i];
    return size;
  }
};

// Parses and validates the bytes of an IDX file (named `path` in errors)
// with the given magic number.
absl::StatusOr<IdxFile> ParseIdxFile(std::string bytes, const std::string& path,
                                     uint32_t magic, absl::string_view kind) {
  const size_t num_dims = magic & 0xff;
  const size_t header_size = 4 + 4 * num_dims;
  // The magic number goes first: a wrong kind of file is the likelier
  // mistake, and says more than "too short".
  if (bytes.size() >= 4 && ReadBigEndian32(bytes, 0) != magic) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: magic number 0x%08x is not that of IDX %s (0x%08x)", path,
        ReadBigEndian32(bytes, 0), kind, magic));
  }
  if (bytes.size() < header_size) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: %d bytes is too short for an IDX %s header (%d bytes)", path,
        bytes.size(), kind, header_size));
  }
  IdxFile idx;
  idx.header_size = header_size;
  for (size_t i = 0; i < num_dims; ++i) {
    idx.dims.push_back(ReadBigEndian32(bytes, 4 + 4 * i));
    if (i > 0 && idx.dims.back() == 0) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s: dimension %d is zero", path, i));
    }
  }
  // Dims are 32-bit; guard the product against overflow before trusting it.
  uint64_t expected = idx.dims[0];
  for (size_t i = 1; i < num_dims; ++i) {
    if (expected != 0 &&
        idx.dims[i] > std::numeric_limits<uint64_t>::max() / expected) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s: dimensions overflow", path));
    }
    expected *= idx.dims[i];
  }
  const uint64_t actual = bytes.size() - header_size;
  if (actual != expected) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: header promises %d bytes of data, file has %d",
                        path, expected, actual));
  }
  idx.bytes = std::move(bytes);
  return idx;
}

// Zero-padded decimal index; width 5 (at least) keeps ids sortable for
// datasets up to 100k items.
std::string PaddedIndex(int64_t index, int64_t count) {
  int width = 5;
  for (int64_t max = count - 1; max >= 100000; max /= 10) ++width;
  return absl::StrFormat("%0*d", width, index);
}

// Little-endian float bytes, independent of host byte order.
void AppendFloat(float value, std::string* out) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  for (int shift = 0; shift < 32; shift += 8) {
    out->push_back(static_cast<char>((bits >> shift) & 0xff));
  }
}

absl::Status LineError(const std::string& path, int64_t line,
                       absl::string_view problem) {
  return absl::InvalidArgumentError(
      absl::StrCat(path, ":", line, ": ", problem));
}

bool IsCsvHeader(const std::vector<absl::string_view>& fields) {
  if (fields.empty()) return false;
  return absl::EqualsIgnoreCase(fields[0], "label") ||
         absl::EqualsIgnoreCase(fields[0], "id");
}

absl::Status CheckIdxOptions(const IdxOptions& options) {
  if (options.samples_per_owner <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "samples_per_owner must be positive, got ", options.samples_per_owner));
  }
  if (options.offset < 0 || options.limit < -1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "invalid range: offset ", options.offset, ", limit ", options.limit));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<Sample>> LoadIdx(const IdxOptions& options) {
  OUBLI_RETURN_IF_ERROR(CheckIdxOptions(options));
  OUBLI_ASSIGN_OR_RETURN(std::string images,
                         ReadMaybeGzipped(options.images_path));
  OUBLI_ASSIGN_OR_RETURN(std::string labels,
                         ReadMaybeGzipped(options.labels_path));
  return ParseIdx(std::move(images), std::move(labels), options);
}

absl::StatusOr<std::vector<Sample>> ParseIdx(std::string images_bytes,
                                             std::string labels_bytes,
                                             const IdxOptions& options) {
  OUBLI_RETURN_IF_ERROR(CheckIdxOptions(options));
  OUBLI_ASSIGN_OR_RETURN(
      IdxFile images, ParseIdxFile(std::move(images_bytes), options.images_path,
                                   kIdxImagesMagic, "images"));
  OUBLI_ASSIGN_OR_RETURN(
      IdxFile labels, ParseIdxFile(std::move(labels_bytes), options.labels_path,
                                   kIdxLabelsMagic, "labels"));
  if (images.count() != labels.count()) {
    return absl::InvalidArgumentError(absl::StrCat(
        options.images_path, " has ", images.count(), " images but ",
        options.labels_path, " has ", labels.count(), " labels"));
  }
  const int64_t count = images.count();
  if (options.offset > count) {
    return absl::OutOfRangeError(
        absl::StrCat("offset ", options.offset, " is past the ", count,
                     " samples in ", options.images_path));
  }
  int64_t end = count;
  if (options.limit >= 0) end = std::min(count, options.offset + options.limit);

  const uint64_t image_size = images.item_size();
  std::vector<Sample> samples;
  samples.reserve(static_cast<size_t>(end - options.offset));
  for (int64_t index = options.offset; index < end; ++index) {
    Sample sample;
    sample.id = absl::StrCat(options.id_prefix, PaddedIndex(index, count));
    sample.owner =
        absl::StrCat(options.owner_prefix, index / options.samples_per_owner);
    sample.label = static_cast<uint8_t>(labels.Item(index, 1)[0]);
    sample.feature_type = FeatureType::kU8;
    sample.features = images.Item(index, image_size);
    samples.push_back(std::move(sample));
  }
  return samples;
}

absl::StatusOr<std::vector<Sample>> LoadFashionMnist(const std::string& dir,
                                                     const std::string& split,
                                                     int64_t offset,
                                                     int64_t limit,
                                                     int samples_per_owner) {
  std::string file_prefix;
  if (split == "train") {
    file_prefix = "train";
  } else if (split == "test") {
    file_prefix = "t10k";
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "Fashion-MNIST split must be \"train\" or \"test\", got \"", split,
        "\""));
  }
  // Prefer the distributed .gz files; fall back to decompressed copies.
  auto path_for = [&](absl::string_view kind) {
    std::string gz =
        absl::StrCat(dir, "/", file_prefix, "-", kind, "-ubyte.gz");
    std::error_code error;
    if (std::filesystem::exists(gz, error)) return gz;
    std::string plain =
        absl::StrCat(dir, "/", file_prefix, "-", kind, "-ubyte");
    return std::filesystem::exists(plain, error) ? plain : gz;
  };
  IdxOptions options;
  options.images_path = path_for("images-idx3");
  options.labels_path = path_for("labels-idx1");
  options.id_prefix = absl::StrCat("fmnist-", split, "-");
  options.samples_per_owner = samples_per_owner;
  options.offset = offset;
  options.limit = limit;
  return LoadIdx(options);
}

absl::StatusOr<std::vector<Sample>> LoadCsv(const std::string& path,
                                            const std::string& id_prefix) {
  OUBLI_ASSIGN_OR_RETURN(std::string text, ReadMaybeGzipped(path));
  return ParseCsv(text, path, id_prefix);
}

absl::StatusOr<std::vector<Sample>> ParseCsv(absl::string_view text,
                                             const std::string& path,
                                             const std::string& id_prefix) {
  std::vector<Sample> samples;
  bool seen_first_row = false;
  bool has_id_column = false;
  int64_t expected_columns = -1;
  int64_t expected_columns_line = 0;
  std::map<std::string, int64_t, std::less<>> line_of_id;

  int64_t line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    line = absl::StripAsciiWhitespace(line);  // also drops a CRLF's '\r'
    if (line.empty()) continue;
    std::vector<absl::string_view> fields = absl::StrSplit(line, ',');
    for (absl::string_view& field : fields) {
      field = absl::StripAsciiWhitespace(field);
    }

    if (!seen_first_row) {
      seen_first_row = true;
      if (IsCsvHeader(fields)) {
        has_id_column = absl::EqualsIgnoreCase(fields[0], "id");
        const size_t label_column = has_id_column ? 1 : 0;
        if (fields.size() < label_column + 3 ||
            !absl::EqualsIgnoreCase(fields[label_column], "label") ||
            !absl::EqualsIgnoreCase(fields[label_column + 1], "owner")) {
          return LineError(path, line_number,
                           "header must be label,owner,f1..fn or "
                           "id,label,owner,f1..fn");
        }
        expected_columns = static_cast<int64_t>(fields.size());
        expected_columns_line = line_number;
        continue;
      }
    }

    const size_t label_column = has_id_column ? 1 : 0;
    const size_t first_feature = label_column + 2;
    if (fields.size() <= first_feature) {
      return LineError(path, line_number,
                       absl::StrCat("expected ", first_feature + 1,
                                    " or more columns, found ", fields.size()));
    }
    if (expected_columns < 0) {
      expected_columns = static_cast<int64_t>(fields.size());
      expected_columns_line = line_number;
    } else if (static_cast<int64_t>(fields.size()) != expected_columns) {
      return LineError(
          path, line_number,
          absl::StrCat("has ", fields.size(), " columns but line ",
                       expected_columns_line, " has ", expected_columns));
    }

    Sample sample;
    sample.id = has_id_column ? std::string(fields[0])
                              : absl::StrCat(id_prefix, line_number);
    int32_t label = 0;
    if (!absl::SimpleAtoi(fields[label_column], &label) || label < 0) {
      return LineError(path, line_number,
                       absl::StrCat("label '", fields[label_column],
                                    "' is not a non-negative integer"));
    }
    sample.label = label;
    sample.owner = std::string(fields[label_column + 1]);
    sample.feature_type = FeatureType::kF32;
    sample.features.reserve(4 * (fields.size() - first_feature));
    for (size_t column = first_feature; column < fields.size(); ++column) {
      float value = 0;
      if (!absl::SimpleAtof(fields[column], &value) || !std::isfinite(value)) {
        return LineError(
            path, line_number,
            absl::StrCat("column ", column + 1, " value '", fields[column],
                         "' is not a finite number"));
      }
      AppendFloat(value, &sample.features);
    }
    if (absl::Status valid = ValidateSample(sample); !valid.ok()) {
      return LineError(path, line_number, valid.message());
    }
    auto [it, inserted] = line_of_id.emplace(sample.id, line_number);
    if (!inserted) {
      return LineError(path, line_number,
                       absl::StrCat("id '", sample.id,
                                    "' is already used on line ", it->second));
    }
    samples.push_back(std::move(sample));
  }
  if (samples.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": no data rows"));
  }
  return samples;
}

}  // namespace oubli::storage
