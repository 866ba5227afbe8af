// oubli-demo: the in-process engine end to end on Fashion-MNIST.
//
// Pretrains the frozen base on a public split, ingests the rest as user data
// with synthetic owners, trains S3T, forgets one owner, and shows the
// receipt, accuracy before / after forgetting / after restoring, and the
// bitwise verification against training from scratch.
//
// --lm: the same story for a language model (tools/lm/forget_study.h),
// through the public API: it starts an oubli-coordinator and --lm_workers
// oubli-worker processes on loopback and drives them over gRPC.
// Fictitious profiles, a SentencePiece tokenizer and a base pretrained
// here on the public ones, then CreateModel, IngestSamples of the users'
// profiles (owner = person), S3T LoRA fine-tuning on the workers, MUSE's
// figures (Score, Generate) before and after ForgetOwner of 1, 10 and 100
// owners and over sequential rounds, with Verify.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <map>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/config.h"
#include "common/file_util.h"
#include "coordinator/engine.h"
#include "storage/datasets.h"
#include "tools/lm/forget_study.h"
#include "tools/lm/grpc_lm_service.h"
#include "tools/workflow/fashion_mnist.h"

ABSL_FLAG(std::string, dataset_dir, oubli::storage::kFashionMnistDir,
          "Fashion-MNIST IDX directory");
ABSL_FLAG(std::string, data_dir, "",
          "engine data dir (default: a fresh temp dir, removed at exit)");
ABSL_FLAG(int64_t, public_samples, 10000,
          "train[0, N) is the public pretraining split");
ABSL_FLAG(int64_t, user_samples, -1,
          "user samples after the public split (-1: the rest, 50000)");
ABSL_FLAG(int64_t, test_samples, 10000, "test samples for accuracy");
ABSL_FLAG(int, shards, 4, "S");
ABSL_FLAG(int, slices, 4, "L");
ABSL_FLAG(int, sequences, 2, "B");
ABSL_FLAG(int, epochs, 2, "epochs per S3T position");
ABSL_FLAG(int, pretrain_epochs, 3, "epochs of base pretraining");
ABSL_FLAG(int, training_threads, 2, "shards trained in parallel");
ABSL_FLAG(std::string, export_config, "",
          "only pretrain the base into --data_dir, write the model config "
          "(key=value, naming the base file) to this path and exit; the "
          "service demo creates its model from it");
ABSL_FLAG(std::string, forget_owner, "",
          "owner to forget (default: the owner of the first user sample)");

// --lm and its sizes (defaults: a few minutes on 2 cores).
ABSL_FLAG(bool, lm, false,
          "the language-model forgetting demo instead of Fashion-MNIST");
ABSL_FLAG(uint64_t, lm_seed, oubli::lm::StudyOptions().workload.profiles.seed,
          "seed of the generated profiles");
ABSL_FLAG(int, lm_public_profiles,
          oubli::lm::StudyOptions().workload.profiles.public_profiles,
          "profiles that pretrain the base and the tokenizer");
ABSL_FLAG(int, lm_user_profiles,
          oubli::lm::StudyOptions().workload.profiles.user_profiles,
          "users (owners) fine-tuned with S3T");
ABSL_FLAG(int, lm_holdout_profiles,
          oubli::lm::StudyOptions().workload.profiles.holdout_profiles,
          "never-seen profiles");
ABSL_FLAG(int, lm_vocab, oubli::lm::StudyOptions().workload.vocab_size,
          "SentencePiece pieces");
ABSL_FLAG(int, lm_dim, oubli::lm::StudyOptions().model.dim, "model width");
ABSL_FLAG(int, lm_layers, oubli::lm::StudyOptions().model.layers,
          "decoder blocks");
ABSL_FLAG(int, lm_shards, oubli::lm::StudyOptions().model.shards, "S");
ABSL_FLAG(int, lm_slices, oubli::lm::StudyOptions().model.slices, "L");
ABSL_FLAG(int, lm_sequences, oubli::lm::StudyOptions().model.sequences, "B");
ABSL_FLAG(int, lm_epochs, oubli::lm::StudyOptions().model.epochs,
          "epochs per S3T position");
ABSL_FLAG(int, lm_pretrain_epochs, oubli::lm::StudyOptions().pretrain.epochs,
          "epochs of base pretraining");
ABSL_FLAG(std::vector<std::string>, lm_sizes,
          std::vector<std::string>({"1", "10", "100"}),
          "owners forgotten at once, one experiment each");
