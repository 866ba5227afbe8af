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
  absl::StatusOr<worker::PositionData> decoded =
      worker::MakePositionData(samples, input_size);
  if (!decoded.ok()) {
    return absl::DataLossError(absl::StrCat(
        "stored slice (", where.shard, ", ", where.slice,
        ") does not fit the model: ", decoded.status().message()));
  }
  data.features = std::move(decoded->features);
  data.labels = std::move(decoded->labels);
  data.digest = SliceDigest(data.ids);
  return data;
}

SliceData EmptySlice(int64_t input_size) {
  SliceData slice;
  slice.features = torch::empty({0, input_size}, torch::kFloat32);
  slice.labels = torch::empty({0}, torch::kInt64);
  slice.digest = SliceDigest(slice.ids);
  return slice;
}

absl::StatusOr<int64_t> RemoveSamples(
    SliceData& slice, const absl::flat_hash_set<std::string>& gone) {
  std::vector<std::string> kept_ids;
  std::vector<int64_t> kept_rows;
  for (size_t i = 0; i < slice.ids.size(); ++i) {
    if (!gone.contains(slice.ids[i])) {
      kept_ids.push_back(slice.ids[i]);
      kept_rows.push_back(static_cast<int64_t>(i));
    }
  }
  torch::Tensor features, labels;
  try {
    torch::Tensor rows = torch::tensor(kept_rows, torch::kInt64);
    features = slice.features.index_select(0, rows);
    labels = slice.labels.index_select(0, rows);
  } catch (const std::exception& e) {
    return absl::ResourceExhaustedError(
        absl::StrCat("removing samples from a slice: ", e.what()));
  }
  const int64_t removed =
      static_cast<int64_t>(slice.ids.size() - kept_ids.size());
  slice.features = std::move(features);
  slice.labels = std::move(labels);
  slice.ids = std::move(kept_ids);
  slice.digest = SliceDigest(slice.ids);
  return removed;
}

worker::PositionData UnionInIdOrder(
    const std::vector<const SliceData*>& slices) {
  std::vector<std::pair<const std::string*, int64_t>> rows;
  std::vector<torch::Tensor> features, labels;
  int64_t base = 0;
  for (const SliceData* data : slices) {
    for (size_t i = 0; i < data->ids.size(); ++i) {
      rows.emplace_back(&data->ids[i], base + static_cast<int64_t>(i));
    }
    base += static_cast<int64_t>(data->ids.size());
    features.push_back(data->features);
    labels.push_back(data->labels);
  }
  std::sort(rows.begin(), rows.end(),
            [](const auto& a, const auto& b) { return *a.first < *b.first; });
  std::vector<int64_t> index;
  index.reserve(rows.size());
  for (const auto& row : rows) index.push_back(row.second);
  torch::Tensor gather = torch::tensor(index, torch::kInt64);
  worker::PositionData out;
  out.features = torch::cat(features).index_select(0, gather);
  out.labels = torch::cat(labels).index_select(0, gather);
  return out;
}

absl::StatusOr<std::string> TrainPrefixFromScratch(
    worker::S3tTrainer& trainer, int shard, absl::Span<const int> prefix,
    const std::vector<SliceData>& slices) {
  std::string state_bytes;
  for (size_t p = 1; p <= prefix.size(); ++p) {
    std::vector<const SliceData*> prefix_slices;
    for (size_t i = 0; i < p; ++i) prefix_slices.push_back(&slices[prefix[i]]);
    worker::PositionData data;
    try {
      data = UnionInIdOrder(prefix_slices);
    } catch (const std::exception& e) {
      return absl::ResourceExhaustedError(
          absl::StrCat("assembling shard ", shard, "'s data: ", e.what()));
    }
    OUBLI_ASSIGN_OR_RETURN(state_bytes,
                           trainer.TrainPosition(shard, prefix.subspan(0, p),
                                                 state_bytes, data, nullptr));
  }
  return state_bytes;
}

}  // namespace oubli::coordinator
