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

absl::StatusOr<SliceData> LoadSliceData(storage::LineageStore& store,
                                        SliceRef where, int64_t input_size) {
  SliceData data;
  OUBLI_ASSIGN_OR_RETURN(data.ids, store.SliceMembers(where));
  OUBLI_ASSIGN_OR_RETURN(std::vector<Sample> samples,
                         store.ReadActiveSamples(data.ids));
  absl::StatusOr<std::shared_ptr<const storage::EncodedSlice>> encoded =
      input_size == 0 ? storage::EncodedSlice::FromTokenSamples(samples)
                      : storage::EncodedSlice::FromSamples(samples, input_size);
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

void ScrubSamples(std::vector<Sample>& samples) {
  for (Sample& s : samples) {
    if (!s.features.empty()) OPENSSL_cleanse(s.features.data(), s.features.size());
  }
}

absl::Status DropRemoved(SliceData& slice) {
  if (slice.removed.empty() || slice.encoded == nullptr) return absl::OkStatus();
  OUBLI_ASSIGN_OR_RETURN(slice.encoded,
                         slice.encoded->Without(slice.removed, nullptr));
  slice.removed.clear();
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<const storage::EncodedSlice>> Encoded(
    SliceData& slice) {
  if (slice.encoded == nullptr) {
    return absl::FailedPreconditionError("slice not loaded");
  }
  OUBLI_RETURN_IF_ERROR(DropRemoved(slice));
  if (slice.pending.empty()) return slice.encoded;
  internal::SliceRows rows;
  std::vector<Sample> all;
  // Both copies hold samples: zeroed however this returns.
  struct Scrub {
    internal::SliceRows& rows;
    std::vector<Sample>& all;
    ~Scrub() {
      std::string* features = rows.mutable_features();
      if (!features->empty()) OPENSSL_cleanse(features->data(), features->size());
      ScrubSamples(all);
    }
  } scrub{rows, all};
  try {
    rows = slice.encoded->Parse();
    all.reserve(rows.ids_size() + slice.pending.size());
    storage::AppendSamples(rows, &all);
    all.insert(all.end(), slice.pending.begin(), slice.pending.end());
  } catch (const std::exception& e) {
    return absl::ResourceExhaustedError(
        absl::StrCat("merging ingested samples into a slice: ", e.what()));
  }
  std::sort(all.begin(), all.end(),
            [](const Sample& a, const Sample& b) { return a.id < b.id; });
  OUBLI_ASSIGN_OR_RETURN(
      slice.encoded,
      slice.encoded->holds_tokens()
          ? storage::EncodedSlice::FromTokenSamples(all)
          : storage::EncodedSlice::FromSamples(
                all, slice.encoded->features_per_row()));
  ScrubSamples(slice.pending);
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
  if (slice.encoded != nullptr &&
      slice.pending_bytes >=
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
  // changes ids, so it stays cheap however large the slice. What may
  // allocate comes first: all or nothing.
  absl::flat_hash_set<std::string> still_encoded;
  try {
    still_encoded = slice.removed;
    for (const std::string& id : removed_ids) still_encoded.insert(id);
  } catch (const std::exception& e) {
    return absl::ResourceExhaustedError(
        absl::StrCat("removing samples from a slice: ", e.what()));
  }
  std::erase_if(slice.pending, [&](Sample& s) {
    if (!removed_ids.contains(s.id)) return false;
    still_encoded.erase(s.id);  // never encoded: nothing to drop later
    slice.pending_bytes -= static_cast<int64_t>(s.features.size());
    if (!s.features.empty()) {
      OPENSSL_cleanse(s.features.data(), s.features.size());
    }
    return true;
  });
  slice.removed = std::move(still_encoded);
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
                                       trainer.config().backbone));
    OUBLI_ASSIGN_OR_RETURN(state_bytes,
                           trainer.TrainPosition(shard, prefix.subspan(0, p),
                                                 state_bytes, data, nullptr));
  }
  return state_bytes;
}

}  // namespace oubli::coordinator
