// Safetensors containers (base weights users bring, checkpoints read back).
// Beyond not crashing, what ParseSafetensorsLayout promises must hold for
// every input: refusals are InvalidArgument naming the format; accepted
// tensors tile the data section exactly, each as many bytes as its dtype
// and shape need, in name order; and the layout written back out parses to
// the same tensors.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "worker/ml/safetensors_layout.h"

namespace {

using oubli::ml::SafetensorsEntry;

// Bytes `entry` needs by its dtype and shape; false if that overflows
// (which no accepted tensor may, as its bytes are in the input).
bool NeededBytes(const SafetensorsEntry& entry, uint64_t* bytes) {
  if (std::find(entry.shape.begin(), entry.shape.end(), 0) !=
      entry.shape.end()) {
    *bytes = 0;
    return true;
  }
  uint64_t count = 1;
  for (int64_t d : entry.shape) {
    if (d < 0 ||
        __builtin_mul_overflow(count, static_cast<uint64_t>(d), &count)) {
      return false;
    }
  }
  return !__builtin_mul_overflow(count, entry.dtype->item_size, bytes);
}

// `entries` (views into `data`, the data section) as a safetensors file of
// their own, written the way a writer would: names quoted, offsets
// relative to the data section.
std::string WriteBack(const std::vector<SafetensorsEntry>& entries,
                      absl::string_view data) {
  std::vector<std::string> fields;
  for (const SafetensorsEntry& entry : entries) {
    const uint64_t begin = entry.data.data() - data.data();
    fields.push_back(absl::StrCat(
        oubli::ml::SafetensorsJsonQuote(entry.name), ":{\"dtype\":\"",
        entry.dtype->name, "\",\"shape\":[", absl::StrJoin(entry.shape, ","),
        "],\"data_offsets\":[", begin, ",", begin + entry.data.size(), "]}"));
  }
  const std::string header = absl::StrCat("{", absl::StrJoin(fields, ","), "}");
  const uint64_t length = header.size();  // little-endian, as parsed
  std::string file(reinterpret_cast<const char*>(&length), sizeof(length));
  return absl::StrCat(file, header, data);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  auto entries = oubli::ml::ParseSafetensorsLayout(bytes);
  if (!entries.ok()) {
    if (entries.status().code() != absl::StatusCode::kInvalidArgument ||
        !absl::StartsWith(entries.status().message(), "safetensors: ")) {
      __builtin_trap();
    }
    return 0;
  }
  // Accepted: the length field and the header it announces are whole.
  uint64_t header_size;
  if (size < 8) __builtin_trap();
  std::memcpy(&header_size, data, 8);
  if (header_size > size - 8) __builtin_trap();
  const absl::string_view section = bytes.substr(8 + header_size);

  // Each tensor lies in the data section (never in the header) and is as
  // many bytes as its dtype and shape need; names are unique, in order.
  const char* const end = section.data() + section.size();
  std::vector<absl::string_view> by_offset;
  for (size_t i = 0; i < entries->size(); ++i) {
    const SafetensorsEntry& entry = (*entries)[i];
    if (entry.dtype == nullptr || entry.data.data() < section.data() ||
        entry.data.size() > static_cast<size_t>(end - entry.data.data())) {
      __builtin_trap();
    }
    uint64_t needed;
    if (!NeededBytes(entry, &needed) || needed != entry.data.size()) {
      __builtin_trap();
    }
    if (entry.name == "__metadata__" ||
        (i > 0 && !((*entries)[i - 1].name < entry.name))) {
      __builtin_trap();
    }
    by_offset.push_back(entry.data);
  }
  // Together they tile the data section: no gap, no overlap.
  std::sort(by_offset.begin(), by_offset.end(),
            [](absl::string_view a, absl::string_view b) {
              return a.data() != b.data() ? a.data() < b.data()
                                          : a.size() < b.size();
            });
  const char* cursor = section.data();
  for (absl::string_view payload : by_offset) {
    if (payload.data() != cursor) __builtin_trap();
    cursor += payload.size();
  }
  if (cursor != end) __builtin_trap();

  // Written back out, the layout reads the same: every tensor by name with
  // its dtype, shape and bytes.
  const std::string again = WriteBack(*entries, section);
  auto reparsed = oubli::ml::ParseSafetensorsLayout(again);
  if (!reparsed.ok() || reparsed->size() != entries->size()) __builtin_trap();
  for (size_t i = 0; i < entries->size(); ++i) {
    const SafetensorsEntry& a = (*entries)[i];
    const SafetensorsEntry& b = (*reparsed)[i];
    if (a.name != b.name || a.dtype != b.dtype || a.shape != b.shape ||
        a.data != b.data) {
      __builtin_trap();
    }
  }
  return 0;
}
