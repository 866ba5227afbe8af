#include "tools/tokenizer/sentencepiece_tokenizer.h"

#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "tools/tokenizer/sentencepiece_module.h"

namespace oubli::tokenizer {

class SentencePieceModule {
 public:
  explicit SentencePieceModule(const OubliSentencePieceApi* api) : api_(api) {}
  const OubliSentencePieceApi& api() const { return *api_; }

 private:
  const OubliSentencePieceApi* api_;
};

namespace {

// What the module's callbacks hand over, copied (sentencepiece_module.h).
struct Output {
  std::string bytes;
  std::vector<int32_t> ids;
  std::string error;
};

void TakeBytes(void* context, const char* data, size_t size) {
  static_cast<Output*>(context)->bytes.assign(data, size);
}
void TakeIds(void* context, const int* ids, size_t count) {
  static_cast<Output*>(context)->ids.assign(ids, ids + count);
}
void TakeError(void* context, const char* data, size_t size) {
  static_cast<Output*>(context)->error.assign(data, size);
}

absl::StatusOr<std::shared_ptr<const SentencePieceModule>> FindDefaultModule() {
  if (const char* path = std::getenv(kSentencePieceModuleVariable);
      path != nullptr && *path != '\0') {
    return LoadSentencePieceModule(path);
  }
  std::vector<std::string> candidates;
  std::error_code error;
  const std::filesystem::path self =
      std::filesystem::read_symlink("/proc/self/exe", error);
  if (!error) {
    candidates.push_back(
        (self.parent_path() / kSentencePieceModuleName).string());
  }
#ifdef OUBLI_SENTENCEPIECE_MODULE_PATH
  // The build tree's: for tests and tools that run from where they were
  // built, away from the module.
  candidates.push_back(OUBLI_SENTENCEPIECE_MODULE_PATH);
#endif
  for (const std::string& path : candidates) {
    if (access(path.c_str(), F_OK) == 0) return LoadSentencePieceModule(path);
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "cannot load the SentencePiece module: no ", kSentencePieceModuleName,
      " at ", absl::StrJoin(candidates, " or "),
      " (it is built with oublictl; set ", kSentencePieceModuleVariable,
      " to its path)"));
}

absl::StatusOr<std::shared_ptr<const SentencePieceModule>> OrDefault(
    std::shared_ptr<const SentencePieceModule> module) {
  if (module != nullptr) return module;
  return DefaultSentencePieceModule();
}

}  // namespace

absl::StatusOr<std::shared_ptr<const SentencePieceModule>>
LoadSentencePieceModule(const std::string& path) {
  // RTLD_DEEPBIND: see the header. RTLD_LOCAL: its symbols stay its own.
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
  if (handle == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot load the SentencePiece module ", path, ": ", dlerror()));
  }
  using Entry = const OubliSentencePieceApi* (*)();
  const auto entry =
      reinterpret_cast<Entry>(dlsym(handle, OUBLI_SENTENCEPIECE_API_SYMBOL));
  if (entry == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot load the SentencePiece module ", path, ": it has no ",
        OUBLI_SENTENCEPIECE_API_SYMBOL, " (not this release's module?)"));
  }
  return std::make_shared<const SentencePieceModule>(entry());
}

absl::StatusOr<std::shared_ptr<const SentencePieceModule>>
DefaultSentencePieceModule() {
  static const auto* const module =
      new absl::StatusOr<std::shared_ptr<const SentencePieceModule>>(
          FindDefaultModule());
  return *module;
}

absl::StatusOr<std::string> TrainSentencePiece(
    const std::vector<std::string>& sentences,
    const std::map<std::string, std::string>& options,
    std::shared_ptr<const SentencePieceModule> module) {
  OUBLI_ASSIGN_OR_RETURN(module, OrDefault(std::move(module)));
  // Checked here: the trainer's own refusal is an internal assertion
  // ("[!sentences_.empty()]") that tells a user little.
  if (sentences.empty()) {
    return absl::InvalidArgumentError(
        "SentencePiece: no sentences to train on");
  }
  std::vector<const char*> data;
  std::vector<size_t> lengths;
  for (const std::string& sentence : sentences) {
    data.push_back(sentence.data());
    lengths.push_back(sentence.size());
  }
  std::vector<const char*> names, values;
  for (const auto& [name, value] : options) {
    names.push_back(name.c_str());
    values.push_back(value.c_str());
  }
  Output output;
  if (module->api().train(data.data(), lengths.data(), data.size(),
                          names.data(), values.data(), names.size(), &TakeBytes,
                          &TakeError, &output) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("SentencePiece's trainer refused: ", output.error));
  }
  return std::move(output.bytes);
}

