#include "worker/ml/model.h"

#include <ATen/CPUGeneratorImpl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace oubli::ml {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

at::Generator Gen(uint64_t seed) {
  return at::make_generator<at::CPUGeneratorImpl>(seed);
}

torch::Tensor RandomInput(int64_t rows, int64_t cols, uint64_t seed) {
  at::Generator generator = Gen(seed);
  return torch::empty({rows, cols}).uniform_(0.0, 1.0, generator);
}

BackboneConfig SmallMlp() {
  BackboneConfig config;
  config.kind = BackboneKind::kMlp;
  config.mlp_hidden = {32, 24, 16, 12};
  config.lora.rank = 4;
  return config;
}

BackboneConfig SmallVit() {
  BackboneConfig config;
  config.kind = BackboneKind::kVit;
  config.vit_patch = 7;
  config.vit_dim = 16;
  config.vit_depth = 4;
  config.vit_heads = 2;
  config.vit_mlp_dim = 32;
  config.lora.rank = 4;
  return config;
}

std::shared_ptr<AdapterClassifier> Build(const BackboneConfig& config,
                                         uint64_t seed) {
  auto model = BuildClassifier(config, seed);
  EXPECT_TRUE(model.ok()) << model.status();
  return *model;
}

bool BitwiseEqual(const NamedTensors& a, const NamedTensors& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].first != b[i].first) return false;
    const torch::Tensor& x = a[i].second;
    const torch::Tensor& y = b[i].second;
    if (x.sizes() != y.sizes() || x.scalar_type() != y.scalar_type()) {
      return false;
    }
    // Byte comparison: torch::equal would call -0.0 == 0.0 equal.
    if (std::memcmp(x.data_ptr(), y.data_ptr(), x.nbytes()) != 0) {
      return false;
    }
  }
  return true;
}

std::vector<std::string> Names(const NamedTensors& state) {
  std::vector<std::string> names;
  for (const auto& [name, tensor] : state) names.push_back(name);
  return names;
}

// Names of `params` as registered in `model`, by tensor identity.
std::vector<std::string> NamesOf(AdapterClassifier& model,
                                 const std::vector<torch::Tensor>& params) {
  std::map<const c10::TensorImpl*, std::string> by_impl;
  for (const auto& item : model.named_parameters()) {
    by_impl[item.value().unsafeGetTensorImpl()] = item.key();
  }
  std::vector<std::string> names;
  for (const torch::Tensor& p : params) {
    auto it = by_impl.find(p.unsafeGetTensorImpl());
    names.push_back(it == by_impl.end() ? "<not a parameter>" : it->second);
  }
  return names;
}

torch::Tensor Find(const NamedTensors& state, const std::string& name) {
  for (const auto& [n, t] : state) {
    if (n == name) return t;
  }
  ADD_FAILURE() << "no tensor " << name;
  return torch::Tensor();
}

// --- LoraLinear --------------------------------------------------------------

TEST(LoraLinearTest, FreshAdapterEqualsBaseExactly) {
  LoraConfig lora;
  lora.rank = 4;
  LoraLinear layer(12, 7, lora);
  at::Generator base_gen = Gen(1), adapter_gen = Gen(2);
  layer->InitBase(base_gen);
  layer->InitAdapter(adapter_gen);
  EXPECT_TRUE(layer->lora_a.abs().sum().item<float>() > 0);
  EXPECT_TRUE(torch::equal(layer->lora_b, torch::zeros({7, 4})));
  const torch::Tensor x = RandomInput(5, 12, 3);
  torch::Tensor expected = torch::linear(x, layer->weight, layer->bias);
  EXPECT_TRUE(torch::equal(layer->forward(x), expected));
}

