#include "tools/oublictl/sentencepiece_tokenizer.h"

#include <dlfcn.h>

#include <filesystem>
#include <system_error>
#include <type_traits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "tools/oublictl/sentencepiece_shim.h"

namespace oubli::oublictl {

// The loaded module's functions; it stays loaded for the process (a
// library with a protobuf runtime inside is not safely unloaded).
struct SentencePieceTokenizer::Module {
  decltype(&oubli_spm_load) load;
  decltype(&oubli_spm_free) free;
  decltype(&oubli_spm_piece_size) piece_size;
  decltype(&oubli_spm_eos_id) eos_id;
  decltype(&oubli_spm_encode) encode;
  decltype(&oubli_spm_decode) decode;
};

namespace {

constexpr size_t kErrorSize = 512;

}  // namespace

absl::StatusOr<std::shared_ptr<const SentencePieceTokenizer::Module>>
SentencePieceTokenizer::LoadModule(std::string path) {
  if (path.empty()) {
    std::error_code error;
    const std::filesystem::path self =
        std::filesystem::read_symlink("/proc/self/exe", error);
    path = (self.parent_path() / kModuleName).string();
  }
  // RTLD_DEEPBIND: see the header. RTLD_LOCAL: its symbols stay its own.
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
  if (handle == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot load the SentencePiece module ", path, ": ",
                     dlerror(), " (it is built and installed with oublictl)"));
  }
  auto module = std::make_shared<Module>();
  bool found = true;
  auto bind = [&](auto* function, const char* name) {
    *function = reinterpret_cast<std::remove_reference_t<decltype(*function)>>(
        dlsym(handle, name));
    found = found && *function != nullptr;
  };
  bind(&module->load, "oubli_spm_load");
  bind(&module->free, "oubli_spm_free");
  bind(&module->piece_size, "oubli_spm_piece_size");
  bind(&module->eos_id, "oubli_spm_eos_id");
  bind(&module->encode, "oubli_spm_encode");
  bind(&module->decode, "oubli_spm_decode");
  if (!found) {
    return absl::FailedPreconditionError(absl::StrCat(
        path, " lacks a function of sentencepiece_shim.h: another release?"));
  }
  return module;
}

SentencePieceTokenizer::SentencePieceTokenizer(
    std::shared_ptr<const Module> module, OubliSpm* model)
    : module_(std::move(module)), model_(model) {}

SentencePieceTokenizer::~SentencePieceTokenizer() { module_->free(model_); }

absl::StatusOr<std::unique_ptr<SentencePieceTokenizer>>
SentencePieceTokenizer::Load(const std::string& model_path,
                             const std::string& module_path) {
  absl::StatusOr<std::shared_ptr<const Module>> module =
      LoadModule(module_path);
  if (!module.ok()) return module.status();
  char error[kErrorSize] = "";
  OubliSpm* model = (*module)->load(model_path.c_str(), error, sizeof(error));
  if (model == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cannot read the SentencePiece model ", model_path, ": ", error));
  }
  return std::unique_ptr<SentencePieceTokenizer>(
      new SentencePieceTokenizer(*std::move(module), model));
}

absl::StatusOr<std::vector<int>> SentencePieceTokenizer::Encode(
    absl::string_view text) const {
  std::vector<int> ids(text.size() + 1);
  char error[kErrorSize] = "";
  for (int attempt = 0; attempt < 2; ++attempt) {
    const long n = module_->encode(model_, text.data(), text.size(), ids.data(),
                                   ids.size(), error, sizeof(error));
    if (n < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("the tokenizer failed: ", error));
    }
    const bool fitted = static_cast<size_t>(n) <= ids.size();
    ids.resize(n);
    if (fitted) return ids;
  }
  return absl::InternalError("the tokenizer's output changed between calls");
}

absl::StatusOr<std::string> SentencePieceTokenizer::Decode(
    const std::vector<int>& ids) const {
  std::string text(4 * ids.size() + 16, '\0');
  char error[kErrorSize] = "";
  for (int attempt = 0; attempt < 2; ++attempt) {
    const long n = module_->decode(model_, ids.data(), ids.size(), text.data(),
                                   text.size(), error, sizeof(error));
    if (n < 0) return absl::InvalidArgumentError(error);
    const bool fitted = static_cast<size_t>(n) <= text.size();
    text.resize(n);
    if (fitted) return text;
  }
  return absl::InternalError("the tokenizer's output changed between calls");
}

int SentencePieceTokenizer::vocab_size() const {
  return module_->piece_size(model_);
}

int SentencePieceTokenizer::eos_id() const { return module_->eos_id(model_); }

}  // namespace oubli::oublictl
