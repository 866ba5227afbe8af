#include "worker/ml/safetensors.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <exception>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "worker/ml/safetensors_layout.h"

namespace oubli::ml {
namespace {

// Tensor bytes are copied as-is; the format is little endian.
static_assert(std::endian::native == std::endian::little,
              "safetensors I/O assumes a little-endian host");

struct DtypeInfo {
  SafetensorsDtype dtype;
  torch::ScalarType type;
};

constexpr DtypeInfo kTorchTypes[] = {
    {SafetensorsDtype::kF32, torch::kFloat32},
    {SafetensorsDtype::kF64, torch::kFloat64},
    {SafetensorsDtype::kF16, torch::kFloat16},
    {SafetensorsDtype::kBF16, torch::kBFloat16},
    {SafetensorsDtype::kI64, torch::kInt64},
    {SafetensorsDtype::kI32, torch::kInt32},
    {SafetensorsDtype::kU8, torch::kUInt8},
    {SafetensorsDtype::kBool, torch::kBool},
};

torch::ScalarType TorchType(SafetensorsDtype dtype) {
  for (const DtypeInfo& info : kTorchTypes) {
    if (info.dtype == dtype) return info.type;
  }
  return torch::kFloat32;  // unreachable: every dtype is listed
}

const SafetensorsDtypeInfo* DtypeByType(torch::ScalarType type) {
  for (const DtypeInfo& info : kTorchTypes) {
    if (info.type != type) continue;
    for (const SafetensorsDtypeInfo& named : SafetensorsDtypes()) {
      if (named.dtype == info.dtype) return &named;
    }
  }
  return nullptr;
}

absl::Status Invalid(auto... parts) {
  return absl::InvalidArgumentError(absl::StrCat("safetensors: ", parts...));
}

}  // namespace

absl::StatusOr<std::string> SerializeSafetensors(const NamedTensors& tensors) {
  std::vector<size_t> order(tensors.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return tensors[a].first < tensors[b].first;
  });
  std::vector<torch::Tensor> contiguous(tensors.size());
  std::string header = "{";
  uint64_t offset = 0;
  for (size_t k = 0; k < order.size(); ++k) {
    const auto& [name, tensor] = tensors[order[k]];
    if (!IsValidSafetensorsName(name)) {
      return Invalid("invalid tensor name '", name, "'");
    }
    if (k > 0 && name == tensors[order[k - 1]].first) {
      return Invalid("duplicate tensor name '", name, "'");
    }
    if (!tensor.defined()) return Invalid("tensor '", name, "' is undefined");
    if (!tensor.device().is_cpu()) {
      return Invalid("tensor '", name, "' is not on the CPU");
    }
    const SafetensorsDtypeInfo* dtype = DtypeByType(tensor.scalar_type());
    if (dtype == nullptr) {
      return Invalid("tensor '", name, "' has unsupported dtype ",
                     c10::toString(tensor.scalar_type()));
    }
    try {
      contiguous[k] = tensor.contiguous();
    } catch (const std::exception& e) {
      return Invalid("tensor '", name, "': ", e.what());
    }
    const uint64_t bytes = contiguous[k].numel() * dtype->item_size;
    absl::StrAppend(&header, k > 0 ? "," : "", SafetensorsJsonQuote(name),
                    ":{\"dtype\":\"", dtype->name, "\",\"shape\":[",
                    absl::StrJoin(tensor.sizes(), ","),
                    "],\"data_offsets\":[", offset, ",", offset + bytes, "]}");
    offset += bytes;
  }
  header.push_back('}');
  header.append((8 - header.size() % 8) % 8, ' ');

  std::string out;
  out.reserve(8 + header.size() + offset);
  const uint64_t header_size = header.size();
  out.append(reinterpret_cast<const char*>(&header_size), 8);
  out.append(header);
  for (const torch::Tensor& tensor : contiguous) {
    const size_t bytes = tensor.numel() * tensor.element_size();
    if (bytes > 0) {
      out.append(static_cast<const char*>(tensor.data_ptr()), bytes);
    }
  }
  return out;
}

absl::StatusOr<NamedTensors> ParseSafetensors(absl::string_view bytes) {
  OUBLI_ASSIGN_OR_RETURN(std::vector<SafetensorsEntry> entries,
                         ParseSafetensorsLayout(bytes));
  NamedTensors tensors;
  tensors.reserve(entries.size());
  for (SafetensorsEntry& entry : entries) {
    try {
      torch::Tensor tensor = torch::empty(
          entry.shape,
          torch::TensorOptions().dtype(TorchType(entry.dtype->dtype)));
      if (!entry.data.empty()) {
        std::memcpy(tensor.data_ptr(), entry.data.data(), entry.data.size());
      }
      tensors.emplace_back(std::move(entry.name), std::move(tensor));
    } catch (const std::exception& e) {
      return Invalid("tensor '", entry.name, "' with shape [",
                     absl::StrJoin(entry.shape, ", "), "]: ", e.what());
    }
  }
  return tensors;
}

absl::StatusOr<NamedTensors> ReadSafetensorsFile(const std::string& path) {
  OUBLI_ASSIGN_OR_RETURN(const std::string bytes, ReadFile(path));
  absl::StatusOr<NamedTensors> tensors = ParseSafetensors(bytes);
  if (!tensors.ok()) {
    return absl::Status(tensors.status().code(),
                        absl::StrCat(path, ": ", tensors.status().message()));
  }
  return tensors;
}

absl::Status WriteSafetensorsFile(const std::string& path,
                                  const NamedTensors& tensors) {
  OUBLI_ASSIGN_OR_RETURN(const std::string bytes,
                         SerializeSafetensors(tensors));
  return WriteFileAtomically(path, bytes);
}

}  // namespace oubli::ml
