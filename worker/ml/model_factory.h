// The adapter model a backbone config names: an image classifier
// (worker/ml/model.h) or a decoder language model (worker/ml/decoder_lm.h).
#ifndef OUBLI_WORKER_ML_MODEL_FACTORY_H_
#define OUBLI_WORKER_ML_MODEL_FACTORY_H_

#include <memory>

#include "absl/status/statusor.h"
#include "common/config.h"
#include "worker/ml/adapter_model.h"
#include "worker/ml/safetensors.h"

namespace oubli::ml {

// Built with InitBase(base_seed) and InitAdapters(base_seed).
// InvalidArgument: the backbone is invalid; ResourceExhausted: out of
// memory.
absl::StatusOr<std::shared_ptr<AdapterModel>> BuildAdapterModel(
    const BackboneConfig& backbone, uint64_t base_seed);

// The model of `config` with its base replaced by `base_state` (what
// LoadBaseState of worker/ml/s3t_trainer.h returns), adapters at their seeded
// start: what trainers, served shards and benchmarks start from.
// InvalidArgument: the backbone is invalid or the state does not fit it
// (LoadBaseState's refusals); ResourceExhausted: out of memory.
absl::StatusOr<std::shared_ptr<AdapterModel>> BuildModelOnBase(
    const ModelConfig& config, const NamedTensors& base_state);

// Loads a base weights file's tensors into `model`. A decoder's file may be
// a Hugging Face checkpoint (GPT-2 or Llama names, see
// worker/ml/hf_decoder_weights.h) or hold our own names (a base saved by
// PretrainBase); everything else holds our names. Tensors convert to
// float32. InvalidArgument naming the tensor that is missing,
// unexpected or mis-shaped.
absl::Status LoadBaseWeights(AdapterModel& model, const NamedTensors& file);

}  // namespace oubli::ml

#endif  // OUBLI_WORKER_ML_MODEL_FACTORY_H_
