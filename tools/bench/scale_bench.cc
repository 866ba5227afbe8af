// `oubli-bench scale`: the data plane at 10^5..10^6 samples, over gRPC.
//
// In one process: an oubli-coordinator (CoordinatorServer) and --workers
// oubli-workers (WorkerServer) on loopback. Synthetic 784-byte samples
// (deterministic: SplitMix64 of the sample index; 20 per owner) are
// streamed in, an MLP (S x L x B) trains on the workers, then --forget
// owners are forgotten one after another and the cut prefixes retrain.
// Reports, in one JSON line:
//   ingest_samples_per_s     over gRPC, IngestSamples streams of 5,000
//   train_s                  Train until every prefix is stored
//   train_sample_visits(_per_s)  sample-visits of that training (from the
//                            plan: each distinct prefix once, every epoch)
//                            and their rate
//   sent_per_slice_byte      slice bytes the workers received during the
//                            first training over the bytes of the model's
//                            slices (1.0: each slice crossed once)
//   retrain_sent_per_slice_byte  the same for the retrain after deletions
//   retrain_sent_per_changed_slice_byte  the retrain's bytes over those of
//                            the slices the deletions changed (after them):
//                            1.0 when each changed slice crossed once and
//                            no unchanged (cached) slice crossed again
//   purged_s_p50/max         ACCEPTED -> PURGED per deletion (server
//                            timestamps): the purge passes at this size
//   forget_ms_p50/p99        ForgetOwner round trip (the reply comes at
//                            FORGOTTEN)
//   retrain_over_train       retrain time after the deletions over train_s
//   peak_rss_mib             of this whole process (coordinator, workers
//                            and client), from getrusage
// With --coordinator=HOST:PORT it drives a coordinator already running
// (with its workers) instead, so the coordinator's own peak memory can be
// read from its process (VmHWM); the bytes sent are then not reported.
#include <grpcpp/grpcpp.h>
#include <sys/resource.h>

#include <algorithm>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/config.h"
#include "common/hash.h"
#include "common/status_macros.h"
#include "coordinator/grpc_service.h"
#include "coordinator/sharding_plan.h"
#include "oubli/v1/oubli.grpc.pb.h"
#include "storage/encoded_slice.h"
#include "tools/bench/bench.h"
#include "tools/bench/bench_util.h"
#include "tools/bench/service_client.h"
#include "worker/worker_service.h"

