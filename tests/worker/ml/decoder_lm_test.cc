#include "worker/ml/decoder_lm.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/hash.h"
#include "worker/ml/hf_decoder_weights.h"
#include "worker/ml/safetensors.h"

namespace oubli::ml {
namespace {

using ::testing::HasSubstr;

// Must match CONFIGS in decoder_reference.py.
BackboneConfig Gpt2Reference() {
  BackboneConfig backbone;
  backbone.kind = BackboneKind::kDecoder;
  DecoderConfig& config = backbone.decoder;
  config.layout = DecoderLayout::kGpt2;
  config.vocab_size = 61;
  config.context_length = 16;
  config.dim = 32;
  config.layers = 2;
  config.heads = 4;
  config.kv_heads = 4;
  config.mlp_dim = 128;
  config.norm_eps = 1e-5;
  config.lora_targets = {LoraTarget::kQ, LoraTarget::kV, LoraTarget::kUp};
  return backbone;
}

BackboneConfig LlamaReference() {
  BackboneConfig backbone;
  backbone.kind = BackboneKind::kDecoder;
  DecoderConfig& config = backbone.decoder;
  config.layout = DecoderLayout::kLlama;
  config.vocab_size = 61;
  config.context_length = 16;
  config.dim = 32;
  config.layers = 2;
  config.heads = 4;
  config.kv_heads = 2;
  config.mlp_dim = 48;
  config.norm_eps = 1e-6;
  config.rope_theta = 10000;
  config.tie_embeddings = false;
  config.lora_targets = {LoraTarget::kQ, LoraTarget::kK, LoraTarget::kV,
                         LoraTarget::kO, LoraTarget::kGate, LoraTarget::kUp,
                         LoraTarget::kDown};
  return backbone;
}

std::shared_ptr<DecoderLm> Build(const BackboneConfig& config,
                                 uint64_t seed = 7) {
  auto model = BuildDecoderLm(config, seed);
  EXPECT_TRUE(model.ok()) << model.status();
  return model.ok() ? *model : nullptr;
}

std::map<std::string, torch::Tensor> ByName(const NamedTensors& tensors) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& [name, tensor] : tensors) out[name] = tensor;
  return out;
}

// decoder_reference.py's output, made once per version of the script: in a
// directory named by the script's SHA-256, so the suite's test processes
// (ctest runs each test alone) share one run.
class ReferenceFiles {
 public:
  static const std::string& Dir() {
    static const std::string* dir = [] {
      const char* source = std::getenv("OUBLI_SOURCE_DIR");
      EXPECT_NE(source, nullptr) << "OUBLI_SOURCE_DIR is unset (ctest sets it)";
      const std::string script =
          absl::StrCat(source == nullptr ? "." : source,
                       "/tests/worker/ml/decoder_reference.py");
      std::ifstream in(script, std::ios::binary);
      std::stringstream text;
      text << in.rdbuf();
      const std::filesystem::path tmp =
          std::filesystem::temp_directory_path();
      auto* out = new std::string(
          (tmp / absl::StrCat("oubli-decoder-reference-",
                              Sha256Hex(text.str()).substr(0, 16)))
              .string());
      if (std::filesystem::exists(*out + "/llama_expected.safetensors")) {
        return out;
      }
      // Made beside it and renamed into place: a concurrent process either
      // finds the whole directory or makes its own.
      const std::string scratch = absl::StrCat(*out, ".", ::getpid());
      std::filesystem::create_directories(scratch);
      const std::string command =
          absl::StrCat("/usr/bin/python3 ", script, " ", scratch);
      if (std::system(command.c_str()) != 0) {
        ADD_FAILURE() << command
                      << " failed (tools/oubli setup installs python3-torch)";
        *out = scratch;  // never renamed into place: the next run retries
        return out;
      }
      std::error_code error;
      std::filesystem::rename(scratch, *out, error);
      if (error) {
        std::filesystem::remove_all(scratch, error);  // another process won
      }
      return out;
    }();
    return *dir;
  }
  static NamedTensors Read(const std::string& name) {
    auto tensors = ReadSafetensorsFile(Dir() + "/" + name);
    EXPECT_TRUE(tensors.ok()) << tensors.status();
    return tensors.ok() ? *tensors : NamedTensors{};
  }
};

