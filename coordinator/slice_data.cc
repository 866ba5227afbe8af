#include "coordinator/slice_data.h"

#include <openssl/crypto.h>
#include <torch/torch.h>

#include <algorithm>
#include <exception>
#include <iterator>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "coordinator/sharding_plan.h"
#include "worker/ml/s3t_trainer.h"

namespace oubli::coordinator {
namespace {

// The samples `ids` of `where`, read and encoded; `ids` are the slice's
// active members as the caller read them.
absl::StatusOr<std::shared_ptr<const storage::EncodedSlice>> EncodeMembers(
    storage::LineageStore& store, SliceRef where,
    absl::Span<const std::string> ids, int64_t input_size) {
  OUBLI_ASSIGN_OR_RETURN(std::vector<Sample> samples,
                         store.ReadActiveSamples(ids));
  absl::StatusOr<std::shared_ptr<const storage::EncodedSlice>> encoded =
      input_size == 0 ? storage::EncodedSlice::FromTokenSamples(samples)
                      : storage::EncodedSlice::FromSamples(samples, input_size);
  ScrubSamples(samples);
  if (absl::IsResourceExhausted(encoded.status())) return encoded.status();
  if (!encoded.ok()) {
    return absl::DataLossError(absl::StrCat(
        "stored slice (", where.shard, ", ", where.slice,
        ") does not fit the model: ", encoded.status().message()));
  }
  return encoded;
}

}  // namespace

int64_t EncodedSampleBytes(const Sample& sample) {
  // Per row: the id's tag and length, a label, a token row's two lengths
  // (varints, at most 24 bytes together), then the features as stored.
  return static_cast<int64_t>(sample.id.size() + sample.features.size()) + 24;
}

int64_t EncodedSampleMinBytes(const Sample& sample) {
  return static_cast<int64_t>(sample.id.size() + sample.features.size());
}

absl::StatusOr<LoadedSlice> LoadSlice(storage::LineageStore& store,
                                      SliceRef where, int64_t input_size) {
  LoadedSlice loaded;
  OUBLI_ASSIGN_OR_RETURN(loaded.data.ids, store.SliceMembers(where));
  OUBLI_ASSIGN_OR_RETURN(
      loaded.encoded, EncodeMembers(store, where, loaded.data.ids, input_size));
  loaded.data.digest = SliceDigest(loaded.data.ids);
  loaded.data.bytes = static_cast<int64_t>(loaded.encoded->bytes().size());
  return loaded;
}

absl::StatusOr<std::shared_ptr<const storage::EncodedSlice>> ReadSliceAsOf(
    storage::LineageStore& store, SliceRef where, int64_t input_size,
    const std::string& expected_digest) {
  auto stale = [&] {
    return absl::AbortedError(absl::StrCat(
        "slice (", where.shard, ", ", where.slice,
        ") changed while it was read (a deletion or ingest)"));
  };
  OUBLI_ASSIGN_OR_RETURN(std::vector<std::string> ids,
                         store.SliceMembers(where));
  if (SliceDigest(ids) != expected_digest) return stale();
  absl::StatusOr<std::shared_ptr<const storage::EncodedSlice>> encoded =
      EncodeMembers(store, where, ids, input_size);
  if (!encoded.ok()) {
    // A member deleted between the two reads is a race, not damage.
    absl::StatusOr<std::vector<std::string>> again = store.SliceMembers(where);
    if (again.ok() && SliceDigest(*again) != expected_digest) return stale();
  }
  return encoded;
}

SliceData EmptySlice() {
  SliceData slice;
  slice.digest = SliceDigest(slice.ids);
  return slice;
}

void ScrubSamples(std::vector<Sample>& samples) {
  for (Sample& s : samples) {
    if (!s.features.empty()) OPENSSL_cleanse(s.features.data(), s.features.size());
  }
}

void AddSamples(SliceData& slice, absl::Span<const Sample* const> added) {
  std::vector<std::string> ids;
  ids.reserve(added.size());
  for (const Sample* s : added) {
    ids.push_back(s->id);
    slice.bytes += EncodedSampleBytes(*s);
  }
  std::sort(ids.begin(), ids.end());
  std::vector<std::string> merged;
  merged.reserve(slice.ids.size() + ids.size());
  std::merge(std::make_move_iterator(slice.ids.begin()),
             std::make_move_iterator(slice.ids.end()),
             std::make_move_iterator(ids.begin()),
             std::make_move_iterator(ids.end()), std::back_inserter(merged));
  slice.ids = std::move(merged);
  slice.digest = SliceDigest(slice.ids);
}

absl::StatusOr<int64_t> RemoveSamples(
    SliceData& slice, const absl::flat_hash_set<std::string>& gone,
    int64_t gone_min_bytes) {
  std::vector<std::string> kept_ids;
  int64_t removed = 0;
  try {
    kept_ids.reserve(slice.ids.size());
    for (const std::string& id : slice.ids) {
      if (gone.contains(id)) {
        ++removed;
      } else {
        kept_ids.push_back(id);
      }
    }
  } catch (const std::exception& e) {
    return absl::ResourceExhaustedError(
        absl::StrCat("removing samples from a slice: ", e.what()));
  }
  if (removed == 0) return 0;
  slice.ids = std::move(kept_ids);
  slice.digest = SliceDigest(slice.ids);
  slice.bytes = std::max<int64_t>(0, slice.bytes - gone_min_bytes);
  return removed;
}

absl::StatusOr<std::string> TrainPrefixFromScratch(
    ml::S3tTrainer& trainer, int shard, absl::Span<const int> prefix,
    const std::vector<std::shared_ptr<const storage::EncodedSlice>>& slices) {
  std::string state_bytes;
  for (size_t p = 1; p <= prefix.size(); ++p) {
    std::vector<std::shared_ptr<const storage::EncodedSlice>> prefix_slices;
    for (size_t i = 0; i < p; ++i) prefix_slices.push_back(slices[prefix[i]]);
    OUBLI_ASSIGN_OR_RETURN(
        ml::PositionData data,
        ml::PositionDataFromSlices(prefix_slices, trainer.config().backbone));
    OUBLI_ASSIGN_OR_RETURN(state_bytes,
                           trainer.TrainPosition(shard, prefix.subspan(0, p),
                                                 state_bytes, data, nullptr));
  }
  return state_bytes;
}

}  // namespace oubli::coordinator
