#include "coordinator/slice_data.h"

#include <torch/torch.h>

#include <algorithm>
#include <exception>
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

absl::StatusOr<int64_t> RemoveSamples(
    SliceData& slice, const absl::flat_hash_set<std::string>& gone) {
  std::vector<std::string> kept_ids;
  for (const std::string& id : slice.ids) {
    if (!gone.contains(id)) kept_ids.push_back(id);
  }
  int64_t removed = 0;
  OUBLI_ASSIGN_OR_RETURN(std::shared_ptr<const storage::EncodedSlice> encoded,
                         slice.encoded->Without(gone, &removed));
  slice.encoded = std::move(encoded);
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