namespace oubli::bench {
namespace {

namespace v1 = ::oubli::v1;
using coordinator::CoordinatorServer;

constexpr int kWidth = 784;
constexpr int kOwnerSize = 20;

struct ScaleFlags {
  int64_t samples = 100000;
  int workers = 2;
  int shards = 16;
  int slices = 4;
  int sequences = 2;
  int epochs = 1;
  int forget = 10;
  // HOST:PORT of a coordinator (and its workers) already running: nothing
  // is started here, so the coordinator's own memory can be read from its
  // process; the bytes workers received are not known then.
  std::string coordinator;
};

// Sample `i`: its label marks a band of pixels, so the model can learn.
Sample SyntheticSample(int64_t i) {
  Sample s;
  s.id = absl::StrFormat("s%08d", i);
  s.owner = absl::StrFormat("o%07d", i / kOwnerSize);
  SplitMix64 rng(static_cast<uint64_t>(i) * 0x9e3779b97f4a7c15ULL + 1);
  s.label = static_cast<int32_t>(rng.Uniform(10));
  s.features.resize(kWidth);
  for (int k = 0; k < kWidth; ++k) {
    s.features[k] = static_cast<char>(rng.Next() & 0x7f);
  }
  for (int k = 0; k < 28; ++k) {
    s.features[s.label * 70 + k] = static_cast<char>(250);
  }
  return s;
}

v1::Sample ToProto(const Sample& in) {
  v1::Sample out;
  out.set_id(in.id);
  out.set_owner(in.owner);
  out.set_label(in.label);
  out.set_features(in.features);
  out.set_feature_type(v1::FEATURE_TYPE_U8);
  return out;
}

// Bytes of the model's slices as workers receive them.
// What the plan makes of the n synthetic samples: the encoded bytes of
// every slice, and the sample-visits of one full training (each distinct
// prefix of each shard trains once, on every sample of its slices, for
// every epoch).
struct PlannedWork {
  int64_t slice_bytes = 0;
  int64_t training_sample_visits = 0;
  // The encoded bytes of the slices that held a forgotten owner, after the
  // deletions: what a retrain must send at least once, since no cache
  // holds a slice under its new digest. A slice the deletions emptied is
  // left out (a few header bytes).
  int64_t changed_slice_bytes = 0;
};

absl::StatusOr<PlannedWork> PlanWork(const ModelConfig& config, int64_t n,
                                     const std::set<std::string>& forgotten) {
  OUBLI_ASSIGN_OR_RETURN(coordinator::ShardingPlan plan,
                         coordinator::ShardingPlan::Create(config));
  // Indices per cell, then one cell's samples at a time: small however
  // many samples.
  std::map<std::pair<int, int>, std::vector<int64_t>> cells;
  for (int64_t i = 0; i < n; ++i) {
    const SliceRef where = plan.Assign(SyntheticSample(i));
    cells[{where.shard, where.slice}].push_back(i);  // ids ascend with i
  }
  PlannedWork work;
  for (const auto& [cell, indices] : cells) {
    std::vector<Sample> samples;
    samples.reserve(indices.size());
    for (int64_t i : indices) samples.push_back(SyntheticSample(i));
    OUBLI_ASSIGN_OR_RETURN(auto slice,
                           storage::EncodedSlice::FromSamples(samples, kWidth));
    work.slice_bytes += static_cast<int64_t>(slice->bytes().size());
    // Only a cell holding a forgotten owner changed (a few cells of many).
    const bool changed = std::any_of(
        samples.begin(), samples.end(),
        [&](const Sample& s) { return forgotten.contains(s.owner); });
    if (!changed) continue;
    std::vector<Sample> survivors;
    for (Sample& s : samples) {
      if (!forgotten.contains(s.owner)) survivors.push_back(std::move(s));
    }
    if (!survivors.empty()) {
      OUBLI_ASSIGN_OR_RETURN(
          auto after, storage::EncodedSlice::FromSamples(survivors, kWidth));
      work.changed_slice_bytes += static_cast<int64_t>(after->bytes().size());
    }
  }
  for (int shard = 0; shard < config.shards; ++shard) {
    std::set<std::vector<int>> prefixes;
    for (const std::vector<int>& order : plan.orders()) {
      for (size_t p = 1; p <= order.size(); ++p) {
        prefixes.emplace(order.begin(), order.begin() + p);
      }
    }
    for (const std::vector<int>& prefix : prefixes) {
      for (int slice : prefix) {
        auto it = cells.find({shard, slice});
        if (it != cells.end()) {
          work.training_sample_visits +=
              static_cast<int64_t>(it->second.size()) *
              config.train.epochs_per_position;
        }
      }
    }
  }
  return work;
}

// For each deletion, seconds from ACCEPTED to PURGED by the server's
// timestamps, polling GetDeletion until all are purged (at most an hour).
absl::StatusOr<std::vector<double>> SecondsToPurged(
    v1::Oubli::Stub& stub, const std::vector<std::string>& deletion_ids) {
  std::vector<double> seconds;
  const absl::Time give_up = absl::Now() + absl::Hours(1);
  for (const std::string& id : deletion_ids) {
    while (true) {
      v1::GetDeletionRequest request;
      request.set_deletion_id(id);
      v1::DeletionReceipt receipt;
      grpc::ClientContext context;
      context.set_deadline(Deadline(60));
      const grpc::Status status = stub.GetDeletion(&context, request, &receipt);
      if (!status.ok()) {
        return absl::UnknownError(
            absl::StrCat("GetDeletion ", id, ": ", status.error_message()));
      }
      if (receipt.has_purged_at()) {
        const auto at = [](const google::protobuf::Timestamp& t) {
          return static_cast<double>(t.seconds()) + t.nanos() * 1e-9;
        };
        seconds.push_back(at(receipt.purged_at()) - at(receipt.accepted_at()));
        break;
      }
      if (absl::Now() > give_up) {
        return absl::DeadlineExceededError(
            absl::StrCat(id, " not PURGED within an hour"));
      }
      absl::SleepFor(absl::Milliseconds(50));
    }
  }
  return seconds;
}

int Run(const ScaleFlags& flags) {
  TempDir dir("oubli-bench-scale");
  const bool external = !flags.coordinator.empty();
  std::unique_ptr<CoordinatorServer> coordinator;
  std::string address = flags.coordinator;
  if (!external) {
    CoordinatorServer::Options options;
    options.data_dir = dir.path() + "/coordinator";
    options.listen_address = "127.0.0.1:0";
    auto started = CoordinatorServer::Start(options);
    if (!started.ok()) return Fail("start coordinator", started.status());
    coordinator = *std::move(started);
    address = coordinator->address();
  }
  std::vector<std::unique_ptr<worker::WorkerServer>> workers;
  for (int i = 0; i < (external ? 0 : flags.workers); ++i) {
    worker::WorkerServer::Options w;
    w.coordinator_address = address;
    w.name = absl::StrCat("bench-worker-", i);
    auto started = worker::WorkerServer::Start(w);
    if (!started.ok()) return Fail("start worker", started.status());
    if (!(*started)->WaitRegistered(absl::Seconds(30))) {
      return Fail("worker", absl::DeadlineExceededError("did not register"));
    }
    workers.push_back(*std::move(started));
  }
  auto received = [&] {
    int64_t total = 0;
    for (const auto& w : workers) total += w->slice_bytes_received();
    return total;
  };

  ModelConfig config;
  config.model_id = "bench";
  config.shards = flags.shards;
  config.slices = flags.slices;
  config.sequences = flags.sequences;
  config.train.epochs_per_position = flags.epochs;
  auto stub = NewStub(address, 0);
  if (absl::Status s =
          CreateModel(*stub, "bench", coordinator::ConfigToProto(config))
              .status();
      !s.ok()) {
    return Fail("create", s);
  }

  // Generated batch by batch: the client holds one stream's worth.
  const absl::Time ingest_start = absl::Now();
  constexpr int64_t kStream = 100000;
  for (int64_t first = 0; first < flags.samples; first += kStream) {
    std::vector<v1::Sample> batch;
    for (int64_t i = first; i < std::min(flags.samples, first + kStream);
         ++i) {
      batch.push_back(ToProto(SyntheticSample(i)));
    }
    if (absl::Status s = Ingest(*stub, "bench", batch); !s.ok()) {
      return Fail("ingest", s);
    }
  }
  const double ingest_s = absl::ToDoubleSeconds(absl::Now() - ingest_start);

  const absl::Time train_start = absl::Now();
  if (absl::Status s = TrainAndWait(*stub, "bench"); !s.ok()) {
    return Fail("train", s);
  }
  auto trained = WaitForAllPrefixes(*stub, "bench", absl::Hours(2));
  if (!trained.ok()) return Fail("train", trained.status());
  const double train_s = absl::ToDoubleSeconds(absl::Now() - train_start);
  const int64_t sent_training = received();

  // Owners spread over the data, forgotten one after another.
  std::vector<double> forget_ms;
  std::set<std::string> forgotten;
  std::vector<std::string> deletion_ids;
  const absl::Time retrain_start = absl::Now();
  for (int k = 0; k < flags.forget; ++k) {
    const int64_t owner =
        (flags.samples / kOwnerSize) * (2 * k + 1) / (2 * flags.forget);
    v1::ForgetOwnerRequest request;
    request.set_model_id("bench");
    request.set_owner(absl::StrFormat("o%07d", owner));
    forgotten.insert(request.owner());
    v1::DeletionReceipt receipt;
    grpc::ClientContext context;
    context.set_deadline(Deadline(60));
    const absl::Time sent = absl::Now();
    const grpc::Status status =
        stub->ForgetOwner(&context, request, &receipt);
    if (!status.ok()) {
      return Fail("forget", absl::UnknownError(status.error_message()));
    }
    forget_ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - sent));
    deletion_ids.push_back(receipt.deletion_id());
  }
  auto restored = WaitForAllPrefixes(*stub, "bench", absl::Hours(2));
  if (!restored.ok()) return Fail("retrain", restored.status());
  const double retrain_s =
      absl::ToDoubleSeconds(absl::Now() - retrain_start);
  const int64_t sent_retrain = received() - sent_training;
  // ACCEPTED -> PURGED of each (server timestamps, so read after the
  // retrain without adding to it): the purge passes at this size.
  absl::StatusOr<std::vector<double>> purge_s =
      SecondsToPurged(*stub, deletion_ids);
  if (!purge_s.ok()) return Fail("purge", purge_s.status());