TEST(LoraLinearTest, ParametersAndInitBounds) {
  LoraConfig lora;
  lora.rank = 3;
  LoraLinear layer(16, 5, lora);
  std::map<std::string, bool> requires_grad;
  for (const auto& item : layer->named_parameters()) {
    requires_grad[item.key()] = item.value().requires_grad();
  }
  EXPECT_EQ(requires_grad, (std::map<std::string, bool>{{"bias", false},
                                                         {"lora_a", true},
                                                         {"lora_b", true},
                                                         {"weight", false}}));
  at::Generator gen = Gen(5);
  layer->InitBase(gen);
  layer->InitAdapter(gen);
  // U(-1/sqrt(in), 1/sqrt(in)) with in = 16.
  EXPECT_LE(layer->weight.abs().max().item<float>(), 0.25f);
  EXPECT_LE(layer->lora_a.abs().max().item<float>(), 0.25f);
  EXPECT_GT(layer->lora_a.abs().max().item<float>(), 0.1f);
  EXPECT_EQ(layer->lora_a.sizes(), (std::vector<int64_t>{3, 16}));
  EXPECT_EQ(layer->lora_b.sizes(), (std::vector<int64_t>{5, 3}));
}

// With A = B = I the adapter adds exactly scaling * x.
double MeasuredScaling(const LoraConfig& lora) {
  LoraLinear layer(4, 4, lora);
  {
    torch::NoGradGuard no_grad;
    layer->lora_a.copy_(torch::eye(4));
    layer->lora_b.copy_(torch::eye(4));
  }
  const torch::Tensor x = torch::ones({1, 4});
  torch::Tensor base = torch::linear(x, layer->weight, layer->bias);
  return (layer->forward(x) - base)[0][0].item<double>();
}

TEST(LoraLinearTest, ScalingPlainVersusRslora) {
  LoraConfig lora;
  lora.rank = 4;
  lora.alpha = 8;
  EXPECT_DOUBLE_EQ(MeasuredScaling(lora), 2.0);  // alpha / r
  lora.rslora = true;
  EXPECT_DOUBLE_EQ(MeasuredScaling(lora), 4.0);  // alpha / sqrt(r)
}

class DropoutTest : public ::testing::Test {
 protected:
  DropoutTest() : layer_(nullptr) {
    LoraConfig lora;
    lora.rank = 4;
    lora.dropout = 0.5;
    layer_ = LoraLinear(32, 8, lora);
    at::Generator gen = Gen(11);
    layer_->InitBase(gen);
    layer_->InitAdapter(gen);
    torch::NoGradGuard no_grad;
    layer_->lora_b.uniform_(-1, 1, gen);  // make the adapter matter
    x_ = RandomInput(6, 32, 12);
  }
  torch::Tensor Run(std::optional<uint64_t> seed, bool training) {
    at::Generator gen = Gen(seed.value_or(0));
    layer_->set_dropout_generator(seed ? &gen : nullptr);
    layer_->train(training);
    torch::Tensor out = layer_->forward(x_);
    layer_->set_dropout_generator(nullptr);
    return out;
  }
  LoraLinear layer_;
  torch::Tensor x_;
};

TEST_F(DropoutTest, SameGeneratorSeedReproduces) {
  torch::Tensor a = Run(42, true), b = Run(42, true);
  EXPECT_TRUE(torch::equal(a, b));
  EXPECT_FALSE(torch::equal(a, Run(43, true)));
  EXPECT_FALSE(torch::equal(a, Run(std::nullopt, false)));
}

TEST_F(DropoutTest, NoGeneratorOrEvalModeIsNoOp) {
  torch::Tensor reference = Run(std::nullopt, false);
  EXPECT_TRUE(torch::equal(Run(std::nullopt, true), reference));
  EXPECT_TRUE(torch::equal(Run(42, false), reference));
}

TEST_F(DropoutTest, DoesNotTouchGlobalRng) {
  torch::manual_seed(123);
  torch::Tensor expected = torch::rand({4});
  torch::manual_seed(123);
  Run(42, true);
  EXPECT_TRUE(torch::equal(torch::rand({4}), expected));
}

