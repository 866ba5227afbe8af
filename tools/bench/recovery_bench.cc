// `oubli-bench recovery`: how long a coordinator that lost its checkpoints
// takes to serve again by rebuilding them from the workers' erasure-coded
// chunks, against retraining them, in one run on the same model.
//
// In one process: an oubli-coordinator (CoordinatorServer) and --workers
// oubli-workers (WorkerServer, each with a chunk dir) on loopback. A
// Fashion-MNIST model (MLP, S x L x B) is trained on the workers; then
//   restore: the coordinator stops, its checkpoint dir is deleted, it
//            restarts on the same port: time until every prefix is back;
//   retrain: the same, but the workers' chunks are deleted too, so every
//            prefix is trained again (on the workers).
// Both times run from the restart to "no missing prefix" and include
// opening the model and the workers registering again. One JSON line.
#include <grpcpp/grpcpp.h>

#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/config.h"
#include "common/status_macros.h"
#include "coordinator/grpc_service.h"
#include "oubli/v1/oubli.grpc.pb.h"
#include "storage/datasets.h"
#include "tools/bench/bench.h"
#include "tools/bench/bench_util.h"
#include "tools/bench/service_client.h"
#include "worker/worker_service.h"

namespace oubli::bench {
namespace {

namespace v1 = ::oubli::v1;
using coordinator::CoordinatorServer;

struct RecoveryFlags {
  int64_t samples = 20000;
  int workers = 3;
  int shards = 4;
  int slices = 4;
  int sequences = 2;
  int epochs = 2;
  std::string data = "/usr/share/datasets/fashion-mnist";
};

bool ParseFlags(const std::vector<std::string>& args, RecoveryFlags* flags) {
  for (const std::string& arg : args) {
    const size_t eq = arg.find('=');
    const std::string name = arg.substr(0, eq);
    const std::string value = eq == std::string::npos ? "" : arg.substr(eq + 1);
    bool ok = true;
    if (name == "--samples") {
      ok = absl::SimpleAtoi(value, &flags->samples);
    } else if (name == "--workers") {
      ok = absl::SimpleAtoi(value, &flags->workers);
    } else if (name == "--shards") {
      ok = absl::SimpleAtoi(value, &flags->shards);
    } else if (name == "--slices") {
      ok = absl::SimpleAtoi(value, &flags->slices);
    } else if (name == "--sequences") {
      ok = absl::SimpleAtoi(value, &flags->sequences);
    } else if (name == "--epochs") {
      ok = absl::SimpleAtoi(value, &flags->epochs);
    } else if (name == "--data") {
      flags->data = value;
    } else {
      ok = false;
    }
    if (!ok) {
      std::fprintf(stderr,
                   "usage: oubli-bench recovery [--samples=N] [--workers=N] "
                   "[--shards=S] [--slices=L] [--sequences=B] [--epochs=E] "
                   "[--data=DIR]\n");
      return false;
    }
  }
  return flags->workers >= 2;
}

int Run(const RecoveryFlags& flags) {
  TempDir dir("oubli-bench-recovery");
  const std::string data_dir = dir.path() + "/coordinator";

  CoordinatorServer::Options options;
  options.data_dir = data_dir;
  options.listen_address = "127.0.0.1:0";
  auto coordinator = CoordinatorServer::Start(options);
  if (!coordinator.ok()) return Fail("start coordinator", coordinator.status());
  // Restarts reuse the port, so workers find the coordinator again.
  options.listen_address = (*coordinator)->address();

  std::vector<std::unique_ptr<worker::WorkerServer>> workers;
  for (int i = 0; i < flags.workers; ++i) {
    worker::WorkerServer::Options w;
    w.coordinator_address = options.listen_address;
    w.name = absl::StrCat("bench-worker-", i);
    w.data_dir = absl::StrCat(dir.path(), "/worker-", i);
    auto started = worker::WorkerServer::Start(w);
    if (!started.ok()) return Fail("start worker", started.status());
    if (!(*started)->WaitRegistered(absl::Seconds(30))) {
      return Fail("worker", absl::DeadlineExceededError("did not register"));
    }
    workers.push_back(*std::move(started));
  }

  auto samples =
      storage::LoadFashionMnist(flags.data, "train", 0, flags.samples, 20);
  if (!samples.ok()) return Fail("load Fashion-MNIST", samples.status());

  ModelConfig config;
  config.model_id = "bench";
  config.shards = flags.shards;
  config.slices = flags.slices;
  config.sequences = flags.sequences;
  config.train.epochs_per_position = flags.epochs;
  auto stub = NewStub(options.listen_address, 0);
  if (absl::Status s =
          CreateModel(*stub, "bench", coordinator::ConfigToProto(config))
              .status();
      !s.ok()) {
    return Fail("create", s);
  }
  std::vector<v1::Sample> to_ingest;
  to_ingest.reserve(samples->size());
  for (const Sample& in : *samples) {
    v1::Sample& out = to_ingest.emplace_back();
    out.set_id(in.id);
    out.set_owner(in.owner);
    out.set_label(in.label);
    out.set_features(in.features);
    out.set_feature_type(v1::FEATURE_TYPE_U8);
  }
  if (absl::Status s = Ingest(*stub, "bench", to_ingest); !s.ok()) {
    return Fail("ingest", s);
  }
  const absl::Time train_start = absl::Now();
  if (absl::Status s = TrainAndWait(*stub, "bench"); !s.ok()) {
    return Fail("train", s);
  }
  const double train_s = absl::ToDoubleSeconds(absl::Now() - train_start);
  auto trained = WaitForAllPrefixes(*stub, "bench", absl::Hours(1));
  if (!trained.ok()) return Fail("train", trained.status());

  const std::filesystem::path checkpoints =
      std::filesystem::path(data_dir) / "bench" / "checkpoints";
  int64_t checkpoint_count = 0, checkpoint_bytes = 0;
  for (const auto& entry : std::filesystem::directory_iterator(checkpoints)) {
    ++checkpoint_count;
    checkpoint_bytes += static_cast<int64_t>(entry.file_size());
  }

  // Loses the coordinator's checkpoints (and with `drop_chunks` the
  // workers' chunks), restarts it, and times until all prefixes serve.
  auto lose_and_recover =
      [&](bool drop_chunks) -> absl::StatusOr<std::pair<double, v1::Model>> {
    (*coordinator)->Shutdown(absl::Seconds(5));
    coordinator->reset();
    std::filesystem::remove_all(checkpoints);
    if (drop_chunks) {
      for (int i = 0; i < flags.workers; ++i) {
        for (const auto& entry : std::filesystem::directory_iterator(
                 absl::StrCat(dir.path(), "/worker-", i, "/chunks"))) {
          std::filesystem::remove(entry.path());
        }
      }
    }
    const absl::Time start = absl::Now();
    OUBLI_ASSIGN_OR_RETURN(*coordinator, CoordinatorServer::Start(options));
    auto client = NewStub(options.listen_address, 0);
    OUBLI_ASSIGN_OR_RETURN(v1::Model model,
                           WaitForAllPrefixes(*client, "bench", absl::Hours(1)));
    return std::make_pair(absl::ToDoubleSeconds(absl::Now() - start), model);
  };
  auto restored = lose_and_recover(false);
  if (!restored.ok()) return Fail("restore", restored.status());
  auto retrained = lose_and_recover(true);
  if (!retrained.ok()) return Fail("retrain", retrained.status());

  const bool same_bits =
      restored->second.fingerprint() == trained->fingerprint() &&
      retrained->second.fingerprint() == trained->fingerprint();
  std::printf(
      "{\"bench\":\"recovery\",\"samples\":%lld,\"workers\":%d,"
      "\"shards\":%d,\"slices\":%d,\"sequences\":%d,\"epochs\":%d,"
      "\"checkpoints\":%lld,\"checkpoint_bytes\":%lld,"
      "\"initial_train_s\":%.3f,\"restore_s\":%.3f,\"retrain_s\":%.3f,"
      "\"retrain_over_restore\":%.2f,\"fingerprints_equal\":%s,"
      "\"machine\":%s}\n",
      static_cast<long long>(samples->size()), flags.workers, flags.shards,
      flags.slices, flags.sequences, flags.epochs,
      static_cast<long long>(checkpoint_count),
      static_cast<long long>(checkpoint_bytes), train_s, restored->first,
      retrained->first, retrained->first / restored->first,
      same_bits ? "true" : "false", MachineJson().c_str());
  std::fflush(stdout);
  (*coordinator)->Shutdown(absl::Seconds(5));
  for (auto& w : workers) w->Shutdown(absl::Seconds(1));
  return same_bits ? 0 : 1;
}

}  // namespace

int RunRecoveryBench(const std::vector<std::string>& args) {
  RecoveryFlags flags;
  if (!ParseFlags(args, &flags)) return 2;
  return Run(flags);
}

}  // namespace oubli::bench