ABSL_FLAG(int, lm_rounds, oubli::lm::StudyOptions().rounds,
          "sequential deletion rounds");
ABSL_FLAG(int, lm_owners_per_round, oubli::lm::StudyOptions().owners_per_round,
          "owners forgotten per round");
ABSL_FLAG(int, lm_eval_owners, oubli::lm::StudyOptions().measure.max_owners,
          "owners per set the figures are measured on");
ABSL_FLAG(int, lm_workers, 1,
          "oubli-worker processes the study's models train on (0: the "
          "coordinator trains)");
ABSL_FLAG(int, lm_verbatim_owners,
          oubli::lm::StudyOptions().measure.verbatim_owners,
          "owners per set whose statements are continued (a generation each)");

namespace {

using oubli::coordinator::DeletionReceipt;
using oubli::coordinator::DeletionStageName;

void Step(const std::string& text) { std::printf("\n== %s\n", text.c_str()); }

std::string Ms(absl::Duration d) {
  return absl::StrCat(absl::ToDoubleMilliseconds(d), " ms");
}

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "oubli-demo: %s\n", status.ToString().c_str());
  return 1;
}

std::string Accuracy(oubli::coordinator::Engine& engine,
                     const std::vector<oubli::Sample>& test) {
  auto accuracy = oubli::tools::Accuracy(engine, test);
  if (!accuracy.ok()) return accuracy.status().ToString();
  return absl::StrCat(100.0 * *accuracy, "%");
}

void PrintReceipt(const DeletionReceipt& r) {
  std::printf("  deletion id      %s\n", r.deletion_id.c_str());
  std::printf("  owner            %s\n", r.owner.c_str());
  std::printf("  resolved samples %zu: %s%s\n", r.resolved_ids.size(),
              absl::StrJoin(r.resolved_ids.begin(),
                            r.resolved_ids.begin() +
                                std::min<size_t>(r.resolved_ids.size(), 4),
                            " ")
                  .c_str(),
              r.resolved_ids.size() > 4 ? " ..." : "");
  std::printf("  affected shards  %s\n",
              absl::StrJoin(r.affected_shards, ",").c_str());
  // One line per shard: each sequence's valid prefix length before->after.
  std::map<int, std::map<int, std::pair<int, int>>> cuts;
  for (const auto& a : r.affected) {
    auto [it, inserted] = cuts[a.shard].emplace(
        a.sequence,
        std::make_pair(a.valid_length_before, a.valid_length_after));
    if (!inserted)
      it->second.second = std::min(it->second.second, a.valid_length_after);
  }
  for (const auto& [shard, sequences] : cuts) {
    std::string line;
    for (const auto& [sequence, lengths] : sequences) {
      absl::StrAppend(&line, " seq", sequence, ":", lengths.first, "->",
                      lengths.second);
    }
    std::printf("  shard %d cut     %s\n", shard, line.c_str());
  }
  std::printf("  stage            %s\n", DeletionStageName(r.stage));
  auto since = [&](absl::Time t) {
    return t == absl::InfinitePast() ? std::string("-") : Ms(t - r.accepted_at);
  };
  std::printf("  ACCEPTED  %s\n", absl::FormatTime(r.accepted_at).c_str());
  std::printf("  FORGOTTEN +%s\n", since(r.forgotten_at).c_str());
  std::printf("  PURGED    +%s\n", since(r.purged_at).c_str());
  std::printf("  RESTORED  +%s\n", since(r.restored_at).c_str());
  std::printf("  fingerprint before    %s\n", r.fingerprint_before.c_str());
  std::printf("  fingerprint forgotten %s\n", r.fingerprint_forgotten.c_str());
  if (!r.fingerprint_restored.empty()) {
    std::printf("  fingerprint restored  %s\n", r.fingerprint_restored.c_str());
  }
  if (!r.note.empty()) std::printf("  note: %s\n", r.note.c_str());
}