// --- Classifiers ------------------------------------------------------------

class ClassifierTest : public ::testing::TestWithParam<BackboneKind> {
 protected:
  BackboneConfig Config() const {
    return GetParam() == BackboneKind::kMlp ? SmallMlp() : SmallVit();
  }
};

TEST_P(ClassifierTest, ForwardShapeOn28x28x1) {
  auto model = Build(Config(), 1);
  torch::Tensor logits = model->forward(RandomInput(5, 28 * 28, 2));
  EXPECT_EQ(logits.sizes(), (std::vector<int64_t>{5, 10}));
  EXPECT_TRUE(torch::isfinite(logits).all().item<bool>());
  EXPECT_EQ(model->num_adapter_layers(), 4);
}

TEST_P(ClassifierTest, ForwardRejectsWrongInputShape) {
  auto model = Build(Config(), 1);
  EXPECT_THROW(model->forward(torch::zeros({2, 100})), c10::Error);
  EXPECT_THROW(model->forward(torch::zeros({784})), c10::Error);
}

TEST_P(ClassifierTest, FreshAdaptersDoNotChangeOutput) {
  auto model = Build(Config(), 1);
  torch::Tensor x = RandomInput(3, 784, 2);
  torch::Tensor before = model->forward(x);
  model->InitAdapters(99);  // new A, B = 0
  EXPECT_TRUE(torch::equal(model->forward(x), before));
}

TEST_P(ClassifierTest, SameSeedIsBitwiseIdentical) {
  auto a = Build(Config(), 7);
  auto b = Build(Config(), 7);
  EXPECT_TRUE(BitwiseEqual(a->AdapterState(), b->AdapterState()));
  EXPECT_TRUE(BitwiseEqual(a->BaseState(), b->BaseState()));
  torch::Tensor x = RandomInput(4, 784, 3);
  EXPECT_TRUE(torch::equal(a->forward(x), b->forward(x)));
}

TEST_P(ClassifierTest, DifferentSeedDiffers) {
  auto a = Build(Config(), 7);
  auto b = Build(Config(), 8);
  EXPECT_FALSE(BitwiseEqual(a->AdapterState(), b->AdapterState()));
  EXPECT_FALSE(BitwiseEqual(a->BaseState(), b->BaseState()));
  // Every randomly initialised tensor differs, not just some.
  NamedTensors base_a = a->BaseState(), base_b = b->BaseState();
  for (size_t i = 0; i < base_a.size(); ++i) {
    const std::string& name = base_a[i].first;
    if (name.find("norm") != std::string::npos) continue;  // ones/zeros
    EXPECT_FALSE(torch::equal(base_a[i].second, base_b[i].second)) << name;
  }
}

TEST_P(ClassifierTest, AddingALayerDoesNotShiftOthers) {
  BackboneConfig config = Config();
  BackboneConfig deeper = config;
  if (GetParam() == BackboneKind::kMlp) {
    deeper.mlp_hidden.push_back(12);
  } else {
    deeper.vit_depth += 1;
  }
  NamedTensors small = Build(config, 5)->BaseState();
  NamedTensors big = Build(deeper, 5)->BaseState();
  std::map<std::string, torch::Tensor> big_by_name(big.begin(), big.end());
  for (const auto& [name, tensor] : small) {
    if (name.rfind("head.", 0) == 0) continue;  // its input width may change
    ASSERT_TRUE(big_by_name.contains(name)) << name;
    EXPECT_TRUE(torch::equal(tensor, big_by_name[name])) << name;
  }
}

