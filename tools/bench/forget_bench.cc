// oubli-bench forget: the language-model forgetting study (tools/lm/
// forget_study.h) through the public API of an oubli-coordinator and
// --workers oubli-worker processes it starts on loopback (the workers
// train, as in production), one JSON object per step:
// data, pretrain, base, train, then one "forget" line per removal size
// (MUSE figures BEFORE / FORGOTTEN / RESTORED, cost against the full
// training, Verify) and one "round" line per sequential deletion round.
#include <cstdio>
#include <filesystem>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "tools/bench/bench.h"
#include "tools/bench/bench_util.h"
#include "tools/lm/forget_study.h"
#include "tools/lm/grpc_lm_service.h"

namespace oubli::bench {
namespace {

bool ParseSizes(const std::string& value, std::vector<int>* sizes) {
  sizes->clear();
  for (absl::string_view part : absl::StrSplit(value, ',', absl::SkipEmpty())) {
    int k = 0;
    if (!absl::SimpleAtoi(part, &k) || k < 1) return false;
    sizes->push_back(k);
  }
  return true;
}

}  // namespace

int RunForgetBench(const std::vector<std::string>& args) {
  lm::StudyOptions options;
  // One worker: training runs on a worker as in production, and 2 cores
  // have room for no more.
  bench::ClusterOptions cluster;
  cluster.workers = 1;
  cluster.training_threads = 2;
  lm::ProfileOptions& profiles = options.workload.profiles;
  lm::LmModelOptions& model = options.model;
  const FlagSetters setters = {
      {"seed", NumberFlag(&profiles.seed)},
      {"public_profiles", NumberFlag(&profiles.public_profiles)},
      {"user_profiles", NumberFlag(&profiles.user_profiles)},
      {"holdout_profiles", NumberFlag(&profiles.holdout_profiles)},
      {"vocab", NumberFlag(&options.workload.vocab_size)},
      {"dim", NumberFlag(&model.dim)},
      {"layers", NumberFlag(&model.layers)},
      {"heads", NumberFlag(&model.heads)},
      {"context", NumberFlag(&model.context_length)},
      {"lora_rank", NumberFlag(&model.lora_rank)},
      {"shards", NumberFlag(&model.shards)},
      {"slices", NumberFlag(&model.slices)},
      {"sequences", NumberFlag(&model.sequences)},
      {"epochs", NumberFlag(&model.epochs)},
      {"batch_size", NumberFlag(&model.batch_size)},
      {"lr", NumberFlag(&model.learning_rate)},
      {"pretrain_epochs", NumberFlag(&options.pretrain.epochs)},
      {"pretrain_lr", NumberFlag(&options.pretrain.learning_rate)},
      {"sizes", [&](const std::string& v) {
         return ParseSizes(v, &options.forget_sizes);
       }},
      {"rounds", NumberFlag(&options.rounds)},
      {"owners_per_round", NumberFlag(&options.owners_per_round)},
      {"eval_owners", NumberFlag(&options.measure.max_owners)},
      {"verbatim_owners", NumberFlag(&options.measure.verbatim_owners)},
      {"workers", NumberFlag(&cluster.workers)},
      {"training_threads", NumberFlag(&cluster.training_threads)},
      {"coordinator_binary", NonEmptyFlag(&cluster.coordinator_binary)},
      {"worker_binary", NonEmptyFlag(&cluster.worker_binary)},
  };
  if (!ParseKeyValueFlags(args, setters)) return 2;
  if (cluster.workers < 0) {
    return Fail("forget", absl::InvalidArgumentError("--workers must be >= 0"));
  }
  TempDir dir("forget");
  options.work_dir = dir.path();
  cluster.dir = dir.path() + "/service";
  std::filesystem::create_directories(cluster.dir);
  absl::StatusOr<std::unique_ptr<lm::LmService>> service =
      lm::StartLocalLmService(cluster);
  if (!service.ok()) return Fail("forget", service.status());
  const std::string machine = MachineJson();
  absl::Status status = lm::RunForgetStudy(
      options, **service, [&](const lm::StudyRecord& record) {
        std::printf("{\"bench\":\"forget\",\"step\":\"%s\",%s,\"machine\":%s}\n",
                    record.step.c_str(), record.json.c_str(), machine.c_str());
        std::fflush(stdout);
      },
      nullptr);
  if (!status.ok()) return Fail("forget", status);
  return 0;
}

}  // namespace oubli::bench
