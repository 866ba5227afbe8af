// `oubli-bench service`: the public gRPC API under load, end to end over a
// real loopback channel to an in-process oubli-coordinator (CoordinatorServer
// on 127.0.0.1:0 with a scratch data dir). Synthetic 1x4x4 samples keep the
// setup to seconds. Results, one JSON object per line:
//
//   service_time_to_forget  DeleteSamples sent -> first Predict that no
//                           longer serves the deleted sample (see below)
//   service_predict         Predict latency and rows/s, 1 and N clients;
//                           with --workers=N, N in-process oubli-workers
//                           answer the shards (fan-out) and the line says
//                           how many shards they answered
//   service_durable_deletions  acknowledged (durable) deletions/s with N
//                           concurrent clients, ack latency, errors
//   service_predict_mixed   Predict latency at a steady rate from one
//                           client, idle and then while another client
//                           deletes at a steady rate (background retraining
//                           and purge passes running), and the p99 ratio
//
// --runs=NAME,... picks the runs (default: all), named as their lines
// without "service_": time_to_forget, predict, durable_deletions,
// predict_mixed. Every line carries the targets it is judged against and the
// machine.
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/grpc_status.h"
#include "common/status_macros.h"
#include "common/thread_priority.h"
#include "coordinator/grpc_service.h"
#include "coordinator/sharding_plan.h"
#include "oubli/v1/oubli.grpc.pb.h"
#include "tools/bench/bench.h"
#include "tools/bench/bench_util.h"
#include "tools/bench/service_client.h"
#include "worker/worker_service.h"

