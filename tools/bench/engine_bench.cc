// Engine benchmarks on Fashion-MNIST: accuracy, unlearning and training
// throughput. Each result is one JSON object on one stdout line.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <random>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/hash.h"
#include "common/status_macros.h"
#include "coordinator/engine.h"
#include "coordinator/sharding_plan.h"
#include "storage/datasets.h"
#include "tools/bench/bench.h"
#include "tools/bench/bench_util.h"
#include "tools/bench/trainer_comparison.h"
#include "tools/workflow/fashion_mnist.h"
#include "worker/ml/determinism.h"
#include "worker/ml/model.h"
#include "worker/ml/s3t_trainer.h"

namespace oubli::bench {
namespace {

using coordinator::Engine;

struct BenchFlags {
  std::string dataset_dir = storage::kFashionMnistDir;
  int64_t public_samples = 10000;
  int64_t user_samples = 50000;
  int64_t test_samples = 10000;
  int epochs = 2;
  int pretrain_epochs = 3;
  int deletions = 200;
  int retrain_deletions = 8;
  int training_threads = 2;
};

// --key=value arguments; unknown keys are an error (exit code 2).
bool ParseFlags(const std::vector<std::string>& args, BenchFlags* flags) {
  const FlagSetters setters = {
      {"dataset_dir", NonEmptyFlag(&flags->dataset_dir)},
      {"public_samples", NumberFlag(&flags->public_samples)},
      {"user_samples", NumberFlag(&flags->user_samples)},
      {"test_samples", NumberFlag(&flags->test_samples)},
      {"epochs", NumberFlag(&flags->epochs)},
      {"pretrain_epochs", NumberFlag(&flags->pretrain_epochs)},
      {"deletions", NumberFlag(&flags->deletions)},
      {"retrain_deletions", NumberFlag(&flags->retrain_deletions)},
      {"training_threads", NumberFlag(&flags->training_threads)},
  };
  return ParseKeyValueFlags(args, setters);
}

int Fail(const absl::Status& status) {
  return ::oubli::bench::Fail("", status);
}

struct Prepared {
  tools::FashionMnistSplits splits;
  ModelConfig base_config;  // base weights pretrained and recorded
};

absl::StatusOr<Prepared> Prepare(const BenchFlags& flags, const TempDir& dir) {
  Prepared prepared;
  OUBLI_ASSIGN_OR_RETURN(
      prepared.splits,
      tools::LoadFashionMnistSplits(flags.dataset_dir, flags.public_samples,
                                    flags.user_samples, flags.test_samples));
  prepared.base_config = tools::DemoConfig(1, 1, 1, flags.epochs);
  OUBLI_RETURN_IF_ERROR(tools::PretrainBaseToFile(
      prepared.splits.public_split, flags.pretrain_epochs,
      dir.path() + "/base.safetensors", &prepared.base_config));
  return prepared;
}

absl::StatusOr<std::unique_ptr<Engine>> TrainedEngine(
    const BenchFlags& flags, const Prepared& prepared, ModelConfig config,
    const std::string& data_dir, coordinator::TrainSummary* summary) {
  config.base = prepared.base_config.base;
  Engine::Options options;
  options.data_dir = data_dir;
  options.config = config;
  options.training_threads = flags.training_threads;
  options.background_retrain = false;
  OUBLI_ASSIGN_OR_RETURN(std::unique_ptr<Engine> engine, Engine::Open(options));
  OUBLI_RETURN_IF_ERROR(engine->Ingest(prepared.splits.user_data).status());
  OUBLI_ASSIGN_OR_RETURN(*summary, engine->Train());
  return engine;
}

}  // namespace

int RunAccuracyBench(const std::vector<std::string>& args) {
  BenchFlags flags;
  if (!ParseFlags(args, &flags)) return 2;
  TempDir dir("accuracy");
  absl::StatusOr<Prepared> prepared = Prepare(flags, dir);
  if (!prepared.ok()) return Fail(prepared.status());

  struct Variant {
    const char* name;
    int shards, slices, sequences;
  };
  const Variant variants[] = {{"monolithic", 1, 1, 1},
                              {"s3t", 1, 4, 2},
                              {"s3t", 4, 4, 2},
                              {"s3t", 8, 4, 2}};
  for (const Variant& v : variants) {
    coordinator::TrainSummary summary;
    auto engine = TrainedEngine(
        flags, *prepared,
        tools::DemoConfig(v.shards, v.slices, v.sequences, flags.epochs),
        absl::StrCat(dir.path(), "/", v.name, "-", v.shards), &summary);
    if (!engine.ok()) return Fail(engine.status());
    auto accuracy = tools::Accuracy(**engine, prepared->splits.test);
    if (!accuracy.ok()) return Fail(accuracy.status());
    std::printf(
        "{\"bench\":\"accuracy\",\"variant\":\"%s\",\"shards\":%d,"
        "\"slices\":%d,\"sequences\":%d,\"epochs_per_position\":%d,"
        "\"train_samples\":%zu,\"test_samples\":%zu,\"accuracy\":%.4f,"
        "\"sample_visits\":%lld,\"train_seconds\":%.2f}\n",
        v.name, v.shards, v.slices, v.sequences, flags.epochs,
        prepared->splits.user_data.size(), prepared->splits.test.size(),
        *accuracy, static_cast<long long>(summary.samples),
        absl::ToDoubleSeconds(summary.elapsed));
    std::fflush(stdout);
  }
  return 0;
}

// What a user gets without tuning: a model on the seeded base (no
// pretraining) with the server's default config except the sizes of
// issue 14's report (MLP [48,48,48], S=3, L=3, 3,000 samples; --hidden,
// --shards, --slices, --epochs change them, "default"/0 for the server's),
// trained at several learning rates in one run; test accuracy per rate.
int RunDefaultsBench(const std::vector<std::string>& args) {
  BenchFlags flags;
  flags.public_samples = 0;
  flags.user_samples = 3000;
  flags.test_samples = 2000;
  std::string rates = "0.001,0.003,0.01,0.03";
  // 0: the server's default.
  int shards = 3, slices = 3, epochs = 0;
  std::string hidden = "48,48,48";  // "default": the server's
  FlagSetters setters = {
      {"shards", NumberFlag(&shards)},
      {"slices", NumberFlag(&slices)},
      {"epochs", NumberFlag(&epochs)},
      {"hidden", NonEmptyFlag(&hidden)},
      {"dataset_dir", NonEmptyFlag(&flags.dataset_dir)},
      {"user_samples", NumberFlag(&flags.user_samples)},
      {"test_samples", NumberFlag(&flags.test_samples)},
      {"training_threads", NumberFlag(&flags.training_threads)},
      {"learning_rates", NonEmptyFlag(&rates)},
  };
  if (!ParseKeyValueFlags(args, setters)) return 2;
  TempDir dir("defaults");
  absl::StatusOr<tools::FashionMnistSplits> splits =
      tools::LoadFashionMnistSplits(flags.dataset_dir, flags.public_samples,
                                    flags.user_samples, flags.test_samples);
  if (!splits.ok()) return Fail(splits.status());
  const ModelConfig defaults;
  for (absl::string_view text : absl::StrSplit(rates, ',')) {
    double rate = 0;
    if (!absl::SimpleAtod(text, &rate) || !(rate > 0)) {
      std::fprintf(stderr, "oubli-bench defaults: bad learning rate '%s'\n",
                   std::string(text).c_str());
      return 2;
    }
    ModelConfig config;
    config.model_id = "defaults";
    if (hidden != "default") {
      config.backbone.mlp_hidden.clear();
      for (absl::string_view width : absl::StrSplit(hidden, ',')) {
        int value = 0;
        if (!absl::SimpleAtoi(width, &value)) {
          std::fprintf(stderr, "oubli-bench defaults: bad --hidden '%s'\n",
                       hidden.c_str());
          return 2;
        }
        config.backbone.mlp_hidden.push_back(value);
      }
    }
    if (shards > 0) config.shards = shards;
    if (slices > 0) config.slices = slices;
    if (epochs > 0) config.train.epochs_per_position = epochs;
    config.train.learning_rate = rate;
    Engine::Options options;
    options.data_dir = absl::StrCat(dir.path(), "/", text);
    options.config = config;
    options.training_threads = flags.training_threads;
    options.background_retrain = false;
    absl::StatusOr<std::unique_ptr<Engine>> engine = Engine::Open(options);
    if (!engine.ok()) return Fail(engine.status());
    if (auto in = (*engine)->Ingest(splits->user_data); !in.ok()) {
      return Fail(in.status());
    }
    absl::StatusOr<coordinator::TrainSummary> summary = (*engine)->Train();
    if (!summary.ok()) return Fail(summary.status());
    absl::StatusOr<double> accuracy = tools::Accuracy(**engine, splits->test);
    if (!accuracy.ok()) return Fail(accuracy.status());
    std::printf(
        "{\"bench\":\"defaults\",\"hidden\":\"%s\",\"shards\":%d,"
        "\"slices\":%d,\"epochs_per_position\":%d,\"learning_rate\":%g,"
        "\"is_default\":%s,\"train_samples\":%zu,\"test_samples\":%zu,"
        "\"accuracy\":%.4f,\"train_seconds\":%.2f}\n",
        absl::StrJoin(config.backbone.mlp_hidden, ",").c_str(), config.shards,
        config.slices, config.train.epochs_per_position, rate,
        rate == defaults.train.learning_rate ? "true" : "false",
        splits->user_data.size(), splits->test.size(), *accuracy,
        absl::ToDoubleSeconds(summary->elapsed));
    std::fflush(stdout);
  }
  return 0;
}

int RunUnlearnBench(const std::vector<std::string>& args) {
  BenchFlags flags;
  flags.user_samples = 20000;
  // Full training parallelizes across shards while a single deletion
  // usually retrains one shard: one thread compares equal compute.
  flags.training_threads = 1;
  if (!ParseFlags(args, &flags)) return 2;
  TempDir dir("unlearn");
  absl::StatusOr<Prepared> prepared = Prepare(flags, dir);
  if (!prepared.ok()) return Fail(prepared.status());
  const ModelConfig config = tools::DemoConfig(4, 4, 2, flags.epochs);
  std::mt19937_64 rng(42);
  auto random_sample_ids = [&](int count) {
    std::vector<std::string> ids;
    std::vector<Sample> pool = prepared->splits.user_data;
    std::shuffle(pool.begin(), pool.end(), rng);
    for (int i = 0; i < count && i < static_cast<int>(pool.size()); ++i) {
      ids.push_back(pool[i].id);
    }
    return ids;
  };

  // 1. Retraining after single deletions vs. full retraining.
  coordinator::TrainSummary full;
  auto engine =
      TrainedEngine(flags, *prepared, config, dir.path() + "/retrain", &full);
  if (!engine.ok()) return Fail(engine.status());
  std::vector<double> retrain_seconds, retrain_visits;
  for (const std::string& id : random_sample_ids(flags.retrain_deletions)) {
    auto receipt = (*engine)->DeleteSamples({id});
    if (!receipt.ok()) return Fail(receipt.status());
    auto retrain = (*engine)->RunPendingRetrains(/*ignore_policy=*/true);
    if (!retrain.ok()) return Fail(retrain.status());
    retrain_seconds.push_back(absl::ToDoubleSeconds(retrain->elapsed));
    retrain_visits.push_back(static_cast<double>(retrain->samples));
  }
  auto plan = coordinator::ShardingPlan::Create(config);
  if (!plan.ok()) return Fail(plan.status());
  const double theoretical = coordinator::TheoreticalUnlearnSpeedup(
      config.shards, plan->orders(), config.slices);
  double mean_seconds = 0, mean_visits = 0;
  for (size_t i = 0; i < retrain_seconds.size(); ++i) {
    mean_seconds += retrain_seconds[i] / retrain_seconds.size();
    mean_visits += retrain_visits[i] / retrain_visits.size();
  }
  const double full_seconds = absl::ToDoubleSeconds(full.elapsed);
  std::string seconds_list;
  for (double seconds : retrain_seconds) {
    absl::StrAppendFormat(&seconds_list, "%s%.3f",
                          seconds_list.empty() ? "" : ",", seconds);
  }
  const double measured = full_seconds / mean_seconds;
  std::printf(
      "{\"bench\":\"unlearn_retrain\",\"shards\":%d,\"slices\":%d,"
      "\"sequences\":%d,\"train_samples\":%zu,\"deletions\":%zu,"
      "\"full_train_seconds\":%.3f,\"mean_retrain_seconds\":%.3f,"
      "\"retrain_seconds\":[%s],\"full_sample_visits\":%lld,"
      "\"mean_retrain_sample_visits\":%.0f,\"measured_speedup\":%.3f,"
      "\"visit_speedup\":%.3f,\"theoretical_speedup\":%.3f,"
      "\"measured_vs_theoretical\":%.3f,\"training_threads\":%d}\n",
      config.shards, config.slices, config.sequences,
      prepared->splits.user_data.size(), retrain_seconds.size(), full_seconds,
      mean_seconds, seconds_list.c_str(), static_cast<long long>(full.samples),
      mean_visits, measured, full.samples / mean_visits, theoretical,
      measured / theoretical, flags.training_threads);
  std::fflush(stdout);

  // 2. Deactivation latency: request sent -> served ensemble switched
  // (FORGOTTEN), no training. Retraining stays off so the shards shrink as
  // they would under a burst of deletions.
  std::vector<double> forget_ms, ack_ms, purge_ms;
  for (const std::string& id : random_sample_ids(flags.deletions)) {
    const absl::Time sent = absl::Now();
    auto receipt = (*engine)->DeleteSamples({id});
    if (!receipt.ok()) {
      if (absl::IsNotFound(receipt.status())) continue;
      return Fail(receipt.status());
    }
    if (receipt->resolved_ids.empty()) continue;  // deleted earlier
    ack_ms.push_back(absl::ToDoubleMilliseconds(receipt->accepted_at - sent));
    forget_ms.push_back(
        absl::ToDoubleMilliseconds(receipt->forgotten_at - sent));
    // Purge runs in the background; one at a time here, so this is the
    // latency of a lone deletion's purge.
    if (absl::Status s = (*engine)->WaitForStage(
            receipt->deletion_id, coordinator::DeletionStage::kPurged,
            absl::Minutes(5));
        !s.ok()) {
      return Fail(s);
    }
    auto purged = (*engine)->GetDeletion(receipt->deletion_id);
    if (!purged.ok()) return Fail(purged.status());
    purge_ms.push_back(absl::ToDoubleMilliseconds(purged->purged_at - sent));
  }
  if (forget_ms.empty()) return Fail(absl::InternalError("no deletions ran"));
  const coordinator::ModelStatus status = (*engine)->GetModelStatus();
  const int served_shards = static_cast<int>(std::count_if(
      status.shards.begin(), status.shards.end(),
      [](const coordinator::ShardStatus& s) { return s.served.served; }));
  std::printf(
      "{\"bench\":\"unlearn_deactivation\",\"deletions\":%zu,"
      "\"accepted_ms_p50\":%.3f,\"accepted_ms_p99\":%.3f,"
      "\"forgotten_ms_p50\":%.3f,\"forgotten_ms_p99\":%.3f,"
      "\"purged_ms_p50\":%.3f,\"purged_ms_p99\":%.3f,"
      "\"served_shards_left\":%d}\n",
      forget_ms.size(), Percentile(ack_ms, 0.5), Percentile(ack_ms, 0.99),
      Percentile(forget_ms, 0.5), Percentile(forget_ms, 0.99),
      Percentile(purge_ms, 0.5), Percentile(purge_ms, 0.99), served_shards);
  return 0;
}

int RunTrainBench(const std::vector<std::string>& args) {
  if (std::find(args.begin(), args.end(), "--lm") != args.end() ||
      std::find(args.begin(), args.end(), "--lm=true") != args.end()) {
    return RunTrainLmBench(args);
  }
  BenchFlags flags;
  flags.user_samples = 10000;
  flags.public_samples = 0;
  if (!ParseFlags(args, &flags)) return 2;
  auto user = storage::LoadFashionMnist(
      flags.dataset_dir, "train", flags.public_samples, flags.user_samples);
  if (!user.ok()) return Fail(user.status());
  ModelConfig config = tools::DemoConfig(1, 4, 1, flags.epochs);
  auto data = ml::MakePositionData(*user, config.backbone.InputSize());
  if (!data.ok()) return Fail(data.status());
  auto compared = CompareTrainerWithBareLoop(
      config, *data, /*rounds=*/3, data->size(),
      [](ml::AdapterModel& model, const ml::PositionData& rows_of,
         const torch::Tensor& rows, const torch::Device& device) {
        auto& classifier = dynamic_cast<ml::AdapterClassifier&>(model);
        return torch::nn::functional::cross_entropy(
            classifier.forward(
                rows_of.features.index_select(0, rows).to(device)),
            rows_of.labels.index_select(0, rows).to(device));
      },
      [](const ml::TrainStats& stats) { return stats.samples; });
  if (!compared.ok()) return Fail(compared.status());
  const double best_ours = compared->trainer_per_s;
  const double best_bare = compared->bare_per_s;
  std::printf(
      "{\"bench\":\"train\",\"samples\":%lld,\"epochs\":%d,\"batch_size\":%d,"
      "\"trainer_samples_per_s\":%.0f,\"bare_libtorch_samples_per_s\":%.0f,"
      "\"overhead\":%.4f,\"threads\":\"%s\",\"machine\":%s}\n",
      static_cast<long long>(data->size()), config.train.epochs_per_position,
      config.train.batch_size, best_ours, best_bare,
      1.0 - best_ours / best_bare, ml::DescribeThreads().c_str(),
      MachineJson().c_str());
  return 0;
}

}  // namespace oubli::bench
