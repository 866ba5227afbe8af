// Which device this process trains and predicts on: the CPU, or one CUDA
// GPU. Chosen once at startup (--device), before any torch work; the
// library default, for tests and tools that never choose, is the CPU.
//
// The device is part of the numeric environment (determinism.h), so a
// checkpoint trained on a GPU never shares a key with one trained on a CPU
// or on another GPU model: exactness holds per environment, and the
// coordinator sends work only to workers of its own. No torch in this
// header, so the gRPC mains can include it.
#ifndef OUBLI_WORKER_ML_DEVICE_H_
#define OUBLI_WORKER_ML_DEVICE_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace oubli::ml {

enum class DeviceChoice {
  kAuto,  // CUDA when this LibTorch build and a GPU are there, else CPU
  kCpu,
  kCuda,  // GPU 0 of those visible (CUDA_VISIBLE_DEVICES); error without
};

// "auto", "cpu" or "cuda"; InvalidArgument names the choices otherwise.
absl::StatusOr<DeviceChoice> ParseDeviceChoice(absl::string_view text);

// True when this LibTorch build has CUDA and sees at least one GPU.
bool CudaAvailable();

// Switches this process to the chosen device and returns its description
// ("cpu", or "cuda:0 NVIDIA A100-SXM4-40GB sm_80 sms=108 driver=12020
// cudart=11080 cudnn=8700 cublas=11.11.3"). For CUDA it first makes GPU
// kernels deterministic:
// deterministic algorithms only, cuDNN deterministic without autotuning,
// no TF32, and CUBLAS_WORKSPACE_CONFIG=:4096:8 (cuBLAS requires it for
// reproducible results). FailedPrecondition when CUDA is asked for and not
// available, or the GPU cannot be named (its model and compute capability
// belong in every checkpoint key). Call once, before training or serving:
// choosing the CPU after CUDA (tests) keeps those settings, which leave
// CPU kernels as they are.
absl::StatusOr<std::string> UseComputeDevice(DeviceChoice choice);

// ParseDeviceChoice, then UseComputeDevice: what --device does.
absl::StatusOr<std::string> UseComputeDevice(absl::string_view choice);

// What UseComputeDevice returned last ("cpu" before any choice).
std::string ComputeDeviceDescription();

// A server main's --device: UseComputeDevice(choice), then "PROGRAM:
// computing on DEVICE" on stderr, or "PROGRAM: --device: why" and false (the
// caller exits with 2).
bool UseComputeDeviceFlag(const char* program, absl::string_view choice);

// True once UseComputeDevice chose CUDA.
bool ComputeOnCuda();

// The device part of NumericEnvironment(): empty on the CPU (so CPU keys
// are the same as before devices existed), else " device=" + description.
std::string DeviceEnvironment();

}  // namespace oubli::ml

#endif  // OUBLI_WORKER_ML_DEVICE_H_