SentencePieceTokenizer::SentencePieceTokenizer(
    std::shared_ptr<const SentencePieceModule> module, std::string model,
    OubliSentencePiece* processor)
    : module_(std::move(module)),
      model_(std::move(model)),
      processor_(processor) {}

SentencePieceTokenizer::~SentencePieceTokenizer() {
  module_->api().free(processor_);
}

absl::StatusOr<std::unique_ptr<SentencePieceTokenizer>>
SentencePieceTokenizer::FromModel(
    std::string serialized_model,
    std::shared_ptr<const SentencePieceModule> module) {
  OUBLI_ASSIGN_OR_RETURN(module, OrDefault(std::move(module)));
  Output output;
  OubliSentencePiece* processor = module->api().load(
      serialized_model.data(), serialized_model.size(), &TakeError, &output);
  if (processor == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("not a SentencePiece model (", output.error, ")"));
  }
  return std::unique_ptr<SentencePieceTokenizer>(new SentencePieceTokenizer(
      std::move(module), std::move(serialized_model), processor));
}

absl::StatusOr<std::unique_ptr<SentencePieceTokenizer>>
SentencePieceTokenizer::Load(
    const std::string& path,
    std::shared_ptr<const SentencePieceModule> module) {
  // The module first: its error is not the file's.
  OUBLI_ASSIGN_OR_RETURN(module, OrDefault(std::move(module)));
  absl::StatusOr<std::unique_ptr<SentencePieceTokenizer>> tokenizer;
  if (absl::StatusOr<std::string> bytes = ReadFile(path); !bytes.ok()) {
    tokenizer = bytes.status();
  } else {
    tokenizer = FromModel(*std::move(bytes), std::move(module));
  }
  if (!tokenizer.ok()) {
    return absl::Status(tokenizer.status().code(),
                        absl::StrCat("cannot read the SentencePiece model ",
                                     path, ": ", tokenizer.status().message()));
  }
  return tokenizer;
}

absl::StatusOr<std::vector<int32_t>> SentencePieceTokenizer::Encode(
    absl::string_view text) const {
  Output output;
  if (module_->api().encode(processor_, text.data(), text.size(), &TakeIds,
                            &TakeError, &output) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("SentencePiece cannot encode the text: ", output.error));
  }
  return std::move(output.ids);
}

absl::StatusOr<std::vector<int32_t>> SentencePieceTokenizer::Encode(
    absl::string_view text, Part part) const {
  OUBLI_ASSIGN_OR_RETURN(const std::vector<int32_t> ids, Encode(text));
  return Framed(ids, part);
}

std::vector<int32_t> SentencePieceTokenizer::Framed(
    absl::Span<const int32_t> ids, Part part) const {
  std::vector<int32_t> out;
  out.reserve(ids.size() + 2);
  if (part != Part::kAnswer && bos_id() >= 0) out.push_back(bos_id());
  out.insert(out.end(), ids.begin(), ids.end());
  if (part != Part::kPrompt && eos_id() >= 0) out.push_back(eos_id());
  return out;
}

absl::StatusOr<std::string> SentencePieceTokenizer::Decode(
    absl::Span<const int32_t> ids) const {
  Output output;
  if (module_->api().decode(processor_, ids.data(), ids.size(), &TakeBytes,
                            &TakeError, &output) != 0) {
    return absl::InvalidArgumentError(output.error);
  }
  return std::move(output.bytes);
}

int SentencePieceTokenizer::vocab_size() const {
  return module_->api().piece_size(processor_);
}
int32_t SentencePieceTokenizer::bos_id() const {
  return module_->api().bos_id(processor_);
}
int32_t SentencePieceTokenizer::eos_id() const {
  return module_->api().eos_id(processor_);
}

}  // namespace oubli::tokenizer
