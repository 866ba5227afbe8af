#include "worker/ml/adapter_model.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <exception>
#include <map>
#include <unordered_set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/hash.h"

namespace oubli::ml {
namespace {

// Parameters are named after their module path, e.g. "layers.0.lora_a",
// "blocks.3.attn.q.lora_b", "head.weight". These predicates classify them.
bool IsAdapterName(absl::string_view name) {
  return absl::EndsWith(name, ".lora_a") || absl::EndsWith(name, ".lora_b");
}
bool IsHeadName(absl::string_view name) {
  return absl::StartsWith(name, "head.");
}
bool IsCheckpointName(const std::string& name) {
  return IsAdapterName(name) || IsHeadName(name);
}
bool IsBaseName(const std::string& name) { return !IsAdapterName(name); }

// Parameters whose name satisfies `keep`, detached copies, sorted by name.
template <typename Predicate>
NamedTensors CollectState(const torch::nn::Module& module, Predicate keep) {
  NamedTensors state;
  for (const auto& item : module.named_parameters(/*recurse=*/true)) {
    if (!keep(item.key())) continue;
    // A copy, not a view: a checkpoint must not change when training
    // continues in place.
    state.emplace_back(item.key(), item.value()
                                       .detach()
                                       .to(torch::kCPU)
                                       .clone(at::MemoryFormat::Contiguous));
  }
  std::sort(state.begin(), state.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  return state;
}

// All-or-nothing: validates names, shapes and dtypes of `state` against the
// parameters selected by `keep` before copying anything.
template <typename Predicate>
absl::Status LoadState(torch::nn::Module& module, Predicate keep,
                       const NamedTensors& state, absl::string_view what) {
  std::map<std::string, torch::Tensor> expected;
  for (const auto& item : module.named_parameters(/*recurse=*/true)) {
    if (keep(item.key())) expected.emplace(item.key(), item.value());
  }
  std::map<std::string, const torch::Tensor*> given;
  for (const auto& [name, tensor] : state) {
    if (!given.emplace(name, &tensor).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": duplicate tensor '", name, "'"));
    }
  }
  for (const auto& [name, tensor] : expected) {
    if (!given.contains(name)) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": missing tensor '", name, "' (expected shape ",
                       ShapeString(tensor), "); got ", given.size(),
                       " tensors, expected ", expected.size()));
    }
  }
  for (const auto& [name, tensor] : given) {
    if (!expected.contains(name)) {
      return absl::InvalidArgumentError(absl::StrCat(
          what, ": unexpected tensor '", name, "'",
          tensor->defined() ? absl::StrCat(" with shape ", ShapeString(*tensor))
                            : std::string(" (undefined)")));
    }
  }
  for (const auto& [name, target] : expected) {
    const torch::Tensor& source = *given.at(name);
    if (!source.defined()) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": tensor '", name, "' is undefined"));
    }
    if (source.sizes() != target.sizes()) {
      return absl::InvalidArgumentError(absl::StrCat(
          what, ": tensor '", name, "' has shape ", ShapeString(source),
          ", expected ", ShapeString(target)));
    }
    // Floating values convert exactly or by IEEE rounding (deterministic);
    // integer or bool data here means the wrong file.
    if (!torch::isFloatingType(source.scalar_type())) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": tensor '", name, "' has non-floating dtype ",
                       c10::toString(source.scalar_type())));
    }
  }
  try {
    torch::NoGradGuard no_grad;
    for (auto& [name, target] : expected) target.copy_(*given.at(name));
  } catch (const std::exception& e) {
    return absl::InternalError(
        absl::StrCat(what, ": copying tensors failed: ", e.what()));
  }
  return absl::OkStatus();
}

double FanInBound(const torch::Tensor& weight) {
  // kaiming_uniform(a = sqrt(5)) reduces to U(-1/sqrt(in), 1/sqrt(in)).
  return 1.0 / std::sqrt(static_cast<double>(weight.size(1)));
}

}  // namespace

