#include "coordinator/slice_data.h"

#include <torch/torch.h>

#include <algorithm>
#include <exception>
#include <iterator>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "coordinator/sharding_plan.h"
#include "worker/s3t_trainer.h"

namespace oubli::coordinator {

absl::StatusOr<SliceData> LoadSliceData(storage::LineageStore& store,
                                        SliceRef where, int64_t input_size) {
  SliceData data;
  OUBLI_ASSIGN_OR_RETURN(data.ids, store.SliceMembers(where));
  OUBLI_ASSIGN_OR_RETURN(std::vector<Sample> samples,
                         store.ReadActiveSamples(data.ids));
  absl::StatusOr<std::shared_ptr<const storage::EncodedSlice>> encoded =
      storage::EncodedSlice::FromSamples(samples, input_size);
  if (absl::IsResourceExhausted(encoded.status())) return encoded.status();
  if (!encoded.ok()) {
    return absl::DataLossError(absl::StrCat(
        "stored slice (", where.shard, ", ", where.slice,
        ") does not fit the model: ", encoded.status().message()));
  }
  data.encoded = *std::move(encoded);
  data.digest = SliceDigest(data.ids);
  return data;
}

SliceData EmptySlice(int64_t input_size) {
  SliceData slice;
  slice.encoded = storage::EncodedSlice::Empty(input_size);
  slice.digest = SliceDigest(slice.ids);
  return slice;
}

absl::StatusOr<std::shared_ptr<const storage::EncodedSlice>> Encoded(
    SliceData& slice) {
  if (!slice.removed.empty()) {
    OUBLI_ASSIGN_OR_RETURN(slice.encoded,
                           slice.encoded->Without(slice.removed, nullptr));
    slice.removed.clear();
  }
  if (slice.pending.empty()) return slice.encoded;
  const internal::SliceRows rows = slice.encoded->Parse();
  const auto type = static_cast<FeatureType>(rows.feature_type());
  const int64_t width = rows.features_per_row() * storage::FeatureWidth(type);
  std::vector<Sample> all;
  try {
    all.reserve(rows.ids_size() + slice.pending.size());
    for (int i = 0; i < rows.ids_size(); ++i) {
      Sample& s = all.emplace_back();
      s.id = rows.ids(i);
      s.label = rows.labels(i);
      s.feature_type = type;
      s.features = rows.features().substr(i * width, width);
    }
    all.insert(all.end(), slice.pending.begin(), slice.pending.end());
  } catch (const std::exception& e) {
    return absl::ResourceExhaustedError(
        absl::StrCat("merging ingested samples into a slice: ", e.what()));
  }
  std::sort(all.begin(), all.end(),
            [](const Sample& a, const Sample& b) { return a.id < b.id; });
  OUBLI_ASSIGN_OR_RETURN(
      slice.encoded,
      storage::EncodedSlice::FromSamples(all, slice.encoded->features_per_row()));
  slice.pending.clear();
  slice.pending.shrink_to_fit();
  slice.pending_bytes = 0;
  return slice.encoded;
}

void AddSamples(SliceData& slice, std::vector<Sample> added) {
  std::vector<std::string> ids;
  ids.reserve(added.size());
  for (const Sample& s : added) ids.push_back(s.id);
  std::sort(ids.begin(), ids.end());
  std::vector<std::string> merged;
  merged.reserve(slice.ids.size() + ids.size());
  std::merge(std::make_move_iterator(slice.ids.begin()),
             std::make_move_iterator(slice.ids.end()),
             std::make_move_iterator(ids.begin()),
             std::make_move_iterator(ids.end()), std::back_inserter(merged));
  slice.ids = std::move(merged);
  slice.digest = SliceDigest(slice.ids);
  for (const Sample& s : added) {
    slice.pending_bytes += static_cast<int64_t>(s.features.size());
  }
  slice.pending.insert(slice.pending.end(),
                       std::make_move_iterator(added.begin()),
                       std::make_move_iterator(added.end()));
  constexpr int64_t kMinMergeBytes = int64_t{1} << 20;
  if (slice.pending_bytes >=
      std::max<int64_t>(kMinMergeBytes, slice.encoded->bytes().size() / 2)) {
    Encoded(slice).IgnoreError();  // retried when the slice is needed
  }
}

absl::StatusOr<int64_t> RemoveSamples(
    SliceData& slice, const absl::flat_hash_set<std::string>& gone) {
  std::vector<std::string> kept_ids;
  absl::flat_hash_set<std::string> removed_ids;
  try {
    kept_ids.reserve(slice.ids.size());
    for (const std::string& id : slice.ids) {
      if (gone.contains(id)) {
        removed_ids.insert(id);
      } else {
        kept_ids.push_back(id);
      }
    }
  } catch (const std::exception& e) {
    return absl::ResourceExhaustedError(
        absl::StrCat("removing samples from a slice: ", e.what()));
  }
  const auto removed = static_cast<int64_t>(removed_ids.size());
  if (removed == 0) return 0;
  // The encoding follows when next needed (Encoded): a deactivation only
  // changes ids, so it stays cheap however large the slice.
  std::erase_if(slice.pending, [&](const Sample& s) {
    if (!removed_ids.contains(s.id)) return false;
    slice.pending_bytes -= static_cast<int64_t>(s.features.size());
    return true;
  });
  slice.removed.merge(removed_ids);
  slice.ids = std::move(kept_ids);
  slice.digest = SliceDigest(slice.ids);
  return removed;
}

absl::StatusOr<std::string> TrainPrefixFromScratch(
    worker::S3tTrainer& trainer, int shard, absl::Span<const int> prefix,
    const std::vector<SliceData>& slices) {
  std::string state_bytes;
  for (size_t p = 1; p <= prefix.size(); ++p) {
    std::vector<std::shared_ptr<const storage::EncodedSlice>> prefix_slices;
    for (size_t i = 0; i < p; ++i) {
      prefix_slices.push_back(slices[prefix[i]].encoded);
    }
    OUBLI_ASSIGN_OR_RETURN(
        worker::PositionData data,
        worker::PositionDataFromSlices(prefix_slices,
                                       trainer.config().backbone.InputSize()));
    OUBLI_ASSIGN_OR_RETURN(state_bytes,
                           trainer.TrainPosition(shard, prefix.subspan(0, p),
                                                 state_bytes, data, nullptr));
  }
  return state_bytes;
}

}  // namespace oubli::coordinator
