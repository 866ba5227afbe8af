// The SentencePiece library behind an interface of standard types only,
// loaded at run time from a module of its own.
//
// Two things keep it apart from the rest of the program:
//  - Debian's sentencepiece_processor.h declares `namespace absl { using
//    std::string_view; }`, which collides with Debian Abseil's own
//    absl::string_view class: no translation unit can include both;
//  - libsentencepiece.so carries its own copy of protobuf-lite (3.14) and
//    exports it, while the engine links the system's libprotobuf (3.21):
//    linked into one program, one library's calls bind to the other's
//    copy and the process crashes before main.
// So the library is used only by liboubli_lm_sentencepiece.so
// (sentencepiece_module.cc), which this bridge loads with RTLD_DEEPBIND:
// the module and libsentencepiece then bind to their own symbols first and
// the program never sees them. oublictl's module (tools/oublictl/
// sentencepiece_shim.h) does the same for the processor alone; this one
// also trains.
#ifndef OUBLI_TOOLS_LM_SENTENCEPIECE_BRIDGE_H_
#define OUBLI_TOOLS_LM_SENTENCEPIECE_BRIDGE_H_

#include <map>
#include <string>
#include <vector>

namespace oubli::lm::spm {

// Trains a model on `sentences` (one each, in order) with trainer options
// given as key/value pairs (the names of SentencePiece's --flags). Returns
// an empty string and fills *model (the serialized ModelProto) on success,
// otherwise the error (also when the module cannot be loaded).
std::string Train(const std::vector<std::string>& sentences,
                  const std::map<std::string, std::string>& options,
                  std::string* model);

class Processor {
 public:
  Processor();
  ~Processor();
  Processor(const Processor&) = delete;
  Processor& operator=(const Processor&) = delete;

  // Each returns an empty string on success, otherwise the error. Only
  // Load may be called before a Load succeeded.
  std::string Load(const std::string& serialized_model);
  std::string Encode(const std::string& text, std::vector<int>* ids) const;
  std::string Decode(const std::vector<int>& ids, std::string* text) const;

  int vocab_size() const;
  int bos_id() const;
  int eos_id() const;

 private:
  void* handle_ = nullptr;  // the module's processor
};

// What liboubli_lm_sentencepiece.so exports, as
// `extern "C" const ModuleApi* oubli_sentencepiece_module_v1()`. Standard
// types only: the module and the program share one libstdc++.
struct ModuleApi {
  std::string (*train)(const std::vector<std::string>& sentences,
                       const std::map<std::string, std::string>& options,
                       std::string* model);
  void* (*create)();
  void (*destroy)(void* processor);
  std::string (*load)(void* processor, const std::string& model);
  std::string (*encode)(const void* processor, const std::string& text,
                        std::vector<int>* ids);
  std::string (*decode)(const void* processor, const std::vector<int>& ids,
                        std::string* text);
  int (*vocab_size)(const void* processor);
  int (*bos_id)(const void* processor);
  int (*eos_id)(const void* processor);
};

}  // namespace oubli::lm::spm

#endif  // OUBLI_TOOLS_LM_SENTENCEPIECE_BRIDGE_H_