namespace oubli::bench {
namespace {

namespace v1 = ::oubli::v1;
using coordinator::CoordinatorServer;

constexpr int kSide = 4;  // 1x4x4 inputs
constexpr int kWidth = kSide * kSide;
constexpr int kLmVocab = 64;  // TinyLmConfig's vocabulary
constexpr int kClasses = 3;

// Targets the service is judged against (see the brief in README/bench).
constexpr double kTargetTimeToForgetP99Ms = 50.0;
constexpr double kTargetDeletionsPerSecond = 2000.0;
constexpr double kTargetMixedPredictP99Ratio = 2.0;  // loaded p99 / idle p99

constexpr absl::string_view kRunNames[] = {
    "time_to_forget", "predict", "durable_deletions", "predict_mixed"};

struct ServiceFlags {
  int deletions = 200;                   // time-to-forget deletions
  int clients = 32;                      // concurrent deleting clients
  double duration_s = 5;                 // of the durable-deletion run
  int64_t samples = 50000;               // in the durable-deletion model
  bool train_first = true;               // train that model before deleting
  int epochs = 1;                        // epochs per position (tiny)
  int predict_rows = 64;                 // rows per Predict
  int predict_requests = 500;            // per client count
  int predict_clients = 8;               // the concurrent predict run
  int training_threads = 1;              // per model engine
  // The coordinator's defaults (oubli-coordinator).
  int background_nice = 10;
  bool background_idle_class = false;
  std::string retrain_mode = "batched";  // batched | immediate
  int workers = 0;  // in-process oubli-workers (train and serve shards)
  // time_to_forget on a causal language model (probed with Score) instead
  // of the MLP (probed with Predict).
  bool lm = false;
  // The mixed run: Predicts/s from one client, deletions/s from another,
  // seconds per phase, its model's samples and retraining window.
  double mixed_predict_rate = 50;
  double mixed_delete_rate = 5;
  double mixed_duration_s = 10;
  int64_t mixed_samples = 20000;
  int64_t mixed_window_ms = 1000;
  // Idle and loaded phases alternate this many times (each phase
  // mixed_duration_s), so a drift of the machine's own noise during the
  // run lands on both sides of the ratio.
  int mixed_rounds = 3;
  std::set<std::string, std::less<>> runs = {std::begin(kRunNames),
                                             std::end(kRunNames)};
};

// "a,b": run names of kRunNames; false (naming the first unknown one) else.
bool ParseRuns(const std::string& value,
               std::set<std::string, std::less<>>* runs) {
  runs->clear();
  for (absl::string_view name : absl::StrSplit(value, ',')) {
    if (std::find(std::begin(kRunNames), std::end(kRunNames), name) ==
        std::end(kRunNames)) {
      std::fprintf(stderr,
                   "--runs: unknown run '%s' (time_to_forget, predict, "
                   "durable_deletions, predict_mixed)\n",
                   std::string(name).c_str());
      return false;
    }
    runs->emplace(name);
  }
  return true;
}

bool ParseFlags(const std::vector<std::string>& args, ServiceFlags* flags) {
  const FlagSetters setters = {
      {"deletions", NumberFlag(&flags->deletions)},
      {"clients", NumberFlag(&flags->clients)},
      {"duration_s", NumberFlag(&flags->duration_s)},
      {"samples", NumberFlag(&flags->samples)},
      {"train_first", NumberFlag(&flags->train_first)},
      {"epochs", NumberFlag(&flags->epochs)},
      {"predict_rows", NumberFlag(&flags->predict_rows)},
      {"predict_requests", NumberFlag(&flags->predict_requests)},
      {"predict_clients", NumberFlag(&flags->predict_clients)},
      {"training_threads", NumberFlag(&flags->training_threads)},
      {"background_nice", NumberFlag(&flags->background_nice)},
      {"background_idle_class", NumberFlag(&flags->background_idle_class)},
      {"workers", NumberFlag(&flags->workers)},
      {"lm", NumberFlag(&flags->lm)},
      {"mixed_predict_rate", NumberFlag(&flags->mixed_predict_rate)},
      {"mixed_delete_rate", NumberFlag(&flags->mixed_delete_rate)},
      {"mixed_duration_s", NumberFlag(&flags->mixed_duration_s)},
      {"mixed_samples", NumberFlag(&flags->mixed_samples)},
      {"mixed_window_ms", NumberFlag(&flags->mixed_window_ms)},
      {"mixed_rounds", NumberFlag(&flags->mixed_rounds)},
      {"runs",
       [&](const std::string& v) { return ParseRuns(v, &flags->runs); }},
      {"retrain_mode",
       [&](const std::string& v) {
         flags->retrain_mode = v;
         return v == "batched" || v == "immediate";
       }},
  };
  if (!ParseKeyValueFlags(args, setters)) return false;
  if (flags->deletions < 1 || flags->clients < 1 || flags->duration_s <= 0 ||
      flags->samples < 1 || flags->predict_rows < 1 ||
      flags->predict_requests < 1 || flags->predict_clients < 1 ||
      flags->workers < 0 || flags->mixed_predict_rate <= 0 ||
      flags->mixed_delete_rate <= 0 || flags->mixed_duration_s <= 0 ||
      flags->mixed_samples < 1 || flags->mixed_window_ms < 0 ||
      flags->mixed_rounds < 1) {
    std::fprintf(stderr, "counts, rates and durations must be positive\n");
    return false;
  }
  if (const absl::Status nice =
          CheckNiceIncrement("--background_nice", flags->background_nice);
      !nice.ok()) {
    std::fprintf(stderr, "%s\n", std::string(nice.message()).c_str());
    return false;
  }
  if (flags->mixed_delete_rate * flags->mixed_duration_s *
          flags->mixed_rounds >=
      flags->mixed_samples) {
    std::fprintf(stderr,
                 "--mixed_samples must exceed mixed_delete_rate x "
                 "mixed_duration_s x mixed_rounds (one sample per "
                 "deletion)\n");
    return false;
  }
  // Without --train_first the predict run uses the time-to-forget model.
  if (flags->runs.contains("predict") && !flags->train_first &&
      !flags->runs.contains("time_to_forget")) {
    std::fprintf(stderr,
                 "--runs: predict without --train_first needs "
                 "time_to_forget\n");
    return false;
  }
  return true;
}

int Fail(const absl::Status& status) {
  return ::oubli::bench::Fail("service", status);
}

double Max(const std::vector<double>& values) {
  return values.empty() ? 0 : *std::max_element(values.begin(), values.end());
}

double MillisSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(
             std::chrono::steady_clock::now() - start)
      .count();
}

// Tiny MLP on 1x4x4 inputs with the given plan. Retraining is batched with
// a window longer than the benchmark unless --retrain_mode=immediate, so
// background retraining does not compete for the two cores by default.
v1::ModelConfig TinyConfig(const ServiceFlags& flags, int hidden_layers,
                           int shards, int slices, int sequences) {
  v1::ModelConfig c;
  c.set_backbone(v1::BACKBONE_KIND_MLP);
  c.set_input_channels(1);
  c.set_input_height(kSide);
  c.set_input_width(kSide);
  c.set_num_classes(kClasses);
  for (int i = 0; i < hidden_layers; ++i) c.add_mlp_hidden(12);
  c.mutable_lora()->set_rank(2);
  c.set_shards(shards);
  c.set_slices(slices);
  c.set_sequences(sequences);
  c.set_seed(7);
  // Per-sample spread, as these figures were first measured with; the
  // churn bench compares placements.
  c.mutable_placement()->set_by(v1::PLACEMENT_SAMPLE);
  c.set_epochs_per_position(flags.epochs);
  c.set_batch_size(64);
  c.set_learning_rate(1e-2);
  if (flags.retrain_mode == "batched") {
    c.mutable_retrain()->set_mode(v1::RETRAIN_MODE_BATCHED);
    c.mutable_retrain()->set_window_ms(3600 * 1000);
    c.mutable_retrain()->set_max_batch(1 << 30);
  } else {
    c.mutable_retrain()->set_mode(v1::RETRAIN_MODE_IMMEDIATE);
  }
  return c;
}

// A small Llama-layout causal LM with the same plan and retrain policy as
// TinyConfig: one block per slice (S3T groups count blocks from the top).
v1::ModelConfig TinyLmConfig(const ServiceFlags& flags, int shards,
                             int slices, int sequences) {
  v1::ModelConfig c = TinyConfig(flags, 1, shards, slices, sequences);
  c.set_backbone(v1::BACKBONE_KIND_DECODER);
  c.clear_input_channels();
  c.clear_input_height();
  c.clear_input_width();
  c.clear_num_classes();
  c.clear_mlp_hidden();
  v1::DecoderConfig* d = c.mutable_decoder();
  d->set_layout(v1::DECODER_LAYOUT_LLAMA);
  d->set_objective(v1::DECODER_OBJECTIVE_CAUSAL_LM);
  d->set_vocab_size(kLmVocab);
  d->set_context_length(16);
  d->set_dim(16);
  d->set_layers(slices);
  d->set_heads(2);
  d->set_mlp_dim(32);
  return c;
}

// Sample i of a generated set: id "s-<i>", one owner per 5 samples.
v1::Sample NumberedSample(int64_t i) {
  v1::Sample s;
  s.set_id(absl::StrCat("s-", i));
  s.set_owner(absl::StrCat("owner-", i / 5));
  return s;
}

// Token samples for TinyLmConfig: each counts up from a start of its own
// (a prompt of two tokens, then six to learn). One owner per 5 samples.
std::vector<v1::Sample> SyntheticTokenSamples(int64_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<v1::Sample> samples;
  samples.reserve(n);
  for (int64_t i = 0; i < n; ++i) {
    v1::Sample s = NumberedSample(i);
    const uint32_t start = 1 + static_cast<uint32_t>(rng() % (kLmVocab - 9));
    for (uint32_t t = start; t < start + 8; ++t) s.add_tokens(t);
    s.set_prompt_tokens(2);
    samples.push_back(std::move(s));
  }
  return samples;
}

// Learnable synthetic samples: the label is which third of the image is
// brightest. One owner per 5 samples.
std::vector<v1::Sample> SyntheticSamples(int64_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<v1::Sample> samples;
  samples.reserve(n);
  for (int64_t i = 0; i < n; ++i) {
    v1::Sample s = NumberedSample(i);
    std::string features(kWidth, '\0');
    for (char& byte : features) byte = static_cast<char>(rng() % 200);
    const int label = static_cast<int>(rng() % kClasses);
    for (int k = 0; k < 5; ++k)
      features[label * 5 + k] = static_cast<char>(250);
    s.set_label(label);
    s.set_features(std::move(features));
    s.set_feature_type(v1::FEATURE_TYPE_U8);
    samples.push_back(std::move(s));
  }
  return samples;
}

struct SetupTimes {
  double ingest_s = 0;
  double train_s = 0;
};

absl::StatusOr<SetupTimes> SetUpModel(v1::Oubli::Stub& stub,
                                      const std::string& model_id,
                                      const v1::ModelConfig& config,
                                      const std::vector<v1::Sample>& samples,
                                      bool train) {
  SetupTimes times;
  OUBLI_RETURN_IF_ERROR(CreateModel(stub, model_id, config).status());
  auto start = std::chrono::steady_clock::now();
  OUBLI_RETURN_IF_ERROR(Ingest(stub, model_id, samples));
  times.ingest_s = MillisSince(start) / 1000;
  if (train) {
    start = std::chrono::steady_clock::now();
    OUBLI_RETURN_IF_ERROR(TrainAndWait(stub, model_id));
    times.train_s = MillisSince(start) / 1000;
  }
  return times;
}

grpc::Status Predict(v1::Oubli::Stub& stub, const std::string& model_id,
                     const std::string& features_f32le, int rows,
                     v1::PredictResponse* response) {
  grpc::ClientContext context;
  context.set_deadline(Deadline(60));
  v1::PredictRequest request;
  request.set_model_id(model_id);
  request.set_rows(rows);
  request.set_features_f32le(features_f32le);
  return stub.Predict(&context, request, response);
}

std::string RandomFeatures(int rows, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> uniform(0.0f, 1.0f);
  std::vector<float> values(static_cast<size_t>(rows) * kWidth);
  for (float& v : values) v = uniform(rng);
  return std::string(reinterpret_cast<const char*>(values.data()),
                     values.size() * sizeof(float));
}

// ----------------------------------------------------------- time to forget
//
// Definition. For one deletion of one sample: the time from sending
// DeleteSamples to receiving the first Predict response (issued right after
// the reply, repeated until it holds) in which the model no longer serves
// the sample, i.e.
//   * the fingerprint differs from the one served before the deletion, and
//   * the deleted sample's shard serves another checkpoint than before
//     (checkpoint keys hash the ids of their slices, so a checkpoint that
//     held the sample can never be served again), or is not served at all.
// For this to be a real change every time, each deleted sample is chosen in
// the LAST slice of its shard's served prefix (read from the previous
// Predict's served prefixes; the sample's slice comes from the public
// sharding function, ShardingPlan::Assign). Cutting one slice at a time with
// one slice order per shard (B = 1) gives L - 1 such deletions per shard
// before the shard would be left with a single slice, so the model gets
// ceil(deletions / (L - 1)) + 1 shards. Retraining is batched behind a long
// window (by default), so nothing restores a prefix during the run.
struct ForgetModel {
  int shards = 0;
  int slices = 8;
  v1::ModelConfig config;
  // Sample ids by (shard, slice), each list in deletion order.
  std::map<std::pair<int, int>, std::vector<std::string>> ids_by_slice;
  std::vector<v1::Sample> samples;
};

absl::StatusOr<ForgetModel> MakeForgetModel(const ServiceFlags& flags) {
  ForgetModel m;
  m.shards =
      std::min(1024, (flags.deletions + m.slices - 2) / (m.slices - 1) + 1);
  // One adapter layer (block) per slice; B = 1 so every shard has one
  // order. ~16 samples per slice: tiny training, and plenty to delete from.
  const int64_t samples = int64_t{16} * m.shards * m.slices;
  if (flags.lm) {
    m.config = TinyLmConfig(flags, m.shards, m.slices, 1);
    m.samples = SyntheticTokenSamples(samples, 11);
  } else {
    m.config = TinyConfig(flags, m.slices, m.shards, m.slices, 1);
    m.samples = SyntheticSamples(samples, 11);
  }
  OUBLI_ASSIGN_OR_RETURN(ModelConfig domain,
                         coordinator::ConfigFromProto(m.config));
  OUBLI_ASSIGN_OR_RETURN(coordinator::ShardingPlan plan,
                         coordinator::ShardingPlan::Create(domain));
  for (const v1::Sample& s : m.samples) {
    Sample sample;
    sample.id = s.id();
    sample.owner = s.owner();
    const SliceRef ref = plan.Assign(sample);
    m.ids_by_slice[{ref.shard, ref.slice}].push_back(s.id());
  }
  return m;
}

const v1::ServedShard* FindServed(const v1::PredictResponse& response,
                                  int shard) {
  for (const v1::ServedShard& served : response.served()) {
    if (served.shard() == shard) return &served;
  }
  return nullptr;
}

int RunTimeToForget(const ServiceFlags& flags, const std::string& address) {
  auto stub = NewStub(address, 0);
  auto model = MakeForgetModel(flags);
  if (!model.ok()) return Fail(model.status());
  const std::string model_id = "ttf";
  auto setup = SetUpModel(*stub, model_id, model->config, model->samples,
                          /*train=*/true);
  if (!setup.ok()) return Fail(setup.status());

  // What the model serves, as one answer tells: Predict of one row, or for
  // a language model Score of one sequence (its fingerprint and served
  // shards are copied into the same message).
  const std::string features = RandomFeatures(1, 3);
  const char* const probe_name = flags.lm ? "Score" : "Predict";
  auto probe = [&](v1::PredictResponse* out) {
    if (!flags.lm) return Predict(*stub, model_id, features, 1, out);
    grpc::ClientContext context;
    context.set_deadline(Deadline(60));
    v1::ScoreRequest request;
    request.set_model_id(model_id);
    v1::TokenSequence* sequence = request.add_sequences();
    for (uint32_t t : {3u, 4u, 5u, 6u}) sequence->add_tokens(t);
    v1::ScoreResponse scored;
    grpc::Status status = stub->Score(&context, request, &scored);
    out->Clear();
    out->set_fingerprint(scored.fingerprint());
    *out->mutable_served() = scored.served();
    return status;
  };
  v1::PredictResponse current;
  grpc::Status status = probe(&current);
  if (!status.ok()) return Fail(FromGrpcStatus(status, probe_name));

  std::vector<double> forget_ms, reply_ms;
  int max_predicts = 0, not_reflected = 0, skipped_shards = 0;
  int shard = -1;
  for (int d = 0; d < flags.deletions; ++d) {
    // Next shard (round robin) still serving at least two slices.
    const v1::ServedShard* served = nullptr;
    std::string id;
    for (int tries = 0; tries < model->shards && id.empty(); ++tries) {
      shard = (shard + 1) % model->shards;
      served = FindServed(current, shard);
      if (served == nullptr || !served->served() || served->prefix_size() < 2) {
        ++skipped_shards;
        continue;
      }
      auto& ids = model->ids_by_slice[{
          shard, served->prefix(served->prefix_size() - 1)}];
      if (ids.empty()) {
        ++skipped_shards;
        continue;
      }
      id = ids.back();
      ids.pop_back();
    }
    if (id.empty()) break;  // every shard is down to one slice
    const std::string key_before = served->checkpoint_key();
    const std::string fingerprint_before = current.fingerprint();

    const auto sent = std::chrono::steady_clock::now();
    v1::DeletionReceipt receipt;
    {
      grpc::ClientContext context;
      context.set_deadline(Deadline(60));
      v1::DeleteSamplesRequest request;
      request.set_model_id(model_id);
      request.add_sample_ids(id);
      status = stub->DeleteSamples(&context, request, &receipt);
    }
    if (!status.ok()) return Fail(FromGrpcStatus(status, "DeleteSamples"));
    reply_ms.push_back(MillisSince(sent));
    bool reflected = false;
    int predicts = 0;
    // Bounded so a service that never switches cannot hang the benchmark.
    while (!reflected && MillisSince(sent) < 10000) {
      status = probe(&current);
      ++predicts;
      if (!status.ok()) return Fail(FromGrpcStatus(status, probe_name));
      const v1::ServedShard* after = FindServed(current, shard);
      const bool shard_switched = after == nullptr || !after->served() ||
                                  after->checkpoint_key() != key_before;
      reflected = shard_switched && current.fingerprint() != fingerprint_before;
    }
    if (!reflected) {
      ++not_reflected;
      continue;
    }
    forget_ms.push_back(MillisSince(sent));
    max_predicts = std::max(max_predicts, predicts);
  }
  const double p99 = Percentile(forget_ms, 0.99);
  std::printf(
      "{\"bench\":\"service_time_to_forget\",\"transport\":\"grpc loopback\","
      "\"model\":\"%s\","
      "\"definition\":\"ms from sending DeleteSamples (one sample, chosen in "
      "the last slice of its shard's served prefix) to the first Predict "
      "response, issued right after the reply and repeated until it holds, "
      "whose fingerprint differs from the pre-deletion one and whose served "
      "checkpoint for the sample's shard differs (or the shard is dropped)\","
      "\"deletions\":%zu,\"not_reflected\":%d,\"skipped_shards\":%d,"
      "\"shards\":%d,\"slices\":%d,\"sequences\":1,\"samples\":%zu,"
      "\"retrain_mode\":\"%s\",\"setup_ingest_s\":%.2f,\"setup_train_s\":%.2f,"
      "\"reply_ms_p50\":%.3f,\"reply_ms_p99\":%.3f,"
      "\"time_to_forget_ms_p50\":%.3f,\"time_to_forget_ms_p99\":%.3f,"
      "\"time_to_forget_ms_max\":%.3f,\"max_predicts_until_reflected\":%d,"
      "\"target_time_to_forget_ms_p99\":%.1f,\"meets_target\":%s,"
      "\"machine\":%s}\n",
      flags.lm ? "causal LM (Score)" : "MLP (Predict)", forget_ms.size(),
      not_reflected, skipped_shards, model->shards,
      model->slices, model->samples.size(), flags.retrain_mode.c_str(),
      setup->ingest_s, setup->train_s, Percentile(reply_ms, 0.5),
      Percentile(reply_ms, 0.99), Percentile(forget_ms, 0.5), p99,
      Max(forget_ms), max_predicts, kTargetTimeToForgetP99Ms,
      !forget_ms.empty() && not_reflected == 0 &&
              p99 <= kTargetTimeToForgetP99Ms
          ? "true"
          : "false",
      MachineJson().c_str());
  std::fflush(stdout);
  return not_reflected == 0 && !forget_ms.empty() ? 0 : 1;
}

// ------------------------------------------------------------------ predict

int RunPredict(const ServiceFlags& flags, const std::string& address,
               const std::string& model_id, int shards) {
  const std::string features = RandomFeatures(flags.predict_rows, 5);
  for (const int clients : {1, flags.predict_clients}) {
    std::vector<std::unique_ptr<v1::Oubli::Stub>> stubs;
    for (int c = 0; c < clients; ++c) stubs.push_back(NewStub(address, c));
    std::vector<std::vector<double>> latencies(clients);
    std::atomic<int> errors{0};
    std::atomic<int64_t> shards_by_workers{0}, shards_served{0};
    // Warm up each channel (connection set-up is not a prediction).
    for (auto& stub : stubs) {
      v1::PredictResponse response;
      if (!Predict(*stub, model_id, features, flags.predict_rows, &response)
               .ok()) {
        ++errors;
      }
    }
    const auto start = std::chrono::steady_clock::now();
    std::vector<std::thread> threads;
    for (int c = 0; c < clients; ++c) {
      threads.emplace_back([&, c] {
        for (int i = c; i < flags.predict_requests; i += clients) {
          v1::PredictResponse response;
          const auto sent = std::chrono::steady_clock::now();
          if (!Predict(*stubs[c], model_id, features, flags.predict_rows,
                       &response)
                   .ok()) {
            ++errors;
            continue;
          }
          latencies[c].push_back(MillisSince(sent));
          for (const v1::ServedShard& shard : response.served()) {
            if (!shard.served()) continue;
            ++shards_served;
            if (!shard.served_by().empty()) ++shards_by_workers;
          }
        }
      });
    }
    for (auto& t : threads) t.join();
    const double seconds = MillisSince(start) / 1000;
    std::vector<double> all;
    for (const auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
    std::printf(
        "{\"bench\":\"service_predict\",\"transport\":\"grpc loopback\","
        "\"model\":\"%s\",\"shards\":%d,\"workers\":%d,"
        "\"shard_answers_by_workers\":%lld,\"shard_answers\":%lld,"
        "\"clients\":%d,\"rows\":%d,"
        "\"requests\":%zu,\"errors\":%d,\"latency_ms_p50\":%.3f,"
        "\"latency_ms_p99\":%.3f,\"requests_per_s\":%.1f,\"rows_per_s\":%.0f,"
        "\"machine\":%s}\n",
        model_id.c_str(), shards, flags.workers,
        static_cast<long long>(shards_by_workers.load()),
        static_cast<long long>(shards_served.load()), clients,
        flags.predict_rows, all.size(), errors.load(), Percentile(all, 0.5),
        Percentile(all, 0.99), all.size() / seconds,
        all.size() * flags.predict_rows / seconds, MachineJson().c_str());
    std::fflush(stdout);
  }
  return 0;
}

// --------------------------------------------------------- durable deletions

int RunDurableDeletions(const ServiceFlags& flags, const std::string& address,
                        const std::string& model_id,
                        const std::vector<v1::Sample>& samples,
                        const SetupTimes& setup,
                        const v1::ModelConfig& config) {
  std::vector<std::unique_ptr<v1::Oubli::Stub>> stubs;
  for (int c = 0; c < flags.clients; ++c) stubs.push_back(NewStub(address, c));
  // Warm up each channel with a cheap call.
  for (auto& stub : stubs) {
    if (auto model = GetModel(*stub, model_id); !model.ok()) {
      return Fail(model.status());
    }
  }
  // Distinct samples per client, in a shuffled order (random shards/slices).
  std::vector<size_t> order(samples.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::shuffle(order.begin(), order.end(), std::mt19937_64(13));

  std::vector<std::vector<double>> latencies(flags.clients);
  std::atomic<int64_t> errors{0}, not_resolved{0};
  std::atomic<bool> ran_out{false};
  absl::Mutex mu;
  std::string first_error;
  const auto start = std::chrono::steady_clock::now();
  const double duration_ms = flags.duration_s * 1000;
  std::vector<std::thread> threads;
  for (int c = 0; c < flags.clients; ++c) {
    threads.emplace_back([&, c] {
      size_t next = c;
      while (MillisSince(start) < duration_ms) {
        if (next >= order.size()) {
          ran_out = true;
          return;
        }
        const std::string& id = samples[order[next]].id();
        next += flags.clients;
        grpc::ClientContext context;
        context.set_deadline(Deadline(60));
        v1::DeleteSamplesRequest request;
        request.set_model_id(model_id);
        request.add_sample_ids(id);
        v1::DeletionReceipt receipt;
        const auto sent = std::chrono::steady_clock::now();
        grpc::Status status =
            stubs[c]->DeleteSamples(&context, request, &receipt);
        const double ms = MillisSince(sent);
        if (!status.ok()) {
          ++errors;
          absl::MutexLock lock(&mu);
          if (first_error.empty()) {
            first_error = FromGrpcStatus(status, "DeleteSamples").ToString();
          }
          continue;
        }
        if (receipt.resolved_ids_size() != 1 || receipt.resolved_ids(0) != id) {
          ++not_resolved;
          continue;
        }
        latencies[c].push_back(ms);
      }
    });
  }
  for (auto& t : threads) t.join();
  const double seconds = MillisSince(start) / 1000;
  std::vector<double> all;
  for (const auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
  const double per_second = all.size() / seconds;

  // Cross-check against the model: every acknowledged deletion is gone.
  int64_t active_after = -1;
  if (auto model = GetModel(*stubs[0], model_id); model.ok()) {
    active_after = model->active_samples();
  }
  std::printf(
      "{\"bench\":\"service_durable_deletions\",\"transport\":\"grpc "
      "loopback\",\"definition\":\"DeleteSamples of one distinct sample per "
      "request from concurrent clients (one channel each); acknowledged = OK "
      "reply resolving the id, i.e. durable (fsynced) and forgotten\","
      "\"clients\":%d,\"duration_s\":%.2f,\"samples\":%zu,\"trained\":%s,"
      "\"shards\":%d,\"slices\":%d,\"sequences\":%d,\"retrain_mode\":\"%s\","
      "\"setup_ingest_s\":%.2f,\"setup_train_s\":%.2f,"
      "\"acknowledged\":%zu,\"acknowledged_per_s\":%.1f,"
      "\"ack_latency_ms_p50\":%.3f,\"ack_latency_ms_p99\":%.3f,"
      "\"ack_latency_ms_max\":%.3f,\"errors\":%lld,\"not_resolved\":%lld,"
      "\"first_error\":\"%s\",\"ran_out_of_samples\":%s,"
      "\"active_samples_after\":%lld,\"active_samples_consistent\":%s,"
      "\"target_acknowledged_per_s\":%.0f,\"meets_target\":%s,"
      "\"machine\":%s}\n",
      flags.clients, seconds, samples.size(),
      flags.train_first ? "true" : "false", config.shards(), config.slices(),
      config.sequences(), flags.retrain_mode.c_str(), setup.ingest_s,
      setup.train_s, all.size(), per_second, Percentile(all, 0.5),
      Percentile(all, 0.99), Max(all), static_cast<long long>(errors.load()),
      static_cast<long long>(not_resolved.load()),
      JsonEscape(first_error).c_str(), ran_out ? "true" : "false",
      static_cast<long long>(active_after),
      active_after == static_cast<int64_t>(samples.size() - all.size())
          ? "true"
          : "false",
      kTargetDeletionsPerSecond,
      per_second >= kTargetDeletionsPerSecond ? "true" : "false",
      MachineJson().c_str());
  std::fflush(stdout);
  return 0;
}

// ------------------------------------------------------------ predict mixed
//
// Predict latency while the service forgets, against the same load with
// nothing else running, in one process: the ratio is what the target
// judges. One client sends Predict (--predict_rows rows) at
// --mixed_predict_rate per second for --mixed_duration_s, open loop:
// request i is due i / rate after the phase starts and its latency counts
// from then, so a slow answer is also charged to the requests that wait
// behind it. The idle phase runs alone; in the loaded phase a second client
// meanwhile deletes one sample per request at --mixed_delete_rate per
// second. The model (S=4, L=4, B=2 over --mixed_samples) retrains in batches
// behind a --mixed_window_ms window, so retraining and purge passes run
// during the loaded phase. --mixed_rounds pairs of phases alternate (each
// loaded phase followed by a wait for the backlog, so the next idle phase
// is idle); the percentiles pool each kind's requests, so noise of the
// machine itself that comes and goes falls on both sides of the ratio.
// The positions it retrained come from the public API: served prefix
// positions after the phase minus before it, plus those the deletions cut
// (their receipts' affected prefixes).

using Clock = std::chrono::steady_clock;

// Calls send(due) `rate` times per second for `seconds`, call i due i / rate
// from now; a call due while the previous one still runs is made at once.
void Paced(double rate, double seconds,
           const std::function<void(Clock::time_point due)>& send) {
  const Clock::time_point start = Clock::now();
  for (int64_t i = 0; i < rate * seconds; ++i) {
    const Clock::time_point due =
        start + std::chrono::duration_cast<Clock::duration>(
                    std::chrono::duration<double>(i / rate));
    std::this_thread::sleep_until(due);
    send(due);
  }
}

struct PredictPhase {
  std::vector<double> latency_ms;  // from when each request was due
  int errors = 0;
};

PredictPhase PacedPredicts(const ServiceFlags& flags, v1::Oubli::Stub& stub,
                           const std::string& model_id,
                           const std::string& features) {
  PredictPhase phase;
  Paced(flags.mixed_predict_rate, flags.mixed_duration_s,
        [&](Clock::time_point due) {
          v1::PredictResponse response;
          if (Predict(stub, model_id, features, flags.predict_rows, &response)
                  .ok()) {
            phase.latency_ms.push_back(MillisSince(due));
          } else {
            ++phase.errors;
          }
        });
  return phase;
}

struct DeletePhase {
  int sent = 0;
  int errors = 0;
  std::string first_error;
  int64_t positions_cut = 0;  // by the acknowledged deletions
};

// DeleteSamples of ids[first], ids[first + 1], ... one per request, paced
// as above (ParseFlags keeps rate x duration x rounds below the number of
// ids).
DeletePhase PacedDeletions(const ServiceFlags& flags, v1::Oubli::Stub& stub,
                           const std::string& model_id,
                           const std::vector<std::string>& ids, size_t first) {
  DeletePhase phase;
  Paced(flags.mixed_delete_rate, flags.mixed_duration_s,
        [&](Clock::time_point) {
          grpc::ClientContext context;
          context.set_deadline(Deadline(60));
          v1::DeleteSamplesRequest request;
          request.set_model_id(model_id);
          request.add_sample_ids(ids[first + phase.sent++]);
          v1::DeletionReceipt receipt;
          const grpc::Status status =
              stub.DeleteSamples(&context, request, &receipt);
          if (!status.ok()) {
            if (phase.errors++ == 0) {
              phase.first_error =
                  FromGrpcStatus(status, "DeleteSamples").ToString();
            }
            return;
          }
          for (const v1::AffectedPrefix& cut : receipt.affected()) {
            phase.positions_cut +=
                cut.valid_length_before() - cut.valid_length_after();
          }
        });
  return phase;
}

// Prefix positions with a checkpoint, over every sequence of every shard.
int64_t ValidPositions(const v1::Model& model) {
  int64_t positions = 0;
  for (const v1::ShardStatus& shard : model.shards()) {
    for (const v1::SequenceStatus& sequence : shard.sequences()) {
      positions += sequence.valid_length();
    }
  }
  return positions;
}

// Seconds until the model has no pending deletion; -1 after `timeout_s`.
absl::StatusOr<double> WaitNoPendingDeletions(v1::Oubli::Stub& stub,
                                              const std::string& model_id,
                                              double timeout_s) {
  const auto start = Clock::now();
  while (MillisSince(start) < timeout_s * 1000) {
    OUBLI_ASSIGN_OR_RETURN(v1::Model model, GetModel(stub, model_id));
    if (model.pending_deletions() == 0) return MillisSince(start) / 1000;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return -1;
}

int RunPredictMixed(const ServiceFlags& flags, const std::string& address) {
  const std::string model_id = "mixed";
  v1::ModelConfig config = TinyConfig(flags, 4, 4, 4, 2);
  config.mutable_retrain()->set_mode(v1::RETRAIN_MODE_BATCHED);
  config.mutable_retrain()->set_window_ms(flags.mixed_window_ms);
  config.mutable_retrain()->set_max_batch(1 << 30);
  const std::vector<v1::Sample> samples =
      SyntheticSamples(flags.mixed_samples, 19);
  auto predict_stub = NewStub(address, 0);
  auto delete_stub = NewStub(address, 1);
  auto setup = SetUpModel(*predict_stub, model_id, config, samples,
                          /*train=*/true);
  if (!setup.ok()) return Fail(setup.status());
  std::vector<std::string> ids;
  for (const v1::Sample& sample : samples) ids.push_back(sample.id());
  std::shuffle(ids.begin(), ids.end(), std::mt19937_64(23));

  const std::string features = RandomFeatures(flags.predict_rows, 5);
  // Warm up the channel (connection set-up is not a prediction).
  v1::PredictResponse response;
  grpc::Status status =
      Predict(*predict_stub, model_id, features, flags.predict_rows, &response);
  if (!status.ok()) return Fail(FromGrpcStatus(status, "Predict"));

  PredictPhase idle, loaded;
  DeletePhase deletions;
  int64_t positions_retrained = 0;
  double drained_s = 0;  // after the last loaded phase
  int pending_after = 0;  // when the last loaded phase ended
  auto append = [](const PredictPhase& from, PredictPhase* to) {
    to->latency_ms.insert(to->latency_ms.end(), from.latency_ms.begin(),
                          from.latency_ms.end());
    to->errors += from.errors;
  };
  for (int round = 0; round < flags.mixed_rounds; ++round) {
    append(PacedPredicts(flags, *predict_stub, model_id, features), &idle);

    auto before = GetModel(*delete_stub, model_id);
    if (!before.ok()) return Fail(before.status());
    DeletePhase round_deletions;
    std::thread deleter([&] {
      round_deletions = PacedDeletions(flags, *delete_stub, model_id, ids,
                                       static_cast<size_t>(deletions.sent));
    });
    append(PacedPredicts(flags, *predict_stub, model_id, features), &loaded);
    deleter.join();
    auto after = GetModel(*delete_stub, model_id);
    if (!after.ok()) return Fail(after.status());
    positions_retrained += ValidPositions(*after) - ValidPositions(*before) +
                           round_deletions.positions_cut;
    pending_after = after->pending_deletions();
    deletions.sent += round_deletions.sent;
    deletions.positions_cut += round_deletions.positions_cut;
    if (deletions.errors == 0) {
      deletions.first_error = round_deletions.first_error;
    }
    deletions.errors += round_deletions.errors;
    // The next idle phase (and the runs after this one) start idle.
    // No pending deletion: all RESTORED, so purged too.
    auto drained = WaitNoPendingDeletions(*delete_stub, model_id, 60);
    if (!drained.ok()) return Fail(drained.status());
    if (*drained < 0) {
      return Fail(absl::DeadlineExceededError(
          "deletions still pending 60 s after a loaded phase: the next idle "
          "phase would not be idle"));
    }
    drained_s = *drained;
  }

  const double idle_p99 = Percentile(idle.latency_ms, 0.99);
  const double loaded_p99 = Percentile(loaded.latency_ms, 0.99);
  const double ratio = idle_p99 > 0 ? loaded_p99 / idle_p99 : 0;
  std::printf(
      "{\"bench\":\"service_predict_mixed\",\"transport\":\"grpc loopback\","
      "\"definition\":\"Predict latency from one client at predict_rate, "
      "open loop (ms from when each request was due), for duration_s alone "
      "(idle), then for duration_s while a second client sends "
      "DeleteSamples of one sample at delete_rate (loaded; batched "
      "background retraining and purge passes run meanwhile), rounds times "
      "(idle, loaded, wait for the backlog); percentiles over all rounds' "
      "requests of each kind; positions_retrained = served prefix positions "
      "after minus before each loaded phase plus those its deletions cut, "
      "summed\","
      "\"rounds\":%d,\"shards\":%d,\"slices\":%d,\"sequences\":%d,"
      "\"samples\":%zu,"
      "\"retrain_window_ms\":%lld,\"setup_ingest_s\":%.2f,"
      "\"setup_train_s\":%.2f,\"rows\":%d,\"predict_rate\":%.1f,"
      "\"delete_rate\":%.1f,\"duration_s\":%.1f,"
      "\"idle_requests\":%zu,\"idle_errors\":%d,"
      "\"idle_latency_ms_p50\":%.3f,\"idle_latency_ms_p99\":%.3f,"
      "\"idle_latency_ms_max\":%.3f,"
      "\"loaded_requests\":%zu,\"loaded_errors\":%d,"
      "\"loaded_latency_ms_p50\":%.3f,\"loaded_latency_ms_p99\":%.3f,"
      "\"loaded_latency_ms_max\":%.3f,"
      "\"deletions_sent\":%d,\"deletion_errors\":%d,"
      "\"first_deletion_error\":\"%s\",\"positions_cut\":%lld,"
      "\"positions_retrained\":%lld,\"pending_deletions_after\":%d,"
      "\"backlog_drained_s\":%.2f,"
      "\"latency_p99_ratio\":%.2f,\"target_latency_p99_ratio\":%.1f,"
      "\"background_nice\":%d,\"background_idle_class\":%s,"
      "\"meets_target\":%s,\"machine\":%s}\n",
      flags.mixed_rounds, config.shards(), config.slices(), config.sequences(),
      samples.size(), static_cast<long long>(flags.mixed_window_ms),
      setup->ingest_s,
      setup->train_s, flags.predict_rows, flags.mixed_predict_rate,
      flags.mixed_delete_rate, flags.mixed_duration_s, idle.latency_ms.size(),
      idle.errors, Percentile(idle.latency_ms, 0.5), idle_p99,
      Max(idle.latency_ms), loaded.latency_ms.size(), loaded.errors,
      Percentile(loaded.latency_ms, 0.5), loaded_p99, Max(loaded.latency_ms),
      deletions.sent, deletions.errors,
      JsonEscape(deletions.first_error).c_str(),
      static_cast<long long>(deletions.positions_cut),
      static_cast<long long>(positions_retrained), pending_after, drained_s,
      ratio, kTargetMixedPredictP99Ratio, flags.background_nice,
      flags.background_idle_class ? "true" : "false",
      idle.errors == 0 && loaded.errors == 0 && ratio > 0 &&
              ratio <= kTargetMixedPredictP99Ratio
          ? "true"
          : "false",
      MachineJson().c_str());
  std::fflush(stdout);
  return 0;
}

}  // namespace

int RunServiceBench(const std::vector<std::string>& args) {
  ServiceFlags flags;
  if (!ParseFlags(args, &flags)) return 2;
  TempDir dir("service");
  CoordinatorServer::Options options;
  options.listen_address = "127.0.0.1:0";
  options.data_dir = dir.path() + "/models";
  options.training_threads = flags.training_threads;
  options.background_priority = {.nice_increment = flags.background_nice,
                                 .idle_class = flags.background_idle_class};
  auto server = CoordinatorServer::Start(options);
  if (!server.ok()) return Fail(server.status());
  const std::string address = (*server)->address();
  std::fprintf(stderr, "oubli-bench service: coordinator on %s\n",
               address.c_str());
  std::vector<std::unique_ptr<worker::WorkerServer>> workers;
  for (int i = 0; i < flags.workers; ++i) {
    worker::WorkerServer::Options w;
    w.coordinator_address = address;
    w.name = absl::StrCat("bench-worker-", i);
    w.background_priority = options.background_priority;
    auto started = worker::WorkerServer::Start(w);
    if (!started.ok()) return Fail(started.status());
    if (!(*started)->WaitRegistered(absl::Seconds(30))) {
      return Fail(absl::DeadlineExceededError("a worker did not register"));
    }
    workers.push_back(*std::move(started));
  }

  // The first failing run's exit code.
  int rc = 0;
  const auto run = [&](absl::string_view name, const std::function<int()>& f) {
    if (!flags.runs.contains(name)) return;
    const int run_rc = f();
    if (rc == 0) rc = run_rc;
  };
  // First, while no other model exists: its idle phase must be idle.
  run("predict_mixed", [&] { return RunPredictMixed(flags, address); });
  run("time_to_forget", [&] { return RunTimeToForget(flags, address); });

  if (flags.runs.contains("predict") ||
      flags.runs.contains("durable_deletions")) {
    // The durable-deletion model: S=4, L=4, B=2 over --samples samples.
    const std::string model_id = "durable";
    const v1::ModelConfig config = TinyConfig(flags, 4, 4, 4, 2);
    const std::vector<v1::Sample> samples = SyntheticSamples(flags.samples, 17);
    auto stub = NewStub(address, 0);
    auto setup =
        SetUpModel(*stub, model_id, config, samples, flags.train_first);
    if (!setup.ok()) return Fail(setup.status());
    // Predict needs a trained model; without --train_first use the other
    // one.
    run("predict", [&] {
      return flags.train_first
                 ? RunPredict(flags, address, model_id, config.shards())
                 : RunPredict(flags, address, "ttf", -1);
    });
    run("durable_deletions", [&] {
      return RunDurableDeletions(flags, address, model_id, samples, *setup,
                                 config);
    });
  }
  (*server)->Shutdown();
  for (auto& w : workers) w->Shutdown(absl::Seconds(1));
  return rc;
}

}  // namespace oubli::bench
