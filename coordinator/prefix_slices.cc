#include "coordinator/prefix_slices.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace oubli::coordinator {

PrefixSlices::PrefixSlices(std::vector<Slice> slices, ReadOne read)
    : slices_(std::move(slices)),
      read_(std::move(read)),
      kept_(slices_.size()) {}

absl::StatusOr<std::shared_ptr<const storage::EncodedSlice>>
PrefixSlices::ReadChecked(Slice& slice) {
  OUBLI_ASSIGN_OR_RETURN(std::shared_ptr<const storage::EncodedSlice> read,
                         read_(slice));
  // Same ids, other bytes: only a payload replaced under the same id
  // since the position was chosen, which bumped its generation.
  if (!slice.encoded_digest.empty() &&
      read->digest() != slice.encoded_digest) {
    return absl::AbortedError(absl::StrCat(
        "slice ", slice.slice, " no longer encodes to the digest named"));
  }
  slice.encoded_digest = read->digest();
  return read;
}

absl::StatusOr<std::shared_ptr<const storage::EncodedSlice>>
PrefixSlices::KeptOrRead(size_t i) {
  if (kept_[i] != nullptr) return kept_[i];
  return ReadChecked(slices_[i]);
}

absl::StatusOr<std::vector<std::string>> PrefixSlices::Digests() {
  std::vector<std::string> digests;
  for (size_t i = 0; i < slices_.size(); ++i) {
    if (slices_[i].encoded_digest.empty()) {
      OUBLI_ASSIGN_OR_RETURN(kept_[i], ReadChecked(slices_[i]));
    }
    digests.push_back(slices_[i].encoded_digest);
  }
  return digests;
}

absl::StatusOr<std::vector<std::shared_ptr<const storage::EncodedSlice>>>
PrefixSlices::Read(absl::Span<const std::string> digests) {
  std::vector<std::shared_ptr<const storage::EncodedSlice>> out;
  for (const std::string& digest : digests) {
    size_t i = 0;
    while (i < slices_.size() && slices_[i].encoded_digest != digest) ++i;
    if (i == slices_.size() || digest.empty()) {
      return absl::NotFoundError(
          absl::StrCat("slice ", digest, " is not of this position"));
    }
    OUBLI_ASSIGN_OR_RETURN(out.emplace_back(), KeptOrRead(i));
  }
  return out;
}

absl::StatusOr<std::vector<std::shared_ptr<const storage::EncodedSlice>>>
PrefixSlices::ReadAll() {
  std::vector<std::shared_ptr<const storage::EncodedSlice>> out;
  for (size_t i = 0; i < slices_.size(); ++i) {
    OUBLI_ASSIGN_OR_RETURN(out.emplace_back(), KeptOrRead(i));
  }
  return out;
}

void PrefixSlices::Release() {
  for (auto& slice : kept_) slice.reset();
}

}  // namespace oubli::coordinator
