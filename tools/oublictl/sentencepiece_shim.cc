// liboubli_sentencepiece.so: Debian's libsentencepiece behind a C
// interface (sentencepiece_shim.h). No Abseil here: sentencepiece_processor.h
// declares absl::string_view as std::string_view, which clashes with
// Debian's Abseil (a string_view class of its own).
#include "tools/oublictl/sentencepiece_shim.h"

#include <sentencepiece_processor.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

struct OubliSpm {
  sentencepiece::SentencePieceProcessor processor;
};

namespace {

void SetError(const std::string& message, char* error, size_t error_size) {
  if (error_size == 0) return;
  const size_t n = std::min(message.size(), error_size - 1);
  std::memcpy(error, message.data(), n);
  error[n] = '\0';
}

}  // namespace

OubliSpm* oubli_spm_load(const char* path, char* error, size_t error_size) {
  auto* spm = new OubliSpm;
  const sentencepiece::util::Status status = spm->processor.Load(path);
  if (!status.ok()) {
    SetError(status.ToString(), error, error_size);
    delete spm;
    return nullptr;
  }
  return spm;
}

void oubli_spm_free(OubliSpm* spm) { delete spm; }

int oubli_spm_piece_size(const OubliSpm* spm) {
  return spm->processor.GetPieceSize();
}

int oubli_spm_eos_id(const OubliSpm* spm) { return spm->processor.eos_id(); }

long oubli_spm_encode(const OubliSpm* spm, const char* text, size_t size,
                      int* ids, size_t capacity, char* error,
                      size_t error_size) {
  std::vector<int> out;
  const sentencepiece::util::Status status =
      spm->processor.Encode(std::string_view(text, size), &out);
  if (!status.ok()) {
    SetError(status.ToString(), error, error_size);
    return -1;
  }
  std::copy_n(out.begin(), std::min(out.size(), capacity), ids);
  return static_cast<long>(out.size());
}

long oubli_spm_decode(const OubliSpm* spm, const int* ids, size_t count,
                      char* text, size_t capacity, char* error,
                      size_t error_size) {
  const int pieces = spm->processor.GetPieceSize();
  for (size_t i = 0; i < count; ++i) {
    // Ids may come from a server: one past the pieces must be an error,
    // not a read past SentencePiece's piece table.
    if (ids[i] < 0 || ids[i] >= pieces) {
      SetError("token id " + std::to_string(ids[i]) +
                   " is outside the tokenizer's vocabulary of " +
                   std::to_string(pieces),
               error, error_size);
      return -1;
    }
  }
  std::string out;
  const sentencepiece::util::Status status =
      spm->processor.Decode(std::vector<int>(ids, ids + count), &out);
  if (!status.ok()) {
    SetError(status.ToString(), error, error_size);
    return -1;
  }
  if (capacity > 0) {
    std::memcpy(text, out.data(), std::min(out.size(), capacity));
  }
  return static_cast<long>(out.size());
}
