// Thread pinning for bitwise-reproducible training.
//
// Float reductions are reordered by a different intra-op thread count, in
// torch's own kernels and inside OpenBLAS, so both are pinned. OpenMP thread
// counts are per calling thread, so every thread that runs torch ops calls
// PinThreads before it does.
#ifndef OUBLI_WORKER_ML_DETERMINISM_H_
#define OUBLI_WORKER_ML_DETERMINISM_H_

#include <string>

#include "common/config.h"

namespace oubli::ml {

// Sets torch intra-op threads and OpenBLAS threads (when OpenBLAS is the
// loaded BLAS; found at run time so other BLAS builds still work), and the
// calling thread's floating-point state (no flush-to-zero, round to
// nearest), which threads otherwise inherit from whoever created them.
void PinThreads(const DeterminismConfig& config);

// Everything outside the config that changes the bits of training: LibTorch
// version, the CPU kernel variant torch dispatches to, the BLAS build and
// core, the trainer's own version, and the GPU when training on one
// (worker/ml/device.h). Part of every checkpoint key, so a library upgrade or a
// move to another CPU or GPU retrains instead of mixing bits.
std::string NumericEnvironment();

// "torch_threads=1 blas=openblas(1)" etc., for logs and receipts.
std::string DescribeThreads();

}  // namespace oubli::ml

#endif  // OUBLI_WORKER_ML_DETERMINISM_H_