TEST_P(ClassifierTest, InitAdaptersLeavesBaseUnchanged) {
  auto model = Build(Config(), 3);
  NamedTensors base = model->BaseState();
  NamedTensors adapters = model->AdapterState();
  model->InitAdapters(1234);
  EXPECT_TRUE(BitwiseEqual(model->BaseState(), base));
  NamedTensors new_adapters = model->AdapterState();
  for (size_t i = 0; i < adapters.size(); ++i) {
    const std::string& name = new_adapters[i].first;
    if (name.ends_with(".lora_a")) {
      EXPECT_FALSE(torch::equal(new_adapters[i].second, adapters[i].second))
          << name;
    } else if (name.ends_with(".lora_b")) {
      EXPECT_EQ(new_adapters[i].second.abs().sum().item<float>(), 0.0f);
    }
  }
}

TEST_P(ClassifierTest, StatesAreSortedCopies) {
  auto model = Build(Config(), 3);
  for (const NamedTensors& state : {model->AdapterState(), model->BaseState()}) {
    std::vector<std::string> names = Names(state);
    EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
    EXPECT_EQ(std::set<std::string>(names.begin(), names.end()).size(),
              names.size());
    for (const auto& [name, tensor] : state) {
      EXPECT_TRUE(tensor.is_contiguous()) << name;
      EXPECT_FALSE(tensor.requires_grad()) << name;
      EXPECT_EQ(tensor.scalar_type(), torch::kFloat32) << name;
    }
  }
  // Mutating the model must not change a state taken earlier.
  NamedTensors before = model->AdapterState();
  NamedTensors copy;
  for (const auto& [name, tensor] : before) copy.emplace_back(name, tensor.clone());
  {
    torch::NoGradGuard no_grad;
    for (torch::Tensor& p : model->HeadParameters()) p.add_(1.0);
  }
  EXPECT_TRUE(BitwiseEqual(before, copy));
}

TEST_P(ClassifierTest, ParameterPartitionsMatchStates) {
  auto model = Build(Config(), 3);
  std::set<std::string> adapter_names;
  for (int i = 0; i < model->num_adapter_layers(); ++i) {
    for (const std::string& name : NamesOf(*model, model->AdapterParameters(i))) {
      EXPECT_TRUE(adapter_names.insert(name).second) << name;
    }
  }
  std::vector<std::string> head = NamesOf(*model, model->HeadParameters());
  EXPECT_THAT(head,
              ::testing::UnorderedElementsAre("head.weight", "head.bias"));
  std::set<std::string> adapter_state_names = adapter_names;
  adapter_state_names.insert(head.begin(), head.end());
  std::vector<std::string> state_names = Names(model->AdapterState());
  EXPECT_EQ(std::set<std::string>(state_names.begin(), state_names.end()),
            adapter_state_names);

  std::vector<std::string> base = NamesOf(*model, model->BaseParameters());
  std::vector<std::string> base_state = Names(model->BaseState());
  EXPECT_EQ(std::set<std::string>(base.begin(), base.end()),
            std::set<std::string>(base_state.begin(), base_state.end()));
  EXPECT_EQ(base.size(), base_state.size());
  // Every parameter is an adapter or base (head in both).
  EXPECT_EQ(model->parameters().size(),
            adapter_names.size() + base_state.size());
}

INSTANTIATE_TEST_SUITE_P(Backbones, ClassifierTest,
                         ::testing::Values(BackboneKind::kMlp,
                                           BackboneKind::kVit),
                         [](const auto& info) {
                           return info.param == BackboneKind::kMlp
                                      ? std::string("Mlp")
                                      : std::string("Vit");
                         });

