// Loaders for training data: IDX (MNIST/Fashion-MNIST, optionally gzipped)
// and CSV. They produce Samples with stable ids; owners come from the file
// (CSV) or from a caller-chosen grouping (IDX has none).
#ifndef OUBLI_STORAGE_DATASETS_H_
#define OUBLI_STORAGE_DATASETS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/types.h"

namespace oubli::storage {

inline constexpr char kFashionMnistDir[] = "/usr/share/datasets/fashion-mnist";

struct IdxOptions {
  std::string images_path;  // idx3-ubyte, ".gz" decompressed transparently
  std::string labels_path;  // idx1-ubyte
  std::string id_prefix;    // ids are id_prefix + zero-padded index
  // Synthetic owners: owner = owner_prefix + (index / samples_per_owner).
  std::string owner_prefix = "owner-";
  int samples_per_owner = 20;
  int64_t offset = 0;   // first index to load
  int64_t limit = -1;   // max samples, -1 = all
};

// Samples are kU8 features of rows*cols bytes. Validates magic numbers,
// dimensions and that images and labels agree in count.
absl::StatusOr<std::vector<Sample>> LoadIdx(const IdxOptions& options);
// LoadIdx of file contents already read (decompressed); the paths in
// `options` only name them in errors. InvalidArgument: a wrong magic
// number, a short or inconsistent header, data not matching the header,
// image and label counts that differ; OutOfRange: offset past the end.
absl::StatusOr<std::vector<Sample>> ParseIdx(std::string images_bytes,
                                             std::string labels_bytes,
                                             const IdxOptions& options);

// "train" or "test" split of Fashion-MNIST under `dir` with ids
// "fmnist-<split>-NNNNN".
absl::StatusOr<std::vector<Sample>> LoadFashionMnist(
    const std::string& dir, const std::string& split, int64_t offset = 0,
    int64_t limit = -1, int samples_per_owner = 20);

// CSV rows: label,owner,f1,...,fn  (floats; optional header line starting
// with "label"). Ids are id_prefix + line number unless a column "id" is
// named in the header as the first column: id,label,owner,f1..fn. All rows
// must have the same feature count. Errors name the line.
absl::StatusOr<std::vector<Sample>> LoadCsv(const std::string& path,
                                            const std::string& id_prefix);
// LoadCsv of text already read; `path` names it in errors ("PATH:LINE:").
absl::StatusOr<std::vector<Sample>> ParseCsv(absl::string_view text,
                                             const std::string& path,
                                             const std::string& id_prefix);

}  // namespace oubli::storage

#endif  // OUBLI_STORAGE_DATASETS_H_
