#include "worker/ml/device.h"

#include <ATen/Context.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <dlfcn.h>
#include <torch/cuda.h>

#include <cstdio>
#include <cstdlib>

#include "absl/base/thread_annotations.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "worker/ml/torch_device.h"

namespace oubli::ml {
namespace {

struct Selected {
  absl::Mutex mu;
  bool cuda ABSL_GUARDED_BY(mu) = false;
  std::string description ABSL_GUARDED_BY(mu) = "cpu";
};

Selected& Selection() {
  static Selected* const selected = new Selected;
  return *selected;
}

// The GPU's model and compute capability, from the CUDA driver (found at
// run time, like OpenBLAS: this file builds against CPU-only LibTorch and
// without CUDA headers). Kernels, and so bits, differ between GPU models.
absl::StatusOr<std::string> NameGpu0() {
  using InitFn = int (*)(unsigned int);
  using DriverVersionFn = int (*)(int*);
  using DeviceGetFn = int (*)(int*, int);
  using GetNameFn = int (*)(char*, int, int);
  using GetAttributeFn = int (*)(int*, int, int);
  // cuda.h: CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT and
  // CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR / _MINOR. cuBLAS promises
  // the same bits only for the same architecture and SM count.
  constexpr int kMultiprocessors = 16;
  constexpr int kCapabilityMajor = 75;
  constexpr int kCapabilityMinor = 76;
  void* driver = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (driver == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot load the CUDA driver (libcuda.so.1): ", dlerror()));
  }
  auto init = reinterpret_cast<InitFn>(dlsym(driver, "cuInit"));
  auto device_get = reinterpret_cast<DeviceGetFn>(dlsym(driver, "cuDeviceGet"));
  auto get_name = reinterpret_cast<GetNameFn>(dlsym(driver, "cuDeviceGetName"));
  auto get_attribute =
      reinterpret_cast<GetAttributeFn>(dlsym(driver, "cuDeviceGetAttribute"));
  auto driver_version =
      reinterpret_cast<DriverVersionFn>(dlsym(driver, "cuDriverGetVersion"));
  int device = 0, major = 0, minor = 0, multiprocessors = 0, version = 0;
  char name[256] = {};
  if (init == nullptr || device_get == nullptr || get_name == nullptr ||
      get_attribute == nullptr || driver_version == nullptr || init(0) != 0 ||
      device_get(&device, 0) != 0 ||
      get_name(name, sizeof(name) - 1, device) != 0 ||
      get_attribute(&major, kCapabilityMajor, device) != 0 ||
      get_attribute(&minor, kCapabilityMinor, device) != 0 ||
      get_attribute(&multiprocessors, kMultiprocessors, device) != 0 ||
      driver_version(&version) != 0) {
    // The handle stays open: the driver is LibTorch's too.
    return absl::FailedPreconditionError(
        "the CUDA driver cannot name GPU 0 (model and compute capability)");
  }
  return absl::StrCat(name, " sm_", major, minor, " sms=", multiprocessors,
                      " driver=", version);
}

// cuBLAS's own version, at run time (libtorch_cuda has loaded it): its
// kernels change between releases that one CUDA toolkit version allows.
std::string CublasVersion() {
  using GetPropertyFn = int (*)(int, int*);
  auto get_property =
      reinterpret_cast<GetPropertyFn>(dlsym(RTLD_DEFAULT, "cublasGetProperty"));
  int major = 0, minor = 0, patch = 0;
  // library_types.h: MAJOR_VERSION, MINOR_VERSION, PATCH_LEVEL.
  if (get_property == nullptr || get_property(0, &major) != 0 ||
      get_property(1, &minor) != 0 || get_property(2, &patch) != 0) {
    return "unknown";
  }
  return absl::StrCat(major, ".", minor, ".", patch);
}

absl::StatusOr<std::string> UseCuda() {
  // Before anything touches CUDA (driver threads may read the environment):
  // cuBLAS reads it when its first handle is made.
  if (setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8", /*overwrite=*/1) != 0) {
    return absl::InternalError("cannot set CUBLAS_WORKSPACE_CONFIG");
  }
  if (!CudaAvailable()) {
    return absl::FailedPreconditionError(
        "--device=cuda, but CUDA is not available: this LibTorch build has "
        "no CUDA support (Debian's libtorch is CPU-only) or no GPU is "
        "visible (driver, CUDA_VISIBLE_DEVICES)");
  }
  absl::StatusOr<std::string> gpu = NameGpu0();
  if (!gpu.ok()) return gpu.status();
  try {
    at::Context& context = at::globalContext();
    context.setDeterministicAlgorithms(true, /*warn_only=*/false);
    context.setDeterministicCuDNN(true);
    context.setBenchmarkCuDNN(false);
    context.setAllowTF32CuBLAS(false);
    context.setAllowTF32CuDNN(false);
    const at::CUDAHooksInterface& hooks = at::detail::getCUDAHooks();
    // Build-time versions of the CUDA runtime and cuDNN LibTorch uses.
    const std::string cudnn =
        hooks.compiledWithCuDNN() ? absl::StrCat(hooks.versionCuDNN()) : "none";
    return absl::StrCat("cuda:0 ", *gpu, " cudart=", hooks.versionCUDART(),
                        " cudnn=", cudnn, " cublas=", CublasVersion());
  } catch (const std::exception& e) {
    return absl::FailedPreconditionError(
        absl::StrCat("setting up CUDA: ", e.what()));
  }
}

}  // namespace

absl::StatusOr<DeviceChoice> ParseDeviceChoice(absl::string_view text) {
  const std::string lower = absl::AsciiStrToLower(text);
  if (lower == "auto") return DeviceChoice::kAuto;
  if (lower == "cpu") return DeviceChoice::kCpu;
  if (lower == "cuda") return DeviceChoice::kCuda;
  return absl::InvalidArgumentError(
      absl::StrCat("device '", text, "': must be auto, cpu or cuda"));
}

bool CudaAvailable() {
  try {
    return torch::cuda::is_available();
  } catch (const std::exception&) {
    return false;  // a broken driver install counts as no GPU
  }
}

absl::StatusOr<std::string> UseComputeDevice(DeviceChoice choice) {
  bool cuda = false;
  std::string description = "cpu";
  if (choice == DeviceChoice::kCuda ||
      (choice == DeviceChoice::kAuto && CudaAvailable())) {
    absl::StatusOr<std::string> used = UseCuda();
    if (!used.ok()) return used.status();
    cuda = true;
    description = *std::move(used);
  }
  Selected& selected = Selection();
  absl::MutexLock lock(&selected.mu);
  selected.cuda = cuda;
  selected.description = description;
  return description;
}

absl::StatusOr<std::string> UseComputeDevice(absl::string_view choice) {
  absl::StatusOr<DeviceChoice> parsed = ParseDeviceChoice(choice);
  if (!parsed.ok()) return parsed.status();
  return UseComputeDevice(*parsed);
}

bool UseComputeDeviceFlag(const char* program, absl::string_view choice) {
  absl::StatusOr<std::string> used = UseComputeDevice(choice);
  if (!used.ok()) {
    std::fprintf(stderr, "%s: --device: %s\n", program,
                 used.status().ToString().c_str());
    return false;
  }
  std::fprintf(stderr, "%s: computing on %s\n", program, used->c_str());
  return true;
}

std::string ComputeDeviceDescription() {
  Selected& selected = Selection();
  absl::MutexLock lock(&selected.mu);
  return selected.description;
}

bool ComputeOnCuda() {
  Selected& selected = Selection();
  absl::MutexLock lock(&selected.mu);
  return selected.cuda;
}

std::string DeviceEnvironment() {
  Selected& selected = Selection();
  absl::MutexLock lock(&selected.mu);
  return selected.cuda ? absl::StrCat(" device=", selected.description) : "";
}

c10::Device TorchDevice() {
  return ComputeOnCuda() ? c10::Device(c10::DeviceType::CUDA, 0)
                         : c10::Device(c10::DeviceType::CPU);
}

}  // namespace oubli::ml
