// liboubli_lm_sentencepiece.so: SentencePiece behind ModuleApi (see
// sentencepiece_bridge.h). No Abseil header may be included here.
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <exception>
#include <unordered_map>

#include "tools/lm/sentencepiece_bridge.h"

namespace oubli::lm::spm {
namespace {

class VectorIterator : public sentencepiece::SentenceIterator {
 public:
  explicit VectorIterator(const std::vector<std::string>& sentences)
      : sentences_(sentences) {}
  bool done() const override { return next_ >= sentences_.size(); }
  void Next() override { ++next_; }
  const std::string& value() const override { return sentences_[next_]; }
  sentencepiece::util::Status status() const override {
    return sentencepiece::util::Status();
  }

 private:
  const std::vector<std::string>& sentences_;
  size_t next_ = 0;
};

std::string Error(const sentencepiece::util::Status& status) {
  return status.ok() ? std::string() : status.ToString();
}

using sentencepiece::SentencePieceProcessor;

const SentencePieceProcessor& Of(const void* p) {
  return *static_cast<const SentencePieceProcessor*>(p);
}

std::string Train(const std::vector<std::string>& sentences,
                  const std::map<std::string, std::string>& options,
                  std::string* model) {
  std::unordered_map<std::string, std::string> kwargs(options.begin(),
                                                      options.end());
  VectorIterator iterator(sentences);
  try {
    return Error(
        sentencepiece::SentencePieceTrainer::Train(kwargs, &iterator, model));
  } catch (const std::exception& e) {
    return e.what();
  }
}

const ModuleApi kApi = {
    .train = &Train,
    .create = []() -> void* { return new SentencePieceProcessor(); },
    .destroy =
        [](void* p) { delete static_cast<SentencePieceProcessor*>(p); },
    .load =
        [](void* p, const std::string& model) {
          return Error(static_cast<SentencePieceProcessor*>(p)
                           ->LoadFromSerializedProto(model));
        },
    .encode =
        [](const void* p, const std::string& text, std::vector<int>* ids) {
          return Error(Of(p).Encode(text, ids));
        },
    .decode =
        [](const void* p, const std::vector<int>& ids, std::string* text) {
          return Error(Of(p).Decode(ids, text));
        },
    .vocab_size = [](const void* p) { return Of(p).GetPieceSize(); },
    .bos_id = [](const void* p) { return Of(p).bos_id(); },
    .eos_id = [](const void* p) { return Of(p).eos_id(); },
};

}  // namespace
}  // namespace oubli::lm::spm

extern "C" __attribute__((visibility("default"))) const oubli::lm::spm::ModuleApi*
oubli_sentencepiece_module_v1() {
  return &oubli::lm::spm::kApi;
}