void ExpectMatchesReference(const BackboneConfig& config,
                            const std::string& layout) {
  std::shared_ptr<DecoderLm> model = Build(config);
  ASSERT_NE(model, nullptr);
  NamedTensors checkpoint = ReferenceFiles::Read(layout + ".safetensors");
  ASSERT_FALSE(checkpoint.empty());
  ASSERT_TRUE(LoadHuggingFaceDecoder(*model, checkpoint).ok());
  auto expected = ByName(ReferenceFiles::Read(layout + "_expected.safetensors"));
  ASSERT_TRUE(expected.contains("logits"));

  torch::NoGradGuard no_grad;
  model->eval();
  torch::Tensor logits =
      model->forward(expected["tokens"], expected["attention_mask"]);
  ASSERT_EQ(logits.sizes(), expected["logits"].sizes());
  const double max_error =
      (logits - expected["logits"]).abs().max().item<double>();
  // float32 arithmetic in a different order: agreement to ~1e-6 is usual.
  EXPECT_LT(max_error, 1e-4) << layout;
  torch::Tensor loss =
      CausalLmLoss(logits, expected["tokens"], expected["attention_mask"],
                   expected["loss_mask"]);
  EXPECT_NEAR(loss.item<double>(), expected["loss"].item<double>(), 1e-5)
      << layout;
}

TEST(DecoderLmReferenceTest, Gpt2MatchesAnIndependentImplementation) {
  ExpectMatchesReference(Gpt2Reference(), "gpt2");
}

TEST(DecoderLmReferenceTest, LlamaWithGroupedQueryAttentionMatches) {
  ExpectMatchesReference(LlamaReference(), "llama");
}

TEST(DecoderLmReferenceTest, FreshAdaptersLeaveTheBaseUnchanged) {
  // LoRA's B starts at zero, so before any training the adapted model is the
  // pretrained one: the same logits as with no targets but q.
  BackboneConfig all = LlamaReference();
  BackboneConfig one = LlamaReference();
  one.decoder.lora_targets = {LoraTarget::kQ};
  NamedTensors checkpoint = ReferenceFiles::Read("llama.safetensors");
  auto a = Build(all), b = Build(one);
  ASSERT_TRUE(LoadHuggingFaceDecoder(*a, checkpoint).ok());
  ASSERT_TRUE(LoadHuggingFaceDecoder(*b, checkpoint).ok());
  auto expected = ByName(ReferenceFiles::Read("llama_expected.safetensors"));
  torch::NoGradGuard no_grad;
  torch::Tensor la = a->forward(expected["tokens"], expected["attention_mask"]);
  torch::Tensor lb = b->forward(expected["tokens"], expected["attention_mask"]);
  EXPECT_TRUE(torch::equal(la, lb));
}

// --- Importing Hugging Face weights: refusals name the tensor ----------------

class HuggingFaceImportTest : public ::testing::Test {
 protected:
  static NamedTensors Gpt2Checkpoint() {
    return ReferenceFiles::Read("gpt2.safetensors");
  }
  static std::string ImportError(const BackboneConfig& config,
                                 const NamedTensors& checkpoint) {
    auto result = ImportHuggingFaceDecoder(config, checkpoint);
    EXPECT_FALSE(result.ok());
    EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
    return std::string(result.status().message());
  }
};

