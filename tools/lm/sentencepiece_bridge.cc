// No Abseil header may be included here (see the header).
#include "tools/lm/sentencepiece_bridge.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <exception>
#include <unordered_map>

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

}  // namespace

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

struct Processor::Impl {
  sentencepiece::SentencePieceProcessor processor;
};

Processor::Processor() : impl_(std::make_unique<Impl>()) {}
Processor::~Processor() = default;

std::string Processor::Load(const std::string& serialized_model) {
  return Error(impl_->processor.LoadFromSerializedProto(serialized_model));
}

std::string Processor::Encode(const std::string& text,
                              std::vector<int>* ids) const {
  return Error(impl_->processor.Encode(text, ids));
}

std::string Processor::Decode(const std::vector<int>& ids,
                              std::string* text) const {
  return Error(impl_->processor.Decode(ids, text));
}

int Processor::vocab_size() const { return impl_->processor.GetPieceSize(); }
int Processor::bos_id() const { return impl_->processor.bos_id(); }
int Processor::eos_id() const { return impl_->processor.eos_id(); }
int Processor::unk_id() const { return impl_->processor.unk_id(); }

}  // namespace oubli::lm::spm