at::Generator MakeModuleGenerator(uint64_t seed, absl::string_view purpose,
                                  absl::string_view module_name) {
  // CPUGeneratorImpl seeds mt19937 from the low 32 bits only, so seeds must
  // be well mixed (DeriveSeed output is).
  return at::make_generator<at::CPUGeneratorImpl>(
      DeriveSeed(seed, absl::StrCat(purpose, ":", module_name), {}));
}

// Only uniform_ is used for random init: ATen's CPU uniform kernel is a
// serial scalar loop, so its output does not depend on the CPU's vector
// capability (normal_ and bernoulli_ have vectorized/MKL paths that might).
// A tensor on a GPU is filled on the CPU and copied, so seeded values are
// the same on every device (and a CPU generator can fill it at all).
void FillUniform(torch::Tensor& tensor, double bound,
                 at::Generator& generator) {
  if (tensor.is_cpu()) {
    tensor.uniform_(-bound, bound, generator);
    return;
  }
  torch::Tensor values =
      torch::empty(tensor.sizes(), tensor.options().device(torch::kCPU));
  values.uniform_(-bound, bound, generator);
  tensor.copy_(values);
}

std::string ShapeString(const torch::Tensor& tensor) {
  return absl::StrCat("[", absl::StrJoin(tensor.sizes(), ", "), "]");
}

// ---------------------------------------------------------------------------
// LoraLinearImpl

LoraLinearImpl::LoraLinearImpl(int64_t in_features, int64_t out_features,
                               const LoraConfig& lora, bool has_bias)
    : scaling_(lora.rslora ? lora.alpha / std::sqrt(double{1.0} * lora.rank)
                           : lora.alpha / lora.rank),
      dropout_(lora.dropout) {
  TORCH_CHECK(in_features > 0 && out_features > 0 && lora.rank > 0,
              "LoraLinear needs positive dimensions, got in=", in_features,
              " out=", out_features, " rank=", lora.rank);
  // Zeros (not empty) so an un-initialised module is still deterministic.
  weight = register_parameter("weight",
                              torch::zeros({out_features, in_features}), false);
  if (has_bias) {
    bias = register_parameter("bias", torch::zeros({out_features}), false);
  }
  lora_a = register_parameter("lora_a", torch::zeros({lora.rank, in_features}));
  lora_b =
      register_parameter("lora_b", torch::zeros({out_features, lora.rank}));
}

torch::Tensor LoraLinearImpl::forward(const torch::Tensor& x) {
  torch::Tensor adapter_input = x;
  if (is_training() && dropout_ > 0 && dropout_generator_ != nullptr) {
    const double keep = 1.0 - dropout_;
    // Bernoulli(keep) mask from uniform_ (a serial kernel, identical on
    // every CPU) rather than bernoulli_, which may route through MKL. Drawn
    // on the CPU (the generator's device) for inputs on a GPU too.
    torch::Tensor uniform = torch::empty(
        x.sizes(), x.options().device(torch::kCPU).requires_grad(false));
    uniform.uniform_(0.0, 1.0, *dropout_generator_);
    torch::Tensor mask = uniform.lt(keep).to(x.device(), x.scalar_type());
    adapter_input = x * mask * (1.0 / keep);
  }
  torch::Tensor update =
      torch::linear(torch::linear(adapter_input, lora_a), lora_b);
  return torch::linear(x, weight, bias) + scaling_ * update;
}

void LoraLinearImpl::InitBase(at::Generator& generator) {
  torch::NoGradGuard no_grad;
  const double bound = FanInBound(weight);
  FillUniform(weight, bound, generator);
  if (bias.defined()) FillUniform(bias, bound, generator);
}

void LoraLinearImpl::InitAdapter(at::Generator& generator) {
  torch::NoGradGuard no_grad;
  FillUniform(lora_a, FanInBound(lora_a), generator);
  lora_b.zero_();
}

// ---------------------------------------------------------------------------
// DenseImpl, LayerNormImpl

DenseImpl::DenseImpl(int64_t in_features, int64_t out_features, bool trainable,
                     bool has_bias) {
  TORCH_CHECK(in_features > 0 && out_features > 0,
              "dense layer dimensions must be positive, got in=", in_features,
              " out=", out_features);
  weight = register_parameter(
      "weight", torch::zeros({out_features, in_features}), trainable);
  if (has_bias) {
    bias = register_parameter("bias", torch::zeros({out_features}), trainable);
  }
}