TEST_F(HuggingFaceImportTest, AcceptsThePrefixBuffersAndFloat16) {
  auto base = ImportHuggingFaceDecoder(Gpt2Reference(), Gpt2Checkpoint());
  ASSERT_TRUE(base.ok()) << base.status();
  auto by_name = ByName(*base);
  // c_attn split into q, k, v and transposed; biases split alike.
  EXPECT_EQ(by_name.at("blocks.0.attn.q.weight").sizes(),
            (std::vector<int64_t>{32, 32}));
  EXPECT_EQ(by_name.at("blocks.1.attn.v.bias").sizes(),
            (std::vector<int64_t>{32}));
  EXPECT_EQ(by_name.at("blocks.0.mlp.up.weight").sizes(),
            (std::vector<int64_t>{128, 32}));
  for (const auto& [name, tensor] : *base) {
    EXPECT_EQ(tensor.scalar_type(), torch::kFloat32) << name;
  }
}

TEST_F(HuggingFaceImportTest, MissingTensorIsNamed) {
  NamedTensors checkpoint = Gpt2Checkpoint();
  std::erase_if(checkpoint, [](const auto& item) {
    return item.first == "transformer.h.1.mlp.c_fc.bias";
  });
  EXPECT_THAT(ImportError(Gpt2Reference(), checkpoint),
              HasSubstr("missing tensor 'h.1.mlp.c_fc.bias' (shape [128])"));
}

TEST_F(HuggingFaceImportTest, WrongShapeIsNamed) {
  BackboneConfig config = Gpt2Reference();
  config.decoder.mlp_dim = 64;
  EXPECT_THAT(ImportError(config, Gpt2Checkpoint()),
              HasSubstr("has shape [128], expected [64]"));
}

TEST_F(HuggingFaceImportTest, MoreLayersThanTheConfigIsRefused) {
  BackboneConfig config = Gpt2Reference();
  config.decoder.layers = 1;
  EXPECT_THAT(ImportError(config, Gpt2Checkpoint()),
              HasSubstr("unexpected tensor 'h.1."));
}

TEST_F(HuggingFaceImportTest, ShortPositionTableIsRefused) {
  BackboneConfig config = Gpt2Reference();
  config.decoder.context_length = 32;
  EXPECT_THAT(ImportError(config, Gpt2Checkpoint()),
              HasSubstr("at least 32 rows, the context length"));
}

TEST_F(HuggingFaceImportTest, IntegerTensorIsRefused) {
  NamedTensors checkpoint = Gpt2Checkpoint();
  for (auto& [name, tensor] : checkpoint) {
    if (name == "transformer.ln_f.bias") tensor = tensor.to(torch::kInt64);
  }
  EXPECT_THAT(ImportError(Gpt2Reference(), checkpoint),
              HasSubstr("'ln_f.bias' has non-floating dtype"));
}

TEST_F(HuggingFaceImportTest, DuplicateAfterThePrefixIsRefused) {
  NamedTensors checkpoint = Gpt2Checkpoint();
  checkpoint.emplace_back("ln_f.bias", torch::zeros({32}));
  EXPECT_THAT(ImportError(Gpt2Reference(), checkpoint),
              HasSubstr("'ln_f.bias' appears twice"));
}

TEST_F(HuggingFaceImportTest, UntiedHeadUnderATiedConfigIsRefused) {
  BackboneConfig config = LlamaReference();
  config.decoder.tie_embeddings = true;
  EXPECT_THAT(ImportError(config, ReferenceFiles::Read("llama.safetensors")),
              HasSubstr("set tie_embeddings to false"));
}

TEST_F(HuggingFaceImportTest, ClassifierIgnoresTheLmHead) {
  // An untied Llama checkpoint fine-tuned as a classifier: its lm_head is
  // not part of the model, and the seeded head stays.
  BackboneConfig config = LlamaReference();
  config.decoder.objective = DecoderObjective::kClassify;
  config.num_classes = 3;
  auto model = Build(config);
  ASSERT_NE(model, nullptr);
  const torch::Tensor head = model->HeadParameters()[0].clone();
  absl::Status loaded =
      LoadHuggingFaceDecoder(*model, ReferenceFiles::Read("llama.safetensors"));
  ASSERT_TRUE(loaded.ok()) << loaded;
  EXPECT_TRUE(torch::equal(model->HeadParameters()[0], head));
  config.decoder.tie_embeddings = true;
  EXPECT_TRUE(ImportHuggingFaceDecoder(
                  config, ReferenceFiles::Read("llama.safetensors"))
                  .ok());
}