TEST(MlpClassifierTest, AdapterParametersCountFromTheTop) {
  BackboneConfig config = SmallMlp();  // hidden 32, 24, 16, 12; rank 4
  auto model = Build(config, 1);
  EXPECT_THAT(NamesOf(*model, model->AdapterParameters(0)),
              ElementsAre("layers.3.lora_a", "layers.3.lora_b"));
  EXPECT_THAT(NamesOf(*model, model->AdapterParameters(3)),
              ElementsAre("layers.0.lora_a", "layers.0.lora_b"));
  std::vector<torch::Tensor> top = model->AdapterParameters(0);
  EXPECT_EQ(top[0].sizes(), (std::vector<int64_t>{4, 16}));
  EXPECT_EQ(top[1].sizes(), (std::vector<int64_t>{12, 4}));
  std::vector<torch::Tensor> bottom = model->AdapterParameters(3);
  EXPECT_EQ(bottom[0].sizes(), (std::vector<int64_t>{4, 784}));
  EXPECT_EQ(bottom[1].sizes(), (std::vector<int64_t>{32, 4}));
  EXPECT_THAT(Names(model->AdapterState()),
              ElementsAre("head.bias", "head.weight", "layers.0.lora_a",
                          "layers.0.lora_b", "layers.1.lora_a",
                          "layers.1.lora_b", "layers.2.lora_a",
                          "layers.2.lora_b", "layers.3.lora_a",
                          "layers.3.lora_b"));
  EXPECT_THAT(Names(model->BaseState()),
              ElementsAre("head.bias", "head.weight", "layers.0.bias",
                          "layers.0.weight", "layers.1.bias",
                          "layers.1.weight", "layers.2.bias",
                          "layers.2.weight", "layers.3.bias",
                          "layers.3.weight"));
  EXPECT_EQ(Find(model->AdapterState(), "head.weight").sizes(),
            (std::vector<int64_t>{10, 12}));
}

TEST(VitClassifierTest, AdapterParametersCountFromTheTop) {
  auto model = Build(SmallVit(), 1);  // dim 16, rank 4, depth 4
  EXPECT_THAT(NamesOf(*model, model->AdapterParameters(0)),
              ElementsAre("blocks.3.attn.q.lora_a", "blocks.3.attn.q.lora_b",
                          "blocks.3.attn.v.lora_a", "blocks.3.attn.v.lora_b"));
  EXPECT_THAT(NamesOf(*model, model->AdapterParameters(3)),
              ElementsAre("blocks.0.attn.q.lora_a", "blocks.0.attn.q.lora_b",
                          "blocks.0.attn.v.lora_a", "blocks.0.attn.v.lora_b"));
  for (const torch::Tensor& t : model->AdapterParameters(1)) {
    EXPECT_EQ(t.numel(), 4 * 16);
  }
  std::vector<std::string> base = Names(model->BaseState());
  for (const char* name :
       {"cls_token", "pos_embed", "patch_embed.weight", "norm.weight",
        "blocks.0.norm1.weight", "blocks.0.attn.q.weight",
        "blocks.0.attn.k.weight", "blocks.0.attn.v.bias",
        "blocks.0.attn.o.weight", "blocks.0.norm2.bias",
        "blocks.0.mlp.fc1.weight", "blocks.0.mlp.fc2.bias", "head.weight"}) {
    EXPECT_THAT(base, ::testing::Contains(name));
  }
  NamedTensors state = model->BaseState();
  EXPECT_EQ(Find(state, "pos_embed").sizes(),
            (std::vector<int64_t>{1, 17, 16}));  // 16 patches + cls
  EXPECT_EQ(Find(state, "patch_embed.weight").sizes(),
            (std::vector<int64_t>{16, 49}));
  EXPECT_EQ(Find(state, "blocks.2.mlp.fc1.weight").sizes(),
            (std::vector<int64_t>{32, 16}));
}

