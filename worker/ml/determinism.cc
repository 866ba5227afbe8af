#include "worker/ml/determinism.h"

#include <ATen/Version.h>
#include <dlfcn.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <cfenv>

#include "absl/strings/str_cat.h"
#include "common/hash.h"
#include "worker/ml/device.h"

namespace oubli::ml {
namespace {

using SetThreadsFn = void (*)(int);
using GetThreadsFn = int (*)();
using GetStringFn = char* (*)();

// Bump when a change to the trainer changes the bits it produces.
constexpr int kTrainerVersion = 1;

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
  at::globalContext().setFlushDenormal(false);
  std::fesetround(FE_TONEAREST);
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
  return absl::StrCat("torch_threads=", at::get_num_threads(), " blas=", blas);
}

std::string NumericEnvironment() {
  // Computed once: openblas_get_config() formats into a static buffer, so
  // concurrent callers (gRPC handler threads) could read it half written
  // and see an environment that differs from their own (seen under
  // concurrent Predict load); and show_config() is costly per request.
  static const std::string* const host = [] {
    std::string blas = "unknown-blas";
    auto config = reinterpret_cast<GetStringFn>(
        dlsym(RTLD_DEFAULT, "openblas_get_config"));
    auto corename = reinterpret_cast<GetStringFn>(
        dlsym(RTLD_DEFAULT, "openblas_get_corename"));
    if (config != nullptr && corename != nullptr) {
      blas = absl::StrCat("openblas[", config(), "][", corename(), "]");
    }
    // show_config names the build and the CPU kernel variant in use ("CPU
    // capability usage: AVX2"); its hash stands for both.
    return new std::string(absl::StrCat(
        "trainer=", kTrainerVersion, " torch=", TORCH_VERSION, " build+cpu=",
        Sha256Hex(at::show_config()).substr(0, 16), " blas=", blas));
  }();
  return absl::StrCat(*host, DeviceEnvironment());
}

}  // namespace oubli::ml