TEST_F(HuggingFaceImportTest, MissingUntiedHeadIsNamed) {
  NamedTensors checkpoint = ReferenceFiles::Read("llama.safetensors");
  std::erase_if(checkpoint,
                [](const auto& item) { return item.first == "lm_head.weight"; });
  EXPECT_THAT(ImportError(LlamaReference(), checkpoint),
              HasSubstr("missing tensor 'lm_head.weight'"));
}

// --- Config and input validation ---------------------------------------------

TEST(DecoderConfigTest, RefusalsNameTheField) {
  auto error = [](auto mutate) {
    BackboneConfig backbone = LlamaReference();
    mutate(backbone.decoder);
    absl::Status status = ValidateDecoderBackbone(backbone);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    return std::string(status.message());
  };
  EXPECT_THAT(error([](auto& c) { c.kv_heads = 3; }),
              HasSubstr("multiple of kv_heads"));
  EXPECT_THAT(error([](auto& c) { c.dim = 30; }),
              HasSubstr("multiple of heads"));
  EXPECT_THAT(error([](auto& c) { c.vocab_size = 0; }),
              HasSubstr("vocab_size must be positive"));
  EXPECT_THAT(error([](auto& c) { c.lora_targets = {}; }),
              HasSubstr("at least one projection"));
  EXPECT_THAT(error([](auto& c) {
                c.lora_targets = {LoraTarget::kQ, LoraTarget::kQ};
              }),
              HasSubstr("'q' named twice"));
  EXPECT_THAT(error([](auto& c) {
                c.layout = DecoderLayout::kGpt2;
                c.kv_heads = c.heads;
                c.tie_embeddings = true;
                c.lora_targets = {LoraTarget::kGate};
              }),
              HasSubstr("no gate projection"));
  EXPECT_THAT(error([](auto& c) {
                c.layout = DecoderLayout::kGpt2;
                c.tie_embeddings = true;
              }),
              HasSubstr("no grouped-query attention"));
  EXPECT_THAT(error([](auto& c) { c.dim = 36; c.heads = 12; c.kv_heads = 12; }),
              HasSubstr("even head_dim"));
  EXPECT_THAT(error([](auto& c) { c.vocab_size = 1 << 20; c.dim = 4096; }),
              HasSubstr("parameters"));
  EXPECT_EQ(ParseLoraTarget("gate").value(), LoraTarget::kGate);
  EXPECT_THAT(std::string(ParseLoraTarget("c_attn").status().message()),
              HasSubstr("unknown LoRA target 'c_attn'"));
}

TEST(DecoderInputTest, BadInputsThrowPreciseErrors) {
  auto model = Build(LlamaReference());
  ASSERT_NE(model, nullptr);
  auto message = [&](const torch::Tensor& tokens, const torch::Tensor& mask) {
    try {
      model->forward(tokens, mask);
    } catch (const c10::Error& e) {
      return std::string(e.what_without_backtrace());
    }
    return std::string("no error");
  };
  torch::Tensor tokens = torch::tensor({{1, 2, 3}}, torch::kInt64);
  EXPECT_THAT(message(tokens, torch::tensor({{0, 1, 1}})),
              HasSubstr("real first token"));
  EXPECT_THAT(message(tokens, torch::tensor({{1, 0, 1}})),
              HasSubstr("right-padded"));
  EXPECT_THAT(message(torch::tensor({{1, 61, 3}}, torch::kInt64),
                      torch::ones({1, 3})),
              HasSubstr("token ids must be in [0, 61)"));
  EXPECT_THAT(message(torch::zeros({1, 17}, torch::kInt64),
                      torch::ones({1, 17})),
              HasSubstr("exceeds the context length 16"));
  EXPECT_THAT(message(tokens.to(torch::kInt32), torch::ones({1, 3})),
              HasSubstr("int64"));
}