  struct rusage usage {};
  getrusage(RUSAGE_SELF, &usage);
  // After the peak was read: the benchmark's own bookkeeping.
  absl::StatusOr<PlannedWork> planned =
      PlanWork(config, flags.samples, forgotten);
  if (!planned.ok()) return Fail("slice bytes", planned.status());
  const int64_t* slice_bytes = &planned->slice_bytes;
  // Unknown with an external coordinator: its workers are elsewhere.
  const std::string sent_json =
      external ? "null"
               : absl::StrFormat("%.3f", static_cast<double>(sent_training) /
                                             static_cast<double>(*slice_bytes));
  const std::string retrain_sent_json =
      external ? "null"
               : absl::StrFormat("%.3f", static_cast<double>(sent_retrain) /
                                             static_cast<double>(*slice_bytes));
  // 1: the retrain sent each changed slice once and no unchanged one (with
  // several workers a changed slice may go to each that trains it).
  const std::string retrain_sent_changed_json =
      external || planned->changed_slice_bytes == 0
          ? "null"
          : absl::StrFormat("%.3f",
                            static_cast<double>(sent_retrain) /
                                static_cast<double>(planned->changed_slice_bytes));
  std::printf(
      "{\"bench\":\"scale\",\"samples\":%lld,\"sample_bytes\":%d,"
      "\"workers\":%d,\"shards\":%d,\"slices\":%d,\"sequences\":%d,"
      "\"epochs\":%d,\"ingest_samples_per_s\":%.0f,\"train_s\":%.2f,"
      "\"train_sample_visits\":%lld,\"train_sample_visits_per_s\":%.0f,"
      "\"slice_bytes\":%lld,\"sent_per_slice_byte\":%s,"
      "\"forgotten_owners\":%d,\"forget_ms_p50\":%.2f,\"forget_ms_p99\":%.2f,"
      "\"retrain_s\":%.2f,\"retrain_over_train\":%.3f,"
      "\"retrain_sent_per_slice_byte\":%s,\"changed_slice_bytes\":%lld,"
      "\"retrain_sent_per_changed_slice_byte\":%s,"
      "\"purged_s_p50\":%.2f,\"purged_s_max\":%.2f,\"peak_rss_mib\":%.0f,"
      "\"rss_scope\":\"%s\","
      "\"machine\":%s}\n",
      static_cast<long long>(flags.samples), kWidth, flags.workers,
      flags.shards, flags.slices, flags.sequences, flags.epochs,
      static_cast<double>(flags.samples) / ingest_s, train_s,
      static_cast<long long>(planned->training_sample_visits),
      static_cast<double>(planned->training_sample_visits) / train_s,
      static_cast<long long>(*slice_bytes), sent_json.c_str(), flags.forget,
      Percentile(forget_ms, 0.5), Percentile(forget_ms, 0.99), retrain_s,
      retrain_s / train_s, retrain_sent_json.c_str(),
      static_cast<long long>(planned->changed_slice_bytes),
      retrain_sent_changed_json.c_str(), Percentile(*purge_s, 0.5),
      Percentile(*purge_s, 1.0), static_cast<double>(usage.ru_maxrss) / 1024.0,
      external ? "the client only (read the coordinator's from its process)"
               : "coordinator, workers and client in one process",
      MachineJson().c_str());
  std::fflush(stdout);
  if (coordinator != nullptr) coordinator->Shutdown(absl::Seconds(5));
  for (auto& w : workers) w->Shutdown(absl::Seconds(1));
  return 0;
}

}  // namespace

int RunScaleBench(const std::vector<std::string>& args) {
  ScaleFlags flags;
  if (!ParseKeyValueFlags(
          args, {{"samples", NumberFlag(&flags.samples)},
                 {"workers", NumberFlag(&flags.workers)},
                 {"shards", NumberFlag(&flags.shards)},
                 {"slices", NumberFlag(&flags.slices)},
                 {"sequences", NumberFlag(&flags.sequences)},
                 {"epochs", NumberFlag(&flags.epochs)},
                 {"forget", NumberFlag(&flags.forget)},
                 {"coordinator", NonEmptyFlag(&flags.coordinator)}}) ||
      flags.samples < kOwnerSize || flags.workers < 1 || flags.forget < 1) {
    std::fprintf(stderr,
                 "usage: oubli-bench scale [--samples=N] [--workers=N] "
                 "[--shards=S] [--slices=L] [--sequences=B] [--epochs=E] "
                 "[--forget=OWNERS] [--coordinator=HOST:PORT]\n");
    return 2;
  }
  return Run(flags);
}

}  // namespace oubli::bench
