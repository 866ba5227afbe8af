// One position's slices as the engine named them when it chose the
// position: each slice's SliceDigest and, once known, the digest of its
// encoding (what workers cache slices by). Their bytes are read only when
// someone needs them: a worker that lacks them, or local training once it
// has a slot. So a position whose slices a worker already holds reads
// nothing from the lineage store, and one waiting for a slot holds no
// slice bytes.
//
// One position's: not thread-safe (its runner calls it from one thread).
#ifndef OUBLI_COORDINATOR_PREFIX_SLICES_H_
#define OUBLI_COORDINATOR_PREFIX_SLICES_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "storage/encoded_slice.h"

namespace oubli::coordinator {

class PrefixSlices {
 public:
  struct Slice {
    int slice = 0;
    std::string ids_digest;  // SliceDigest when the position was chosen
    // Of its encoding then; empty when not known (not read since its ids
    // changed).
    std::string encoded_digest;
  };
  // The bytes of `slice` as they are now. Aborted: its members are no
  // longer those of slice.ids_digest.
  using ReadOne =
      std::function<absl::StatusOr<std::shared_ptr<const storage::EncodedSlice>>(
          const Slice& slice)>;

  PrefixSlices() = default;  // no slices
  PrefixSlices(std::vector<Slice> slices, ReadOne read);

  // The digests of the slices' encodings, in prefix order. A slice whose
  // encoding was not known is read now (and kept for Read: a worker is
  // about to ask for it). Aborted: a slice changed since the position was
  // chosen; other errors as ReadOne.
  absl::StatusOr<std::vector<std::string>> Digests();

  // The slices of these encoding digests (some of Digests()), in that
  // order: those kept, else read. Aborted: a slice changed since the
  // position was chosen (also when it now encodes to another digest);
  // NotFound: a digest not of this position; other errors as ReadOne.
  absl::StatusOr<std::vector<std::shared_ptr<const storage::EncodedSlice>>>
  Read(absl::Span<const std::string> digests);

  // Every slice, in prefix order; errors as Read.
  absl::StatusOr<std::vector<std::shared_ptr<const storage::EncodedSlice>>>
  ReadAll();

  // Lets go of the slices kept (the position no longer needs them).
  void Release();

 private:
  absl::StatusOr<std::shared_ptr<const storage::EncodedSlice>> ReadChecked(
      Slice& slice);
  // slices_[i]'s bytes: those kept, else read.
  absl::StatusOr<std::shared_ptr<const storage::EncodedSlice>> KeptOrRead(
      size_t i);

  std::vector<Slice> slices_;
  ReadOne read_;
  // By index into slices_: read by Digests, not yet released.
  std::vector<std::shared_ptr<const storage::EncodedSlice>> kept_;
};

}  // namespace oubli::coordinator

#endif  // OUBLI_COORDINATOR_PREFIX_SLICES_H_