int RunLmDemo(const std::string& data_dir) {
  oubli::lm::StudyOptions options;
  options.work_dir = data_dir;
  options.workload.profiles.seed = absl::GetFlag(FLAGS_lm_seed);
  options.workload.profiles.public_profiles =
      absl::GetFlag(FLAGS_lm_public_profiles);
  options.workload.profiles.user_profiles =
      absl::GetFlag(FLAGS_lm_user_profiles);
  options.workload.profiles.holdout_profiles =
      absl::GetFlag(FLAGS_lm_holdout_profiles);
  options.workload.vocab_size = absl::GetFlag(FLAGS_lm_vocab);
  options.model.dim = absl::GetFlag(FLAGS_lm_dim);
  options.model.layers = absl::GetFlag(FLAGS_lm_layers);
  options.model.shards = absl::GetFlag(FLAGS_lm_shards);
  options.model.slices = absl::GetFlag(FLAGS_lm_slices);
  options.model.sequences = absl::GetFlag(FLAGS_lm_sequences);
  options.model.epochs = absl::GetFlag(FLAGS_lm_epochs);
  options.pretrain.epochs = absl::GetFlag(FLAGS_lm_pretrain_epochs);
  options.forget_sizes.clear();
  for (const std::string& size : absl::GetFlag(FLAGS_lm_sizes)) {
    int k = 0;
    if (!absl::SimpleAtoi(size, &k) || k < 1) {
      return Fail(absl::InvalidArgumentError(
          "--lm_sizes: positive owner counts, comma-separated"));
    }
    options.forget_sizes.push_back(k);
  }
  options.rounds = absl::GetFlag(FLAGS_lm_rounds);
  options.owners_per_round = absl::GetFlag(FLAGS_lm_owners_per_round);
  options.measure.max_owners = absl::GetFlag(FLAGS_lm_eval_owners);
  options.measure.verbatim_owners = absl::GetFlag(FLAGS_lm_verbatim_owners);
  if (absl::GetFlag(FLAGS_lm_workers) < 0) {
    return Fail(absl::InvalidArgumentError("--lm_workers must be >= 0"));
  }
  oubli::bench::ClusterOptions cluster;
  cluster.dir = data_dir + "/service";
  cluster.workers = absl::GetFlag(FLAGS_lm_workers);
  cluster.training_threads = absl::GetFlag(FLAGS_training_threads);
  std::filesystem::create_directories(cluster.dir);
  Step("Starting the service");
  auto service = oubli::lm::StartLocalLmService(cluster);
  if (!service.ok()) return Fail(service.status());
  std::printf("  %s; logs in %s\n", (*service)->Describe().c_str(),
              cluster.dir.c_str());

  static const std::map<std::string, std::string> kTitles = {
      {"data", "Generating profiles and training the tokenizer"},
      {"pretrain", "Pretraining the base LM on the public profiles"},
      {"base", "The base alone (it saw the public profiles, no user)"},
      {"train", "CreateModel, IngestSamples of the users' profiles, Train "
                "(S3T)"},
      {"forget", "ForgetOwner (each size on a model trained alike)"},
      {"round", "Sequential deletion rounds"},
  };
  std::string last_step;
  oubli::lm::StudySummary summary;
  const absl::Time start = absl::Now();
  absl::Status status = oubli::lm::RunForgetStudy(
      options, **service,
      [&](const oubli::lm::StudyRecord& record) {
        if (record.step != last_step) {
          Step(kTitles.at(record.step));
          last_step = record.step;
        }
        for (const std::string& line : record.lines) {
          std::printf("  %s\n", line.c_str());
        }
      },
      &summary);
  if (!status.ok()) return Fail(status);
  Step(absl::StrCat("MUSE's six properties (", Ms(absl::Now() - start),
                    " in all)"));
  for (const std::string& line : oubli::lm::SummaryTable(summary)) {
    std::printf("  %s\n", line.c_str());
  }
  bool match = summary.rounds == 0 || summary.rounds_verify_match;
  for (const auto& size : summary.sizes) match = match && size.verify_match;
  return match ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // keep order with stderr
  std::string data_dir = absl::GetFlag(FLAGS_data_dir);
  const bool temp_dir = data_dir.empty();
  if (temp_dir) {
    data_dir = (std::filesystem::temp_directory_path() /
                absl::StrCat("oubli-demo-", getpid()))
                   .string();
  }
  std::filesystem::create_directories(data_dir);
  struct Cleanup {
    bool enabled;
    std::string dir;
    ~Cleanup() {
      if (enabled) std::filesystem::remove_all(dir);
    }
  } cleanup{temp_dir, data_dir};
  if (absl::GetFlag(FLAGS_lm)) return RunLmDemo(data_dir);

  Step("Loading Fashion-MNIST from " + absl::GetFlag(FLAGS_dataset_dir));
  auto splits = oubli::tools::LoadFashionMnistSplits(
      absl::GetFlag(FLAGS_dataset_dir), absl::GetFlag(FLAGS_public_samples),
      absl::GetFlag(FLAGS_user_samples), absl::GetFlag(FLAGS_test_samples));
  if (!splits.ok()) return Fail(splits.status());
  std::printf("  public %zu, user %zu (1 owner per 20), test %zu\n",
              splits->public_split.size(), splits->user_data.size(),
              splits->test.size());

  oubli::ModelConfig config = oubli::tools::DemoConfig(
      absl::GetFlag(FLAGS_shards), absl::GetFlag(FLAGS_slices),
      absl::GetFlag(FLAGS_sequences), absl::GetFlag(FLAGS_epochs));
  Step("Pretraining the frozen base on the public split");
  absl::Time start = absl::Now();
  if (absl::Status s = oubli::tools::PretrainBaseToFile(
          splits->public_split, absl::GetFlag(FLAGS_pretrain_epochs),
          data_dir + "/base.safetensors", &config);
      !s.ok()) {
    return Fail(s);
  }
  std::printf("  %s in %s\n  base sha256 %s\n", config.base.provenance.c_str(),
              Ms(absl::Now() - start).c_str(), config.base.sha256.c_str());
  if (const std::string path = absl::GetFlag(FLAGS_export_config);
      !path.empty()) {
    if (temp_dir) {
      return Fail(absl::InvalidArgumentError(
          "--export_config needs --data_dir: the base file must outlive "
          "this process"));
    }
    if (absl::Status s =
            oubli::WriteFileAtomically(path, oubli::ConfigToText(config));
        !s.ok()) {
      return Fail(s);
    }
    std::printf("  config written to %s\n", path.c_str());
    return 0;
  }

  oubli::coordinator::Engine::Options options;
  options.data_dir = data_dir + "/model";
  options.config = config;
  options.training_threads = absl::GetFlag(FLAGS_training_threads);
  options.background_retrain = true;
  auto engine = oubli::coordinator::Engine::Open(options);
  if (!engine.ok()) return Fail(engine.status());

  Step("Ingesting user data");
  start = absl::Now();
  auto ingest = (*engine)->Ingest(splits->user_data);
  if (!ingest.ok()) return Fail(ingest.status());
  std::printf("  accepted %lld, duplicates %lld, rejected %zu in %s\n",
              static_cast<long long>(ingest->accepted),
              static_cast<long long>(ingest->duplicates),
              ingest->rejected.size(), Ms(absl::Now() - start).c_str());

  Step(absl::StrCat("Training S3T: S=", config.shards, " L=", config.slices,
                    " B=", config.sequences, ", ",
                    config.train.epochs_per_position, " epochs per position"));
  auto trained = (*engine)->Train();
  if (!trained.ok()) return Fail(trained.status());
  std::printf(
      "  %d prefix checkpoints, %lld sample-visits in %s (%.0f samples/s)\n",
      trained->positions_trained, static_cast<long long>(trained->samples),
      Ms(trained->elapsed).c_str(),
      trained->samples / absl::ToDoubleSeconds(trained->elapsed));
  std::printf("  threads: %s\n", (*engine)->GetModelStatus().threads.c_str());
  std::printf("  test accuracy: %s\n",
              Accuracy(**engine, splits->test).c_str());

  std::string owner = absl::GetFlag(FLAGS_forget_owner);
  if (owner.empty()) owner = splits->user_data.front().owner;
  Step("Forgetting " + owner);
  auto receipt = (*engine)->ForgetOwner(owner);
  if (!receipt.ok()) return Fail(receipt.status());
  PrintReceipt(*receipt);
  std::printf("  test accuracy after FORGOTTEN (no training): %s\n",
              Accuracy(**engine, splits->test).c_str());

  Step("Waiting for background retraining (RESTORED)");
  if (absl::Status s =
          (*engine)->WaitForRestored(receipt->deletion_id, absl::Hours(1));
      !s.ok()) {
    return Fail(s);
  }
  auto restored = (*engine)->GetDeletion(receipt->deletion_id);
  if (!restored.ok()) return Fail(restored.status());
  PrintReceipt(*restored);
  std::printf("  test accuracy after RESTORED: %s\n",
              Accuracy(**engine, splits->test).c_str());

  Step("Verifying: retrain from scratch on the retained data, compare bits");
  auto verify = (*engine)->Verify();
  if (!verify.ok()) return Fail(verify.status());
  std::printf("  served fingerprint   %s\n  scratch fingerprint  %s\n",
              verify->served_fingerprint.c_str(),
              verify->scratch_fingerprint.c_str());
  std::printf("  restored=%s bitwise match=%s (%s)\n",
              verify->restored ? "yes" : "no", verify->match ? "YES" : "NO",
              Ms(verify->elapsed).c_str());
  return verify->match ? 0 : 1;
}