// A few Adam steps on group 0 + head must leave everything else bitwise
// unchanged, and frozen tensors must not even get gradients.
TEST_P(ClassifierTest, TrainingOneGroupLeavesOthersUntouched) {
  auto model = Build(Config(), 21);
  model->InitAdapters(22);
  NamedTensors base_before = model->BaseState();
  NamedTensors adapters_before = model->AdapterState();

  std::vector<torch::Tensor> trainable = model->AdapterParameters(0);
  for (const torch::Tensor& p : model->HeadParameters()) trainable.push_back(p);
  model->FreezeAllExcept(trainable);
  std::set<const c10::TensorImpl*> trainable_impls;
  for (const auto& p : trainable) trainable_impls.insert(p.unsafeGetTensorImpl());
  for (const torch::Tensor& p : model->parameters()) {
    EXPECT_EQ(p.requires_grad(), trainable_impls.contains(p.unsafeGetTensorImpl()));
  }

  torch::optim::Adam optimizer(trainable, torch::optim::AdamOptions(1e-2));
  torch::Tensor x = RandomInput(16, 784, 23);
  torch::Tensor labels = torch::arange(16, torch::kLong) % 10;
  model->train();
  for (int step = 0; step < 3; ++step) {
    optimizer.zero_grad();
    torch::Tensor loss =
        torch::nn::functional::cross_entropy(model->forward(x), labels);
    loss.backward();
    optimizer.step();
  }
  for (const torch::Tensor& p : model->parameters()) {
    if (!trainable_impls.contains(p.unsafeGetTensorImpl())) {
      EXPECT_FALSE(p.grad().defined());
    }
  }

  // Head is in both states; compare base without it.
  NamedTensors base_after = model->BaseState();
  for (size_t i = 0; i < base_after.size(); ++i) {
    const std::string& name = base_after[i].first;
    const bool changed =
        !torch::equal(base_after[i].second, base_before[i].second);
    EXPECT_EQ(changed, name.rfind("head.", 0) == 0) << name;
  }
  std::vector<std::string> group0 = NamesOf(*model, model->AdapterParameters(0));
  NamedTensors adapters_after = model->AdapterState();
  for (size_t i = 0; i < adapters_after.size(); ++i) {
    const std::string& name = adapters_after[i].first;
    const bool changed =
        !torch::equal(adapters_after[i].second, adapters_before[i].second);
    const bool in_group0 =
        std::find(group0.begin(), group0.end(), name) != group0.end();
    if (in_group0 || name.rfind("head.", 0) == 0) {
      EXPECT_TRUE(changed) << name;
    } else {
      EXPECT_FALSE(changed) << name;
    }
  }
}

// Same seeds -> bitwise-identical training, with LoRA dropout active.
NamedTensors TrainWithDropout(BackboneConfig config, uint64_t dropout_seed) {
  config.lora.dropout = 0.25;
  auto model = Build(config, 31);
  at::Generator dropout_gen = Gen(dropout_seed);
  model->SetDropoutGenerator(&dropout_gen);
  std::vector<torch::Tensor> trainable = model->AdapterParameters(1);
  for (const torch::Tensor& p : model->HeadParameters()) trainable.push_back(p);
  model->FreezeAllExcept(trainable);
  torch::optim::Adam optimizer(trainable, torch::optim::AdamOptions(1e-2));
  torch::Tensor x = RandomInput(8, 784, 5);
  torch::Tensor labels = torch::arange(8, torch::kLong) % 10;
  model->train();
  for (int step = 0; step < 3; ++step) {
    optimizer.zero_grad();
    torch::nn::functional::cross_entropy(model->forward(x), labels).backward();
    optimizer.step();
  }
  model->SetDropoutGenerator(nullptr);
  return model->AdapterState();
}

TEST_P(ClassifierTest, TrainingIsReproducible) {
  NamedTensors first = TrainWithDropout(Config(), 77);
  EXPECT_TRUE(BitwiseEqual(first, TrainWithDropout(Config(), 77)));
  EXPECT_FALSE(BitwiseEqual(first, TrainWithDropout(Config(), 78)));
}