void DenseImpl::Init(at::Generator& generator) {
  torch::NoGradGuard no_grad;
  const double bound = FanInBound(weight);
  FillUniform(weight, bound, generator);
  if (bias.defined()) FillUniform(bias, bound, generator);
}

LayerNormImpl::LayerNormImpl(int64_t dim, double eps) : dim_(dim), eps_(eps) {
  weight = register_parameter("weight", torch::ones({dim}), false);
  bias = register_parameter("bias", torch::zeros({dim}), false);
}

void LayerNormImpl::Init() {
  torch::NoGradGuard no_grad;
  weight.fill_(1.0);
  bias.zero_();
}

// ---------------------------------------------------------------------------
// AdapterModel

std::vector<torch::Tensor> AdapterModel::BaseParameters() {
  std::vector<torch::Tensor> params;
  for (const auto& item : named_parameters(/*recurse=*/true)) {
    if (IsBaseName(item.key())) params.push_back(item.value());
  }
  return params;
}

NamedTensors AdapterModel::AdapterState() {
  return CollectState(*this, IsCheckpointName);
}

absl::Status AdapterModel::LoadAdapterState(const NamedTensors& state) {
  return LoadState(*this, IsCheckpointName, state, "LoadAdapterState");
}

NamedTensors AdapterModel::BaseState() {
  return CollectState(*this, IsBaseName);
}

absl::Status AdapterModel::LoadBaseState(const NamedTensors& state) {
  return LoadState(*this, IsBaseName, state, "LoadBaseState");
}

void AdapterModel::InitBase(uint64_t seed) {
  for (const auto& item : named_modules("", /*include_self=*/false)) {
    const std::string& name = item.key();
    torch::nn::Module& module = *item.value();
    if (auto* lora = module.as<LoraLinearImpl>()) {
      at::Generator generator = MakeModuleGenerator(seed, "base", name);
      lora->InitBase(generator);
    } else if (auto* dense = module.as<DenseImpl>()) {
      at::Generator generator = MakeModuleGenerator(seed, "base", name);
      dense->Init(generator);
    } else if (auto* norm = module.as<LayerNormImpl>()) {
      norm->Init();
    }
  }
  InitExtraBase(seed);
}

void AdapterModel::InitAdapters(uint64_t seed) {
  for (const auto& item : named_modules("", /*include_self=*/false)) {
    if (auto* lora = item.value()->as<LoraLinearImpl>()) {
      at::Generator generator =
          MakeModuleGenerator(seed, "adapter", item.key());
      lora->InitAdapter(generator);
    }
  }
}

void AdapterModel::SetDropoutGenerator(at::Generator* generator) {
  for (const auto& module : modules(/*include_self=*/false)) {
    if (auto* lora = module->as<LoraLinearImpl>()) {
      lora->set_dropout_generator(generator);
    }
  }
}

void AdapterModel::FreezeAllExcept(const std::vector<torch::Tensor>& params) {
  std::unordered_set<const c10::TensorImpl*> trainable;
  for (const torch::Tensor& p : params) {
    if (p.defined()) trainable.insert(p.unsafeGetTensorImpl());
  }
  for (torch::Tensor& p : parameters(/*recurse=*/true)) {
    p.set_requires_grad(trainable.contains(p.unsafeGetTensorImpl()));
  }
}

std::vector<std::vector<int>> AdapterGroups(int num_layers, int num_groups) {
  std::vector<std::vector<int>> groups;
  if (num_layers < 0 || num_groups <= 0) return groups;
  groups.resize(num_groups);
  const int base_size = num_layers / num_groups;
  const int larger = num_layers % num_groups;  // first `larger` get one more
  int next = 0;
  for (int g = 0; g < num_groups; ++g) {
    const int size = base_size + (g < larger ? 1 : 0);
    for (int i = 0; i < size; ++i) groups[g].push_back(next++);
  }
  return groups;
}

}  // namespace oubli::ml
