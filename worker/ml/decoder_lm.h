// Decoder-only transformer language models with LoRA adapters, in the two
// layouts users bring from the Hugging Face ecosystem:
//  - GPT-2: learned positions, LayerNorm, GELU (tanh) MLP, biases, the LM
//    head tied to the token embedding;
//  - Llama: rotary positions, RMSNorm, SwiGLU MLP, no biases, optional
//    grouped-query attention and an untied LM head.
// Causal attention with right padding. Plain matmul/softmax arithmetic (no
// fused kernels) so that training is deterministic as the classifiers are.
//
// The config (DecoderConfig, common/config.h) picks the layout, the sizes,
// the LoRA targets and the objective: causal language modelling (no head;
// logits over the vocabulary from the frozen LM head) or sequence
// classification (a trainable head on the last real token). Adapter layers
// are the blocks, counted from the top.
//
// Parameter names (what checkpoints hold):
//   embed.weight, pos_embed.weight (GPT-2), norm.{weight,bias}, lm_head.weight
//   (untied Llama), head.{weight,bias} (classification), and per block
//   blocks.{i}.attn_norm, blocks.{i}.attn.{q,k,v,o}, blocks.{i}.mlp_norm,
//   blocks.{i}.mlp.{gate,up,down}, each projection with .weight [, .bias]
//   and, when it is a LoRA target, .lora_a and .lora_b.
// worker/ml/hf_decoder_weights.h maps Hugging Face names onto these.
#ifndef OUBLI_WORKER_ML_DECODER_LM_H_
#define OUBLI_WORKER_ML_DECODER_LM_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/config.h"
#include "worker/ml/adapter_model.h"

namespace oubli::ml {

class DecoderLm : public AdapterModel {
 public:
  // tokens: [N, T] int64 in [0, vocab_size); attention_mask: [N, T], 1 for
  // real tokens, 0 for padding, right-padded (each row's real tokens come
  // first), at least one real token per row, T <= context_length (GPT-2).
  // Returns next-token logits [N, T, vocab] for a language model, class
  // logits [N, num_classes] for a classifier. Bad shapes or values throw
  // c10::Error (the callers below turn that into a Status).
  virtual torch::Tensor forward(const torch::Tensor& tokens,
                                const torch::Tensor& attention_mask) = 0;

  // The backbone this model was built for (kind kDecoder).
  const BackboneConfig& backbone() const { return backbone_; }
  const DecoderConfig& config() const { return backbone_.decoder; }

 protected:
  explicit DecoderLm(const BackboneConfig& backbone) : backbone_(backbone) {}
  const BackboneConfig backbone_;
};

// Builds the model of `backbone` (kind kDecoder: its decoder, lora and, for
// kClassify, num_classes) with InitBase(base_seed) and
// InitAdapters(base_seed). InvalidArgument from ValidateDecoderBackbone or
// for another kind; ResourceExhausted when the tensors cannot be allocated.
absl::StatusOr<std::shared_ptr<DecoderLm>> BuildDecoderLm(
    const BackboneConfig& backbone, uint64_t base_seed);

// Mean next-token cross entropy over the positions whose target token is
// real and, when `loss_mask` is defined ([N, T], 1 = the token is an
// answer token to learn), marked: token t+1 is predicted from tokens 0..t.
// Padding and prompt tokens are context only. `logits` is forward()'s [N, T,
// V]. Zero (with a gradient path) when no token counts.
torch::Tensor CausalLmLoss(const torch::Tensor& logits,
                           const torch::Tensor& tokens,
                           const torch::Tensor& attention_mask,
                           const torch::Tensor& loss_mask);

// log p(token t | tokens < t) for t >= 1, as [N, T-1] float32; entries whose
// token is padding are 0. The scoring the ensemble averages.
torch::Tensor NextTokenLogProbs(const torch::Tensor& logits,
                                const torch::Tensor& tokens,
                                const torch::Tensor& attention_mask);

}  // namespace oubli::ml

#endif  // OUBLI_WORKER_ML_DECODER_LM_H_
