#include "tools/lm/sentencepiece_bridge.h"

#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <mutex>

namespace oubli::lm::spm {
namespace {

constexpr char kModuleName[] = "liboubli_lm_sentencepiece.so";

struct Loaded {
  const ModuleApi* api = nullptr;
  std::string error;
};

std::string ExecutableDir() {
  char path[4096];
  const ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);
  if (n <= 0) return "";
  std::string exe(path, static_cast<size_t>(n));
  const size_t slash = exe.rfind('/');
  return slash == std::string::npos ? "" : exe.substr(0, slash);
}

Loaded LoadModule() {
  // $OUBLI_LM_SENTENCEPIECE_MODULE, then the build's own copy, then one
  // beside the executable (an installed layout).
  std::vector<std::string> candidates;
  if (const char* env = std::getenv("OUBLI_LM_SENTENCEPIECE_MODULE")) {
    candidates.push_back(env);
  }
#ifdef OUBLI_LM_SENTENCEPIECE_MODULE_PATH
  candidates.push_back(OUBLI_LM_SENTENCEPIECE_MODULE_PATH);
#endif
  candidates.push_back(ExecutableDir() + "/" + kModuleName);
  Loaded loaded;
  for (const std::string& path : candidates) {
    if (access(path.c_str(), R_OK) != 0) continue;
    // RTLD_DEEPBIND: the module and libsentencepiece bind to their own
    // symbols (its protobuf-lite) before the program's (see the header).
    void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
    if (handle == nullptr) {
      loaded.error = std::string("cannot load ") + path + ": " + dlerror();
      return loaded;
    }
    using Entry = const ModuleApi* (*)();
    auto entry = reinterpret_cast<Entry>(
        dlsym(handle, "oubli_sentencepiece_module_v1"));
    if (entry == nullptr) {
      loaded.error = path + " is not the oubli SentencePiece module";
      return loaded;
    }
    loaded.api = entry();
    return loaded;
  }
  loaded.error = std::string(kModuleName) +
                 " not found (set OUBLI_LM_SENTENCEPIECE_MODULE to its path)";
  return loaded;
}

const Loaded& Module() {
  static const Loaded* loaded = new Loaded(LoadModule());
  return *loaded;
}

}  // namespace

std::string Train(const std::vector<std::string>& sentences,
                  const std::map<std::string, std::string>& options,
                  std::string* model) {
  const Loaded& m = Module();
  if (m.api == nullptr) return m.error;
  return m.api->train(sentences, options, model);
}

Processor::Processor() {
  if (const Loaded& m = Module(); m.api != nullptr) handle_ = m.api->create();
}

Processor::~Processor() {
  if (handle_ != nullptr) Module().api->destroy(handle_);
}

std::string Processor::Load(const std::string& serialized_model) {
  if (handle_ == nullptr) return Module().error;
  return Module().api->load(handle_, serialized_model);
}

std::string Processor::Encode(const std::string& text,
                              std::vector<int>* ids) const {
  return Module().api->encode(handle_, text, ids);
}

std::string Processor::Decode(const std::vector<int>& ids,
                              std::string* text) const {
  return Module().api->decode(handle_, ids, text);
}

int Processor::vocab_size() const { return Module().api->vocab_size(handle_); }
int Processor::bos_id() const { return Module().api->bos_id(handle_); }
int Processor::eos_id() const { return Module().api->eos_id(handle_); }

}  // namespace oubli::lm::spm
