#include "worker/determinism.h"

#include <dlfcn.h>
#include <torch/torch.h>

#include "absl/strings/str_cat.h"

namespace oubli::worker {
namespace {

using SetThreadsFn = void (*)(int);
using GetThreadsFn = int (*)();

// OpenBLAS exports these; reference BLAS does not. Looked up once.
SetThreadsFn OpenBlasSetThreads() {
  static SetThreadsFn fn = reinterpret_cast<SetThreadsFn>(
      dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
  return fn;
}

GetThreadsFn OpenBlasGetThreads() {
  static GetThreadsFn fn = reinterpret_cast<GetThreadsFn>(
      dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
  return fn;
}

}  // namespace

void PinThreads(const DeterminismConfig& config) {
  if (at::get_num_threads() != config.torch_threads) {
    at::set_num_threads(config.torch_threads);
  }
  if (SetThreadsFn set = OpenBlasSetThreads(); set != nullptr) {
    GetThreadsFn get = OpenBlasGetThreads();
    if (get == nullptr || get() != config.blas_threads) {
      set(config.blas_threads);
    }
  }
}

std::string DescribeThreads() {
  std::string blas = "unknown-blas";
  if (GetThreadsFn get = OpenBlasGetThreads(); get != nullptr) {
    blas = absl::StrCat("openblas(", get(), ")");
  }
  return absl::StrCat("torch_threads=", at::get_num_threads(),
                      " blas=", blas);
}

}  // namespace oubli::worker