// Sanity check that the backbones are wired so gradients flow: training the
// top group and head on a tiny batch lowers the loss.
TEST_P(ClassifierTest, TrainingLowersLoss) {
  auto model = Build(Config(), 41);
  model->InitAdapters(42);
  std::vector<torch::Tensor> trainable = model->AdapterParameters(0);
  for (const torch::Tensor& p : model->HeadParameters()) trainable.push_back(p);
  model->FreezeAllExcept(trainable);
  torch::optim::Adam optimizer(trainable, torch::optim::AdamOptions(3e-2));
  torch::Tensor x = RandomInput(20, 784, 43) * 2 - 1;  // centered: distinct features
  torch::Tensor labels = torch::arange(20, torch::kLong) % 10;
  model->train();
  double first_loss = 0, last_loss = 0;
  for (int step = 0; step < 40; ++step) {
    optimizer.zero_grad();
    torch::Tensor loss =
        torch::nn::functional::cross_entropy(model->forward(x), labels);
    loss.backward();
    optimizer.step();
    (step == 0 ? first_loss : last_loss) = loss.item<double>();
  }
  EXPECT_LT(last_loss, 0.7 * first_loss);
}

TEST_P(ClassifierTest, LoadStatesRoundTrip) {
  auto source = Build(Config(), 1);
  source->InitAdapters(2);
  {
    torch::NoGradGuard no_grad;
    for (torch::Tensor& p : source->AdapterParameters(0)) p.add_(0.5);
  }
  auto target = Build(Config(), 3);
  ASSERT_TRUE(target->LoadBaseState(source->BaseState()).ok());
  ASSERT_TRUE(target->LoadAdapterState(source->AdapterState()).ok());
  EXPECT_TRUE(BitwiseEqual(target->BaseState(), source->BaseState()));
  EXPECT_TRUE(BitwiseEqual(target->AdapterState(), source->AdapterState()));
  torch::Tensor x = RandomInput(2, 784, 4);
  EXPECT_TRUE(torch::equal(target->forward(x), source->forward(x)));
  // Loading keeps tensor identity: a parameter list taken before still works.
  EXPECT_TRUE(torch::equal(target->AdapterParameters(0)[0],
                           source->AdapterParameters(0)[0]));
}

TEST_P(ClassifierTest, LoadRejectsWrongNamesAndShapes) {
  auto model = Build(Config(), 1);
  const NamedTensors good = model->AdapterState();
  const NamedTensors base_before = model->BaseState();

  NamedTensors missing(good.begin() + 1, good.end());
  absl::Status status = model->LoadAdapterState(missing);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("missing tensor '" + good[0].first));

  NamedTensors unexpected = good;
  unexpected.emplace_back("zzz.extra", torch::zeros({2, 3}));
  status = model->LoadAdapterState(unexpected);
  EXPECT_THAT(status.message(),
              HasSubstr("unexpected tensor 'zzz.extra' with shape [2, 3]"));

  NamedTensors renamed = good;
  renamed[0].first = "head.weights";
  status = model->LoadAdapterState(renamed);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);

  NamedTensors wrong_shape = good;
  wrong_shape.back().second = torch::zeros({3, 3});
  status = model->LoadAdapterState(wrong_shape);
  EXPECT_THAT(status.message(), HasSubstr("'" + good.back().first +
                                          "' has shape [3, 3], expected ["));

  NamedTensors duplicate = good;
  duplicate.push_back(good[0]);
  EXPECT_THAT(model->LoadAdapterState(duplicate).message(),
              HasSubstr("duplicate tensor"));

  NamedTensors integer = good;
  integer[0].second = integer[0].second.to(torch::kInt64);
  EXPECT_THAT(model->LoadAdapterState(integer).message(),
              HasSubstr("non-floating dtype"));

  // Adapter state is not a base state, and vice versa.
  EXPECT_FALSE(model->LoadBaseState(good).ok());
  EXPECT_FALSE(model->LoadAdapterState(base_before).ok());

  // Failed loads are all-or-nothing.
  NamedTensors partly_bad = model->BaseState();
  for (auto& [name, tensor] : partly_bad) tensor = tensor + 1;
  partly_bad.back().second = torch::zeros({1});
  EXPECT_FALSE(model->LoadBaseState(partly_bad).ok());
  EXPECT_TRUE(BitwiseEqual(model->BaseState(), base_before));
}