// --- Behaviour ----------------------------------------------------------------

TEST(DecoderLmTest, EarlierPositionsDoNotSeeLaterTokens) {
  for (BackboneConfig config : {Gpt2Reference(), LlamaReference()}) {
    auto model = Build(config);
    torch::NoGradGuard no_grad;
    torch::Tensor a = torch::tensor({{5, 9, 11, 3, 7}}, torch::kInt64);
    torch::Tensor b = a.clone();
    b[0][4] = 42;
    torch::Tensor mask = torch::ones({1, 5}, torch::kInt64);
    torch::Tensor la = model->forward(a, mask);
    torch::Tensor lb = model->forward(b, mask);
    EXPECT_TRUE(torch::equal(la.narrow(1, 0, 4), lb.narrow(1, 0, 4)))
        << DecoderLayoutName(config.decoder.layout);
    EXPECT_FALSE(torch::equal(la.narrow(1, 4, 1), lb.narrow(1, 4, 1)));
  }
}

TEST(DecoderLmTest, PaddingTokensChangeNoRealPosition) {
  for (BackboneConfig config : {Gpt2Reference(), LlamaReference()}) {
    auto model = Build(config);
    torch::NoGradGuard no_grad;
    torch::Tensor a = torch::tensor({{5, 9, 11, 0, 0}}, torch::kInt64);
    torch::Tensor b = torch::tensor({{5, 9, 11, 33, 60}}, torch::kInt64);
    torch::Tensor mask = torch::tensor({{1, 1, 1, 0, 0}}, torch::kInt64);
    EXPECT_TRUE(torch::equal(model->forward(a, mask).narrow(1, 0, 3),
                             model->forward(b, mask).narrow(1, 0, 3)))
        << DecoderLayoutName(config.decoder.layout);
  }
}

TEST(DecoderLmTest, ClassifierReadsTheLastRealToken) {
  BackboneConfig config = Gpt2Reference();
  config.decoder.objective = DecoderObjective::kClassify;
  config.num_classes = 3;
  auto model = Build(config);
  ASSERT_NE(model, nullptr);
  EXPECT_EQ(model->HeadParameters().size(), 2u);
  torch::NoGradGuard no_grad;
  torch::Tensor tokens = torch::tensor({{5, 9, 11, 0}, {5, 9, 0, 0}},
                                       torch::kInt64);
  torch::Tensor mask = torch::tensor({{1, 1, 1, 0}, {1, 1, 0, 0}});
  torch::Tensor logits = model->forward(tokens, mask);
  EXPECT_EQ(logits.sizes(), (std::vector<int64_t>{2, 3}));
  // Row 1 alone, unpadded, gives the same class logits.
  torch::Tensor alone = model->forward(torch::tensor({{5, 9}}, torch::kInt64),
                                       torch::ones({1, 2}));
  EXPECT_TRUE(torch::allclose(logits[1], alone[0], 1e-6, 1e-6));
}

TEST(DecoderLmTest, AdapterLayersCountFromTheTop) {
  BackboneConfig config = LlamaReference();
  config.decoder.layers = 3;
  auto model = Build(config);
  ASSERT_NE(model, nullptr);
  EXPECT_EQ(model->num_adapter_layers(), 3);
  // Seven targets, A and B each.
  std::vector<torch::Tensor> top = model->AdapterParameters(0);
  ASSERT_EQ(top.size(), 14u);
  const auto state = model->named_parameters();
  EXPECT_TRUE(top[0].is_same(state["blocks.2.attn.q.lora_a"]));
  EXPECT_TRUE(model->AdapterParameters(2)[13].is_same(
      state["blocks.0.mlp.down.lora_b"]));
  EXPECT_TRUE(model->HeadParameters().empty());
  // A checkpoint holds the adapters only: no head for a language model.
  for (const auto& [name, tensor] : model->AdapterState()) {
    EXPECT_THAT(name, ::testing::AnyOf(::testing::EndsWith(".lora_a"),
                                       ::testing::EndsWith(".lora_b")));
  }
}

