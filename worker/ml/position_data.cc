#include "worker/ml/position_data.h"

#include <torch/torch.h>

#include <algorithm>
#include <exception>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace oubli::ml {

absl::StatusOr<PositionData> MakePositionData(absl::Span<const Sample> samples,
                                              int64_t input_size) {
  const auto n = static_cast<int64_t>(samples.size());
  PositionData data;
  data.features = torch::empty({n, input_size}, torch::kFloat32);
  data.labels = torch::empty({n}, torch::kInt64);
  float* features = data.features.data_ptr<float>();
  int64_t* labels = data.labels.data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    if (HoldsTokens(samples[i].feature_type) ||
        samples[i].NumFeatures() != input_size) {
      return absl::InvalidArgumentError(absl::StrCat(
          "sample '", samples[i].id, "' has ", samples[i].NumFeatures(),
          " features; the model expects ", input_size));
    }
    DecodeFeatures(samples[i], features + i * input_size);
    labels[i] = samples[i].label;
  }
  return data;
}

absl::StatusOr<PositionData> MakeTokenPositionData(
    absl::Span<const TokenSequence> rows, const BackboneConfig& backbone) {
  const DecoderConfig& decoder = backbone.decoder;
  const bool classify = decoder.objective == DecoderObjective::kClassify;
  int64_t longest = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    const TokenSequence& row = rows[i];
    auto bad = [&](auto... parts) {
      return absl::InvalidArgumentError(
          absl::StrCat("token row ", i, ": ", parts...));
    };
    const auto length = static_cast<int64_t>(row.tokens.size());
    if (length == 0) return bad("no tokens");
    if (length > decoder.context_length) {
      return bad(length, " tokens; the context holds ",
                 decoder.context_length);
    }
    if (absl::Status vocabulary =
            CheckVocabulary(row.tokens, decoder.vocab_size);
        !vocabulary.ok()) {
      return bad(vocabulary.message());
    }
    if (row.prompt_tokens < 0 || row.prompt_tokens > length) {
      return bad("prompt_tokens ", row.prompt_tokens, " is outside [0, ",
                 length, "]");
    }
    if (classify && (row.label < 0 || row.label >= backbone.num_classes)) {
      return bad("label ", row.label, " is outside [0, ",
                 backbone.num_classes, ")");
    }
    longest = std::max(longest, length);
  }
  const auto n = static_cast<int64_t>(rows.size());
  PositionData data;
  try {
    data.tokens = torch::zeros({n, longest}, torch::kInt64);
    data.attention_mask = torch::zeros({n, longest}, torch::kInt64);
    data.loss_mask = torch::zeros({n, longest}, torch::kInt64);
    data.labels = torch::zeros({n}, torch::kInt64);
  } catch (const std::exception& e) {
    return absl::ResourceExhaustedError(
        absl::StrCat("decoding training data: ", e.what()));
  }
  int64_t* tokens = data.tokens.data_ptr<int64_t>();
  int64_t* real = data.attention_mask.data_ptr<int64_t>();
  int64_t* learn = data.loss_mask.data_ptr<int64_t>();
  int64_t* labels = data.labels.data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    const TokenSequence& row = rows[i];
    for (size_t t = 0; t < row.tokens.size(); ++t) {
      tokens[i * longest + t] = row.tokens[t];
      real[i * longest + t] = 1;
      learn[i * longest + t] =
          static_cast<int64_t>(t) >= row.prompt_tokens ? 1 : 0;
    }
    labels[i] = row.label;
  }
  return data;
}