TEST(BuildClassifierTest, RejectsBadConfigs) {
  BackboneConfig config = SmallVit();
  config.vit_patch = 5;  // does not divide 28
  auto model = BuildClassifier(config, 1);
  EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(model.status().message(), HasSubstr("vit_patch 5"));

  config = SmallVit();
  config.vit_heads = 3;
  EXPECT_THAT(BuildClassifier(config, 1).status().message(),
              HasSubstr("multiple of vit_heads"));

  config = SmallMlp();
  config.mlp_hidden = {};
  EXPECT_THAT(BuildClassifier(config, 1).status().message(),
              HasSubstr("mlp_hidden"));
  config.mlp_hidden = {8, 0};
  EXPECT_FALSE(BuildClassifier(config, 1).ok());

  config = SmallMlp();
  config.lora.rank = 0;
  EXPECT_THAT(BuildClassifier(config, 1).status().message(),
              HasSubstr("lora.rank"));
  config = SmallMlp();
  config.lora.dropout = 1.0;
  EXPECT_FALSE(BuildClassifier(config, 1).ok());
  config = SmallMlp();
  config.input_height = 0;
  EXPECT_FALSE(BuildClassifier(config, 1).ok());
  config = SmallMlp();
  config.kind = static_cast<BackboneKind>(7);
  EXPECT_THAT(BuildClassifier(config, 1).status().message(),
              HasSubstr("unknown backbone kind"));
  config = SmallMlp();
  config.input_channels = 1 << 20;  // ~2.6e10 parameters
  config.mlp_hidden = {1024};
  EXPECT_THAT(BuildClassifier(config, 1).status().message(),
              HasSubstr("parameters"));
}

TEST(BuildClassifierTest, DefaultConfigsBuild) {
  BackboneConfig mlp;
  EXPECT_TRUE(BuildClassifier(mlp, 1).ok());
  BackboneConfig vit;
  vit.kind = BackboneKind::kVit;
  auto model = BuildClassifier(vit, 1);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->forward(torch::zeros({1, 784})).sizes(),
            (std::vector<int64_t>{1, 10}));
}

TEST(AdapterGroupsTest, ContiguousFromTheTopLargerFirst) {
  using Groups = std::vector<std::vector<int>>;
  EXPECT_EQ(AdapterGroups(4, 4), (Groups{{0}, {1}, {2}, {3}}));
  EXPECT_EQ(AdapterGroups(5, 2), (Groups{{0, 1, 2}, {3, 4}}));
  EXPECT_EQ(AdapterGroups(6, 4), (Groups{{0, 1}, {2, 3}, {4}, {5}}));
  EXPECT_EQ(AdapterGroups(4, 1), (Groups{{0, 1, 2, 3}}));
  EXPECT_EQ(AdapterGroups(7, 3), (Groups{{0, 1, 2}, {3, 4}, {5, 6}}));
  EXPECT_EQ(AdapterGroups(3, 0), Groups{});
}

TEST(AdapterGroupsTest, CoversEveryLayerOnce) {
  for (int layers = 1; layers <= 12; ++layers) {
    for (int groups = 1; groups <= layers; ++groups) {
      auto result = AdapterGroups(layers, groups);
      ASSERT_EQ(static_cast<int>(result.size()), groups);
      int next = 0;
      size_t largest = 0, smallest = layers;
      for (const auto& group : result) {
        largest = std::max(largest, group.size());
        smallest = std::min(smallest, group.size());
        for (int layer : group) EXPECT_EQ(layer, next++);
      }
      EXPECT_EQ(next, layers);
      EXPECT_LE(largest - smallest, 1u);
      EXPECT_GE(smallest, 1u);
    }
  }
}

}  // namespace
}  // namespace oubli::ml
