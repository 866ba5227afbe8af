// Base weights for DecoderLm from a Hugging Face checkpoint's tensors, by
// the parameter names of each layout (see worker/ml/decoder_lm.h for ours):
//  - GPT-2: wte, wpe, h.{i}.ln_1, h.{i}.attn.c_attn (Conv1D, [D, 3D], q|k|v
//    side by side), h.{i}.attn.c_proj, h.{i}.ln_2, h.{i}.mlp.c_fc,
//    h.{i}.mlp.c_proj, ln_f; optionally under "transformer.". Conv1D weights
//    are [in, out], transposed relative to ours.
//  - Llama: model.embed_tokens, model.layers.{i}.self_attn.{q,k,v,o}_proj,
//    model.layers.{i}.mlp.{gate,up,down}_proj,
//    model.layers.{i}.{input,post_attention}_layernorm, model.norm, and
//    lm_head when the head is not tied.
// float16, bfloat16 and float64 tensors convert to float32 (exactly, or by
// IEEE rounding for float64).
#ifndef OUBLI_WORKER_ML_HF_DECODER_WEIGHTS_H_
#define OUBLI_WORKER_ML_HF_DECODER_WEIGHTS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "worker/ml/adapter_model.h"
#include "worker/ml/decoder_lm.h"

namespace oubli::ml {

// The base state (our names, float32, sorted) the checkpoint gives a model
// of `backbone` (kind kDecoder); a classifier's head is not in it (it is not part of a
// pretrained LM). GPT-2's position table may have more rows than
// `context_length`: the first rows are used.
// InvalidArgument from ValidateDecoderBackbone, or naming the tensor and
// the layout: a missing tensor, one
// with the wrong shape or a non-floating dtype, a tensor the layout does not
// have (e.g. a checkpoint with more layers than the config), a duplicate
// name, or an LM head that is present but differs from the embedding while
// the config ties them. A classifier ignores the LM head. Llama checkpoints
// with rope_scaling (Llama 3.1 and later) are not expressible: their
// rotary frequencies differ from rope_theta's.
absl::StatusOr<NamedTensors> ImportHuggingFaceDecoder(
    const BackboneConfig& backbone, const NamedTensors& checkpoint);

// ImportHuggingFaceDecoder, then the model's base replaced by it (its head,
// if any, kept). All or nothing. Errors as above.
absl::Status LoadHuggingFaceDecoder(DecoderLm& model,
                                    const NamedTensors& checkpoint);

}  // namespace oubli::ml

#endif  // OUBLI_WORKER_ML_HF_DECODER_WEIGHTS_H_