namespace {

// The rows of `slices` in ascending id order over their union; refuses a
// sample in two slices.
struct RowRef {
  const std::string* id;
  int slice;
  int row;
};

absl::StatusOr<std::vector<RowRef>> UnionInIdOrder(
    const std::vector<internal::SliceRows>& parsed) {
  std::vector<RowRef> order;
  for (size_t s = 0; s < parsed.size(); ++s) {
    for (int r = 0; r < parsed[s].ids_size(); ++r) {
      order.push_back({&parsed[s].ids(r), static_cast<int>(s), r});
    }
  }
  std::sort(order.begin(), order.end(),
            [](const RowRef& a, const RowRef& b) { return *a.id < *b.id; });
  for (size_t i = 1; i < order.size(); ++i) {
    if (*order[i - 1].id == *order[i].id) {
      return absl::InvalidArgumentError(
          absl::StrCat("sample '", *order[i].id, "' is in two slices"));
    }
  }
  return order;
}

void Cleanse(std::vector<internal::SliceRows>& parsed) {
  for (internal::SliceRows& rows : parsed) {
    std::string* features = rows.mutable_features();
    std::fill(features->begin(), features->end(), '\0');
  }
}

absl::StatusOr<PositionData> TokenPositionDataFromSlices(
    absl::Span<const std::shared_ptr<const storage::EncodedSlice>> slices,
    const BackboneConfig& backbone) {
  std::vector<internal::SliceRows> parsed;
  parsed.reserve(slices.size());
  for (const auto& slice : slices) {
    if (slice == nullptr) return absl::InvalidArgumentError("missing slice");
    if (slice->rows() > 0 && !slice->holds_tokens()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "slice ", slice->digest(), " holds features; the model reads tokens"));
    }
    parsed.push_back(slice->Parse());
  }
  std::vector<TokenSequence> rows;
  std::vector<std::vector<std::vector<int32_t>>> tokens;
  absl::StatusOr<PositionData> data;
  try {
    absl::StatusOr<std::vector<RowRef>> order = UnionInIdOrder(parsed);
    if (!order.ok()) {
      Cleanse(parsed);
      return order.status();
    }
    for (const internal::SliceRows& p : parsed) {
      tokens.push_back(storage::DecodeTokenRows(p));
    }
    rows.reserve(order->size());
    for (const RowRef& ref : *order) {
      TokenSequence& row = rows.emplace_back();
      row.tokens = std::move(tokens[ref.slice][ref.row]);
      row.prompt_tokens = parsed[ref.slice].prompt_tokens(ref.row);
      row.label = parsed[ref.slice].labels(ref.row);
    }
    data = MakeTokenPositionData(rows, backbone);
  } catch (const std::exception& e) {
    data = absl::ResourceExhaustedError(
        absl::StrCat("decoding training data: ", e.what()));
  }
  // The parsed copies and the token lists hold the samples too.
  Cleanse(parsed);
  for (TokenSequence& row : rows) {
    std::fill(row.tokens.begin(), row.tokens.end(), 0);
  }
  for (auto& slice_rows : tokens) {
    for (std::vector<int32_t>& row : slice_rows) {
      std::fill(row.begin(), row.end(), 0);
    }
  }
  return data;
}

}  // namespace

absl::StatusOr<PositionData> PositionDataFromSlices(
    absl::Span<const std::shared_ptr<const storage::EncodedSlice>> slices,
    const BackboneConfig& backbone) {
  if (backbone.kind == BackboneKind::kDecoder) {
    return TokenPositionDataFromSlices(slices, backbone);
  }
  return PositionDataFromSlices(slices, backbone.InputSize());
}

absl::StatusOr<PositionData> PositionDataFromSlices(
    absl::Span<const std::shared_ptr<const storage::EncodedSlice>> slices,
    int64_t input_size) {
  std::vector<internal::SliceRows> parsed;
  parsed.reserve(slices.size());
  int64_t n = 0;
  for (const auto& slice : slices) {
    if (slice == nullptr) return absl::InvalidArgumentError("missing slice");
    if (slice->rows() > 0 && slice->holds_tokens()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "slice ", slice->digest(), " holds tokens; the model reads features"));
    }
    if (slice->rows() > 0 && slice->features_per_row() != input_size) {
      return absl::InvalidArgumentError(absl::StrCat(
          "slice ", slice->digest(), " has ", slice->features_per_row(),
          " features per row; the model expects ", input_size));
    }
    try {
      parsed.push_back(slice->Parse());
    } catch (const std::exception& e) {
      return absl::ResourceExhaustedError(
          absl::StrCat("decoding training data: ", e.what()));
    }
    n += slice->rows();
  }
  // Ascending id order over the union: training order depends only on
  // which samples are in the prefix, never on how slices hold them.
  absl::StatusOr<std::vector<RowRef>> order = UnionInIdOrder(parsed);
  if (!order.ok()) {
    Cleanse(parsed);
    return order.status();
  }
  PositionData data;
  try {
    data.features = torch::empty({n, input_size}, torch::kFloat32);
    data.labels = torch::empty({n}, torch::kInt64);
  } catch (const std::exception& e) {
    Cleanse(parsed);
    return absl::ResourceExhaustedError(
        absl::StrCat("decoding training data: ", e.what()));
  }
  float* features = data.features.data_ptr<float>();
  int64_t* labels = data.labels.data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    const RowRef& row = (*order)[i];
    storage::DecodeRow(parsed[row.slice], row.row, features + i * input_size);
    labels[i] = parsed[row.slice].labels(row.row);
  }
  // The parsed copies hold the samples too (the shared slices zero theirs
  // when dropped).
  Cleanse(parsed);
  return data;
}

}  // namespace oubli::ml
