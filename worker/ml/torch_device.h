// The torch device of worker/ml/device.h's choice, for code that runs torch.
#ifndef OUBLI_WORKER_ML_TORCH_DEVICE_H_
#define OUBLI_WORKER_ML_TORCH_DEVICE_H_

#include <c10/core/Device.h>

namespace oubli::ml {

// cuda:0 once UseComputeDevice chose CUDA, else the CPU. Models are built
// and seeded on the CPU (seeded init is a CPU kernel, identical everywhere)
// and then moved here; checkpoints always come back to the CPU.
c10::Device TorchDevice();

}  // namespace oubli::ml

#endif  // OUBLI_WORKER_ML_TORCH_DEVICE_H_