// Trains every adapter group for a few steps on a fixed batch, over the
// reference checkpoint (a seeded base's tiny tied embeddings keep logits
// near zero, which no adapter can lift quickly).
NamedTensors TrainSteps(const BackboneConfig& config, int steps,
                        double* first_loss, double* last_loss) {
  torch::manual_seed(0);  // nothing here may depend on it
  auto model = Build(config);
  const std::string layout = DecoderLayoutName(config.decoder.layout);
  EXPECT_TRUE(LoadHuggingFaceDecoder(
                  *model, ReferenceFiles::Read(layout + ".safetensors"))
                  .ok());
  std::vector<torch::Tensor> params;
  for (int i = 0; i < model->num_adapter_layers(); ++i) {
    for (auto& p : model->AdapterParameters(i)) params.push_back(p);
  }
  model->FreezeAllExcept(params);
  model->train();
  torch::optim::Adam optimizer(params, torch::optim::AdamOptions(5e-2));
  torch::Tensor tokens = torch::tensor(
      {{1, 2, 3, 4, 1, 2, 3, 4, 1, 2}, {7, 8, 9, 7, 8, 9, 7, 8, 0, 0}},
      torch::kInt64);
  torch::Tensor mask = tokens.ne(0).to(torch::kInt64);
  mask[0].fill_(1);
  for (int step = 0; step < steps; ++step) {
    optimizer.zero_grad();
    torch::Tensor loss =
        CausalLmLoss(model->forward(tokens, mask), tokens, mask, {});
    if (step == 0) *first_loss = loss.item<double>();
    *last_loss = loss.item<double>();
    loss.backward();
    optimizer.step();
  }
  return model->AdapterState();
}

TEST(DecoderLmTest, AdaptersLearnAndTrainingIsBitwiseRepeatable) {
  for (BackboneConfig config : {Gpt2Reference(), LlamaReference()}) {
    double first = 0, last = 0, first2 = 0, last2 = 0;
    NamedTensors a = TrainSteps(config, 40, &first, &last);
    NamedTensors b = TrainSteps(config, 40, &first2, &last2);
    EXPECT_LT(last, first * 0.7) << DecoderLayoutName(config.decoder.layout) << " " << first << " -> " << last;
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) {
      EXPECT_EQ(a[i].first, b[i].first);
      EXPECT_TRUE(torch::equal(a[i].second, b[i].second)) << a[i].first;
    }
  }
}

TEST(DecoderLmTest, LossCountsOnlyMarkedRealTargets) {
  torch::Tensor logits = torch::zeros({1, 3, 4});
  logits[0][0][2] = 5;  // predicts token 2 at position 1 well
  torch::Tensor tokens = torch::tensor({{0, 2, 3}}, torch::kInt64);
  torch::Tensor mask = torch::tensor({{1, 1, 0}}, torch::kInt64);
  const double expected =
      -torch::log_softmax(logits[0][0], 0)[2].item<double>();
  EXPECT_NEAR(CausalLmLoss(logits, tokens, mask, {}).item<double>(), expected,
              1e-6);
  // Marking no answer token: nothing counts, zero loss.
  EXPECT_EQ(CausalLmLoss(logits, tokens, mask, torch::zeros({1, 3}))
                .item<double>(),
            0.0);
  torch::Tensor scores = NextTokenLogProbs(logits, tokens, mask);
  EXPECT_EQ(scores.sizes(), (std::vector<int64_t>{1, 2}));
  EXPECT_NEAR(scores[0][0].item<double>(), -expected, 1e-6);
  EXPECT_EQ(scores[0][1].item<double>(), 0.0);  // padding
}

}  // namespace
}  // namespace oubli::ml
