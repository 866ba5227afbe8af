// liboubli_sentencepiece.so: Debian's libsentencepiece, processor and
// trainer, behind the C interface of sentencepiece_module.h.
//
// No Abseil header may be included here: sentencepiece_processor.h
// declares `namespace absl { using std::string_view; }`, which clashes with
// Debian Abseil's own absl::string_view class.
#include "tools/tokenizer/sentencepiece_module.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <exception>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

struct OubliSentencePiece {
  sentencepiece::SentencePieceProcessor processor;
};

namespace {

void Report(const std::string& message, OubliSpmBytesOut error, void* context) {
  error(context, message.data(), message.size());
}

// Runs `body` (0 or -1) with any exception reported as an error: none may
// cross into the program, which may not even be built with them in mind.
template <typename Body>
int Guarded(OubliSpmBytesOut error, void* context, Body body) {
  try {
    return body();
  } catch (const std::exception& e) {
    Report(std::string("SentencePiece failed: ") + e.what(), error, context);
  } catch (...) {
    Report("SentencePiece failed with an unknown exception", error, context);
  }
  return -1;
}

// 0, or -1 with the status reported.
int Reported(const sentencepiece::util::Status& status, OubliSpmBytesOut error,
             void* context) {
  if (status.ok()) return 0;
  Report(status.ToString(), error, context);
  return -1;
}

// The sentences as the trainer reads them, in order.
class ArrayIterator : public sentencepiece::SentenceIterator {
 public:
  ArrayIterator(const char* const* sentences, const size_t* lengths,
                size_t count)
      : sentences_(sentences), lengths_(lengths), count_(count) {
    Fill();
  }
  bool done() const override { return next_ >= count_; }
  void Next() override {
    ++next_;
    Fill();
  }
  const std::string& value() const override { return value_; }
  sentencepiece::util::Status status() const override {
    return sentencepiece::util::Status();
  }

 private:
  void Fill() {
    if (!done()) value_.assign(sentences_[next_], lengths_[next_]);
  }
  const char* const* sentences_;
  const size_t* lengths_;
  size_t count_;
  size_t next_ = 0;
  std::string value_;
};

OubliSentencePiece* Load(const char* model, size_t size, OubliSpmBytesOut error,
                         void* context) {
  OubliSentencePiece* spm = nullptr;
  const int result = Guarded(error, context, [&] {
    spm = new OubliSentencePiece;
    return Reported(
        spm->processor.LoadFromSerializedProto(std::string_view(model, size)),
        error, context);
  });
  if (result == 0) return spm;
  delete spm;
  return nullptr;
}

int Encode(const OubliSentencePiece* spm, const char* text, size_t size,
           OubliSpmIdsOut out, OubliSpmBytesOut error, void* context) {
  return Guarded(error, context, [&] {
    std::vector<int> ids;
    if (Reported(spm->processor.Encode(std::string_view(text, size), &ids),
                 error, context) != 0) {
      return -1;
    }
    out(context, ids.data(), ids.size());
    return 0;
  });
}

int Decode(const OubliSentencePiece* spm, const int* ids, size_t count,
           OubliSpmBytesOut out, OubliSpmBytesOut error, void* context) {
  return Guarded(error, context, [&] {
    const int pieces = spm->processor.GetPieceSize();
    for (size_t i = 0; i < count; ++i) {
      // Ids may come from a server or a user: one past the pieces must be
      // an error, not a read past SentencePiece's piece table.
      if (ids[i] < 0 || ids[i] >= pieces) {
        Report("token id " + std::to_string(ids[i]) +
                   " is outside the tokenizer's vocabulary of " +
                   std::to_string(pieces),
               error, context);
        return -1;
      }
    }
    std::string text;
    if (Reported(
            spm->processor.Decode(std::vector<int>(ids, ids + count), &text),
            error, context) != 0) {
      return -1;
    }
    out(context, text.data(), text.size());
    return 0;
  });
}

int Train(const char* const* sentences, const size_t* lengths, size_t count,
          const char* const* names, const char* const* values, size_t options,
          OubliSpmBytesOut out, OubliSpmBytesOut error, void* context) {
  return Guarded(error, context, [&] {
    std::unordered_map<std::string, std::string> kwargs;
    for (size_t i = 0; i < options; ++i) kwargs[names[i]] = values[i];
    ArrayIterator iterator(sentences, lengths, count);
    std::string model;
    if (Reported(sentencepiece::SentencePieceTrainer::Train(kwargs, &iterator,
                                                            &model),
                 error, context) != 0) {
      return -1;
    }
    out(context, model.data(), model.size());
    return 0;
  });
}

const OubliSentencePieceApi kApi = {
    .load = &Load,
    .free = [](OubliSentencePiece* spm) { delete spm; },
    .piece_size =
        [](const OubliSentencePiece* spm) {
          return spm->processor.GetPieceSize();
        },
    .bos_id =
        [](const OubliSentencePiece* spm) { return spm->processor.bos_id(); },
    .eos_id =
        [](const OubliSentencePiece* spm) { return spm->processor.eos_id(); },
    .encode = &Encode,
    .decode = &Decode,
    .train = &Train,
};

}  // namespace

extern "C" __attribute__((visibility("default"))) const OubliSentencePieceApi*
oubli_sentencepiece_api_v1(void) {
  return &kApi;
}
