// oubli-bench churn: deletions as a stream. One seeded workload (Fashion-
// MNIST, owners with heavy-tailed sizes, a minority of high-risk owners
// sending most deletions) runs three times: sample placement, owner
// placement, and owner placement with a risk profile. Each run trains the
// model, measures isolated owner deletions, then sends a Poisson stream of
// ForgetOwner requests while background retraining runs (batched policy)
// and samples the served model every second.
//
// Output, one JSON object per line: "churn_point" (one per second per run),
// "churn_isolated", "churn" (a run's summary) and "churn_compare" (ratios
// between the runs, with the targets of issue 10).
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "common/status_macros.h"
#include "coordinator/engine.h"
#include "coordinator/metrics.h"
#include "coordinator/sharding_plan.h"
#include "storage/datasets.h"
#include "tools/bench/bench.h"
#include "tools/bench/bench_util.h"
#include "tools/workflow/fashion_mnist.h"

namespace oubli::bench {
namespace {

using coordinator::Engine;

struct ChurnFlags {
  std::string dataset_dir = storage::kFashionMnistDir;
  int64_t public_samples = 10000;
  int64_t user_samples = 50000;
  int64_t test_samples = 2000;
  int shards = 8;
  int slices = 4;
  int sequences = 2;
  int epochs = 2;
  int pretrain_epochs = 3;
  // Owner sizes: Zipf's law by rank (see ZipfOwnerSizes).
  double mean_owner_size = 20;
  double zipf_exponent = 1.0;
  double high_risk_owners = 0.1;  // fraction of owners
  double high_risk_share = 0.7;   // of the deletions they send
  // Shards whose risk slice holds the high-risk owners (RiskProfile.shards)
  // in the owner+risk run; 0: every shard. 1 keeps the longest prefixes
  // served; its risk cell holds all high-risk data (2.9 mean cells by
  // default, less than the largest owner's cell).
  int risk_shards = 1;
  // The stream: fast enough that sample placement's backlog grows (each of
  // its deletions cuts several shards), while owner placement keeps up.
  double rate = 2;  // ForgetOwner requests per second
  int seconds = 120;
  int drain_seconds = 120;  // after the stream: wait for RESTORED
  int window_ms = 10000;
  int max_batch = 8;
  int isolated_deletions = 24;
  int training_threads = 2;
  uint64_t seed = 42;
  std::string runs = "sample,owner,owner+risk";
};

bool ParseChurnFlags(const std::vector<std::string>& args, ChurnFlags* f) {
  const FlagSetters setters = {
      {"dataset_dir", NonEmptyFlag(&f->dataset_dir)},
      {"public_samples", NumberFlag(&f->public_samples)},
      {"user_samples", NumberFlag(&f->user_samples)},
      {"test_samples", NumberFlag(&f->test_samples)},
      {"shards", NumberFlag(&f->shards)},
      {"slices", NumberFlag(&f->slices)},
      {"sequences", NumberFlag(&f->sequences)},
      {"epochs", NumberFlag(&f->epochs)},
      {"pretrain_epochs", NumberFlag(&f->pretrain_epochs)},
      {"mean_owner_size", NumberFlag(&f->mean_owner_size)},
      {"zipf_exponent", NumberFlag(&f->zipf_exponent)},
      {"high_risk_owners", NumberFlag(&f->high_risk_owners)},
      {"high_risk_share", NumberFlag(&f->high_risk_share)},
      {"risk_shards", NumberFlag(&f->risk_shards)},
      {"rate", NumberFlag(&f->rate)},
      {"seconds", NumberFlag(&f->seconds)},
      {"drain_seconds", NumberFlag(&f->drain_seconds)},
      {"window_ms", NumberFlag(&f->window_ms)},
      {"max_batch", NumberFlag(&f->max_batch)},
      {"isolated_deletions", NumberFlag(&f->isolated_deletions)},
      {"training_threads", NumberFlag(&f->training_threads)},
      {"seed", NumberFlag(&f->seed)},
      {"runs", NonEmptyFlag(&f->runs)},
  };
  if (!ParseKeyValueFlags(args, setters)) return false;
  if (f->mean_owner_size < 1 || f->zipf_exponent < 0 ||
      f->high_risk_owners < 0 || f->high_risk_owners > 1 ||
      f->high_risk_share < 0 || f->high_risk_share > 1 || f->rate <= 0 ||
      f->seconds < 1 || f->risk_shards < 0 || f->risk_shards >= f->shards) {
    std::fprintf(stderr,
                 "need mean_owner_size >= 1, zipf_exponent >= 0, "
                 "fractions in [0, 1], rate > 0, seconds >= 1 and "
                 "risk_shards in 0 (every shard) .. shards - 1\n");
    return false;
  }
  return true;
}

// Owner sizes by Zipf's law: N = total / mean owners, the owner of rank r
// holding about C r^-exponent samples (at least 1; C makes them sum to
// `total`, the largest absorbing the rounding), in a seeded random order.
std::vector<int64_t> ZipfOwnerSizes(int64_t total, double mean,
                                    double exponent, std::mt19937_64& rng) {
  const auto owners =
      std::max<int64_t>(1, std::llround(static_cast<double>(total) / mean));
  double weight_sum = 0;
  for (int64_t r = 1; r <= owners; ++r) weight_sum += std::pow(r, -exponent);
  std::vector<int64_t> sizes;
  int64_t assigned = 0;
  for (int64_t r = 1; r <= owners; ++r) {
    sizes.push_back(std::max<int64_t>(
        1, std::llround(total * std::pow(r, -exponent) / weight_sum)));
    assigned += sizes.back();
  }
  sizes[0] = std::max<int64_t>(1, sizes[0] + total - assigned);
  std::shuffle(sizes.begin(), sizes.end(), rng);
  return sizes;
}

// Owners of the user data: Zipf-sized (ZipfOwnerSizes), each owner's
// samples consecutive; a `high_risk_owners` fraction of owners (a seeded
// draw) is high-risk and carries deletion_risk 0.9, the others 0.1.
// Deterministic in the seed.
struct Owners {
  std::vector<std::string> names;
  std::vector<int64_t> sizes;
  std::vector<bool> high_risk;
};

Owners AssignOwners(const ChurnFlags& flags, std::vector<Sample>* samples) {
  std::mt19937_64 rng(flags.seed);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  const std::vector<int64_t> sizes =
      ZipfOwnerSizes(static_cast<int64_t>(samples->size()),
                     flags.mean_owner_size, flags.zipf_exponent, rng);
  Owners owners;
  size_t next = 0;
  for (int64_t size : sizes) {
    if (next == samples->size()) break;
    size = std::min<int64_t>(size, static_cast<int64_t>(samples->size() - next));
    const std::string name = absl::StrCat("owner-", owners.names.size());
    const bool risky = unit(rng) < flags.high_risk_owners;
    for (int64_t i = 0; i < size; ++i, ++next) {
      (*samples)[next].owner = name;
      (*samples)[next].deletion_risk = risky ? 0.9f : 0.1f;
    }
    owners.names.push_back(name);
    owners.sizes.push_back(size);
    owners.high_risk.push_back(risky);
  }
  return owners;
}

// The owners the isolated deletions and the stream forget, the same for
// every run. Stream arrivals are Poisson; each picks a high-risk owner with
// probability high_risk_share (uniformly among those not yet picked).
struct Workload {
  std::vector<std::string> isolated;
  std::vector<std::pair<absl::Duration, std::string>> stream;
};

Workload MakeWorkload(const ChurnFlags& flags, const Owners& owners) {
  std::mt19937_64 rng(flags.seed + 1);
  std::vector<size_t> risky, safe;
  for (size_t i = 0; i < owners.names.size(); ++i) {
    (owners.high_risk[i] ? risky : safe).push_back(i);
  }
  std::shuffle(risky.begin(), risky.end(), rng);
  std::shuffle(safe.begin(), safe.end(), rng);
  Workload w;
  // Isolated: uniform over owners, so the retrain cost is the average
  // owner's, whatever its risk.
  std::vector<size_t> all(owners.names.size());
  for (size_t i = 0; i < all.size(); ++i) all[i] = i;
  std::shuffle(all.begin(), all.end(), rng);
  std::set<size_t> taken;
  for (size_t i = 0;
       i < all.size() && static_cast<int>(w.isolated.size()) <
                             flags.isolated_deletions;
       ++i) {
    w.isolated.push_back(owners.names[all[i]]);
    taken.insert(all[i]);
  }
  std::exponential_distribution<double> gap(flags.rate);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  size_t next_risky = 0, next_safe = 0;
  auto take = [&](std::vector<size_t>& pool, size_t& next) -> const char* {
    while (next < pool.size() && taken.contains(pool[next])) ++next;
    if (next == pool.size()) return nullptr;
    taken.insert(pool[next]);
    return owners.names[pool[next++]].c_str();
  };
  double t = gap(rng);
  while (t < flags.seconds) {
    const bool want_risky = unit(rng) < flags.high_risk_share;
    const char* name = want_risky ? take(risky, next_risky)
                                  : take(safe, next_safe);
    if (name == nullptr) {
      name = want_risky ? take(safe, next_safe) : take(risky, next_risky);
    }
    if (name == nullptr) break;  // every owner forgotten
    w.stream.emplace_back(absl::Seconds(t), name);
    t += gap(rng);
  }
  return w;
}

// Counts what the engine reports; thread-safe, never blocks.
class CountingMetrics final : public coordinator::EngineMetrics {
 public:
  void DeletionAccepted(int64_t) override {}
  void DeletionForgotten(absl::Duration) override {}
  void DeletionPurged(absl::Duration) override { ++purged_; }
  void DeletionRestored(absl::Duration since_accepted) override {
    absl::MutexLock lock(&mu_);
    restored_seconds_.push_back(absl::ToDoubleSeconds(since_accepted));
  }
  void PositionTrained(int64_t sample_visits, int64_t, int64_t) override {
    visits_ += sample_visits;
    ++positions_;
  }
  void PositionWasted(int64_t sample_visits) override {
    // Cancelled ones report only this; stale finished ones both.
    wasted_visits_ += sample_visits;
    ++wasted_;
  }
  int64_t visits() const { return visits_; }
  int64_t positions() const { return positions_; }
  int64_t purged() const { return purged_; }
  int64_t wasted() const { return wasted_; }
  int64_t wasted_visits() const { return wasted_visits_; }
  std::vector<double> restored_seconds() const {
    absl::MutexLock lock(&mu_);
    return restored_seconds_;
  }

 private:
  std::atomic<int64_t> visits_{0}, positions_{0}, purged_{0}, wasted_{0},
      wasted_visits_{0};
  mutable absl::Mutex mu_;
  std::vector<double> restored_seconds_ ABSL_GUARDED_BY(mu_);
};

struct Run {
  std::string name;
  Placement placement = Placement::kOwner;
  bool risk_aware = false;
};

// One run's figures, for the comparison line.
struct RunSummary {
  double isolated_visits_fraction = 0;  // per deletion, of a full training
  double accuracy_before = 0;
  double accuracy_mean = 0;  // time-weighted over the stream
  double served_share = 0;   // time-weighted share of shards served
  double mean_prefix = 0;    // time-weighted mean served prefix length
};

// Accuracy of the served ensemble, recomputed only when the fingerprint
// (which determines every prediction) changes.
class CachedAccuracy {
 public:
  explicit CachedAccuracy(const std::vector<Sample>& test) : test_(test) {}
  absl::StatusOr<double> Get(Engine& engine, const std::string& fingerprint) {
    if (auto it = cache_.find(fingerprint); it != cache_.end()) {
      return it->second;
    }
    absl::StatusOr<double> accuracy = tools::Accuracy(engine, test_);
    // A model that serves no shard answers nothing: count it as 0.
    if (absl::IsFailedPrecondition(accuracy.status())) accuracy = 0.0;
    // Cached only if the model did not change while it was measured.
    if (accuracy.ok() && engine.Fingerprint() == fingerprint) {
      cache_[fingerprint] = *accuracy;
    }
    return accuracy;
  }

 private:
  const std::vector<Sample>& test_;
  std::map<std::string, double> cache_;
};

absl::StatusOr<RunSummary> RunOne(const ChurnFlags& flags, const Run& run,
                                  const ModelConfig& base_config,
                                  const std::vector<Sample>& user_data,
                                  const std::vector<Sample>& test,
                                  const Workload& workload,
                                  const std::string& dir) {
  ModelConfig config = base_config;
  config.model_id = "churn";
  config.shards = flags.shards;
  config.slices = flags.slices;
  config.sequences = flags.sequences;
  config.placement.by = run.placement;
  if (run.risk_aware) {
    config.placement.risk.slices = 1;
    config.placement.risk.threshold = 0.5;
    config.placement.risk.deletion_share = flags.high_risk_share;
    config.placement.risk.shards = flags.risk_shards;
  }
  RunSummary summary;
  coordinator::TrainSummary full;
  {
    // 1. Train, then forget owners one at a time, retraining after each.
    Engine::Options options;
    options.data_dir = dir;
    options.config = config;
    options.training_threads = flags.training_threads;
    options.background_retrain = false;
    OUBLI_ASSIGN_OR_RETURN(std::unique_ptr<Engine> engine,
                           Engine::Open(options));
    OUBLI_RETURN_IF_ERROR(engine->Ingest(user_data).status());
    const coordinator::ModelStatus ingested = engine->GetModelStatus();
    OUBLI_ASSIGN_OR_RETURN(full, engine->Train());
    double visits = 0, seconds = 0;
    int shards_cut = 0;
    for (const std::string& owner : workload.isolated) {
      OUBLI_ASSIGN_OR_RETURN(coordinator::DeletionReceipt receipt,
                             engine->ForgetOwner(owner));
      shards_cut += static_cast<int>(receipt.affected_shards.size());
      OUBLI_ASSIGN_OR_RETURN(coordinator::TrainSummary retrain,
                             engine->RunPendingRetrains(true));
      visits += static_cast<double>(retrain.samples);
      seconds += absl::ToDoubleSeconds(retrain.elapsed);
    }
    const double n = std::max<size_t>(1, workload.isolated.size());
    summary.isolated_visits_fraction =
        visits / n / static_cast<double>(full.samples);
    std::printf(
        "{\"bench\":\"churn_isolated\",\"run\":\"%s\",\"deletions\":%zu,"
        "\"full_train_sample_visits\":%lld,\"full_train_seconds\":%.2f,"
        "\"mean_retrain_sample_visits\":%.0f,"
        "\"retrain_visits_per_deletion_of_full\":%.4f,"
        "\"mean_retrain_seconds\":%.3f,\"mean_shards_cut\":%.2f,"
        "\"slice_imbalance\":%.3f,\"orders\":\"%s\"}\n",
        run.name.c_str(), workload.isolated.size(),
        static_cast<long long>(full.samples),
        absl::ToDoubleSeconds(full.elapsed), visits / n,
        summary.isolated_visits_fraction, seconds / n, shards_cut / n,
        ingested.slice_imbalance,
        [&] {
          std::string orders;
          for (const auto& s : ingested.shards[0].sequences) {
            absl::StrAppend(&orders, orders.empty() ? "" : " ", "[",
                            absl::StrJoin(s.order, ","), "]");
          }
          return orders;
        }()
            .c_str());
    std::fflush(stdout);
  }

  // 2. The stream, with background retraining under the batched policy.
  auto metrics = std::make_shared<CountingMetrics>();
  config.retrain.mode = RetrainMode::kBatched;
  config.retrain.window = absl::Milliseconds(flags.window_ms);
  config.retrain.max_batch = flags.max_batch;
  Engine::Options options;
  options.data_dir = dir;
  options.config = config;
  options.training_threads = flags.training_threads;
  options.background_retrain = true;
  options.metrics = metrics;
  OUBLI_ASSIGN_OR_RETURN(std::unique_ptr<Engine> engine, Engine::Open(options));
  CachedAccuracy accuracy(test);
  OUBLI_ASSIGN_OR_RETURN(summary.accuracy_before,
                         accuracy.Get(*engine, engine->Fingerprint()));

  std::atomic<int> sent{0}, failed{0};
  const absl::Time start = absl::Now();
  absl::Notification stop_sending;  // an error ends the run early
  std::thread sender([&] {
    for (const auto& [at, owner] : workload.stream) {
      if (stop_sending.WaitForNotificationWithTimeout(start + at -
                                                      absl::Now())) {
        return;
      }
      if (engine->ForgetOwner(owner).ok()) {
        ++sent;
      } else {
        ++failed;
      }
    }
  });
  struct Point {
    double served_share, mean_prefix, accuracy;
    bool all_full;
  };
  std::vector<Point> points;
  const int64_t visits_at_start = metrics->visits();
  absl::Status sampling;
  for (int second = 1; second <= flags.seconds && sampling.ok(); ++second) {
    absl::SleepFor(start + absl::Seconds(second) - absl::Now());
    const coordinator::ModelStatus status = engine->GetModelStatus();
    int served = 0, full_length = 0;
    double prefix_sum = 0;
    for (const coordinator::ShardStatus& shard : status.shards) {
      served += shard.served.served ? 1 : 0;
      prefix_sum += static_cast<double>(shard.served.prefix.size());
      full_length +=
          static_cast<int>(shard.served.prefix.size()) == flags.slices ? 1 : 0;
    }
    absl::StatusOr<double> measured = accuracy.Get(*engine, status.fingerprint);
    if (!measured.ok()) {
      sampling = measured.status();
      break;
    }
    const double acc = *measured;
    const Point point{static_cast<double>(served) / flags.shards,
                      prefix_sum / flags.shards, acc,
                      full_length == flags.shards};
    points.push_back(point);
    std::printf(
        "{\"bench\":\"churn_point\",\"run\":\"%s\",\"t\":%d,"
        "\"shards_served\":%d,\"mean_served_prefix\":%.3f,"
        "\"accuracy\":%.4f,\"missing_prefixes\":%d,"
        "\"retrain_backlog_sample_visits\":%lld,"
        "\"retrain_queue_shards\":%d,\"pending_forgotten\":%d,"
        "\"pending_purged\":%d,\"sent\":%d}\n",
        run.name.c_str(), second, served, point.mean_prefix, acc,
        status.missing_prefixes,
        static_cast<long long>(status.retrain_backlog_sample_visits),
        status.retrain_queue_shards,
        status.pending_forgotten, status.pending_purged, sent.load());
    std::fflush(stdout);
  }
  stop_sending.Notify();
  sender.join();
  OUBLI_RETURN_IF_ERROR(sampling);
  const int64_t stream_visits = metrics->visits() - visits_at_start;
  const std::vector<double> restored_in_stream = metrics->restored_seconds();
  const absl::Time stream_end = absl::Now();
  // Drain: how long until every deletion is RESTORED.
  double drain_seconds = -1;
  while (absl::Now() - stream_end < absl::Seconds(flags.drain_seconds)) {
    if (engine->GetModelStatus().pending_deletions == 0) {
      drain_seconds = absl::ToDoubleSeconds(absl::Now() - stream_end);
      break;
    }
    absl::SleepFor(absl::Milliseconds(200));
  }

  double min_accuracy = 1;
  int all_full = 0;
  for (const Point& p : points) {
    summary.accuracy_mean += p.accuracy / points.size();
    summary.served_share += p.served_share / points.size();
    summary.mean_prefix += p.mean_prefix / points.size();
    min_accuracy = std::min(min_accuracy, p.accuracy);
    all_full += p.all_full ? 1 : 0;
  }
  const int deletions = sent.load();
  std::printf(
      "{\"bench\":\"churn\",\"run\":\"%s\",\"placement\":\"%s\","
      "\"risk_aware\":%s,\"risk_shards\":%d,\"shards\":%d,\"slices\":%d,"
      "\"sequences\":%d,"
      "\"user_samples\":%zu,\"owners_forgotten\":%d,\"failed\":%d,"
      "\"rate_per_s\":%.3f,\"seconds\":%d,\"window_ms\":%d,\"max_batch\":%d,"
      "\"restored_during_stream\":%zu,\"purged_during_stream\":%lld,"
      "\"time_to_restored_p50_s\":%.2f,\"time_to_restored_p99_s\":%.2f,"
      "\"drain_seconds\":%.1f,\"stream_sample_visits\":%lld,"
      "\"retrain_visits_per_deletion_of_full\":%.4f,"
      "\"positions_trained\":%lld,\"positions_wasted\":%lld,"
      "\"wasted_sample_visits\":%lld,\"accuracy_before\":%.4f,"
      "\"accuracy_time_weighted\":%.4f,\"accuracy_min\":%.4f,"
      "\"shards_served_share\":%.4f,\"mean_served_prefix\":%.3f,"
      "\"all_full_length_share\":%.4f,\"training_threads\":%d,"
      "\"machine\":%s}\n",
      run.name.c_str(), PlacementName(run.placement),
      run.risk_aware ? "true" : "false", config.placement.risk.shards,
      flags.shards, flags.slices, flags.sequences, user_data.size(), deletions,
      failed.load(), flags.rate, flags.seconds, flags.window_ms,
      flags.max_batch,
      restored_in_stream.size(), static_cast<long long>(metrics->purged()),
      Percentile(restored_in_stream, 0.5), Percentile(restored_in_stream, 0.99),
      drain_seconds, static_cast<long long>(stream_visits),
      deletions == 0 ? 0.0
                     : static_cast<double>(stream_visits) / deletions /
                           static_cast<double>(full.samples),
      static_cast<long long>(metrics->positions()),
      static_cast<long long>(metrics->wasted()),
      static_cast<long long>(metrics->wasted_visits()), summary.accuracy_before,
      summary.accuracy_mean, min_accuracy, summary.served_share,
      summary.mean_prefix,
      points.empty() ? 0.0 : static_cast<double>(all_full) / points.size(),
      flags.training_threads, MachineJson().c_str());
  std::fflush(stdout);
  return summary;
}

// Slice imbalance (largest cell over the mean) of `total` samples with
// Zipf-sized owners, under each placement: the plan alone, no training.
absl::Status PrintImbalance(const ChurnFlags& flags, int64_t total) {
  for (double exponent : {0.5, 0.75, 1.0, 1.25}) {
    std::mt19937_64 rng(flags.seed);
    const std::vector<int64_t> sizes =
        ZipfOwnerSizes(total, flags.mean_owner_size, exponent, rng);
    std::string line = absl::StrFormat(
        "{\"bench\":\"churn_imbalance\",\"zipf_exponent\":%.2f,"
        "\"samples\":%lld,\"owners\":%zu,\"largest_owner\":%lld,"
        "\"mean_slice\":%.1f",
        exponent, static_cast<long long>(total), sizes.size(),
        static_cast<long long>(*std::max_element(sizes.begin(), sizes.end())),
        static_cast<double>(total) / (flags.shards * flags.slices));
    for (Placement placement : {Placement::kSample, Placement::kOwner}) {
      ModelConfig config;
      config.shards = flags.shards;
      config.slices = flags.slices;
      config.sequences = 1;
      config.placement.by = placement;
      OUBLI_ASSIGN_OR_RETURN(coordinator::ShardingPlan plan,
                             coordinator::ShardingPlan::Create(config));
      std::vector<coordinator::ShardStatus> shards(flags.shards);
      for (auto& shard : shards) shard.slice_samples.assign(flags.slices, 0);
      Sample sample;
      for (size_t o = 0; o < sizes.size(); ++o) {
        sample.owner = absl::StrCat("owner-", o);
        for (int64_t i = 0; i < sizes[o]; ++i) {
          sample.id = absl::StrCat(sample.owner, "/", i);
          const SliceRef cell = plan.Assign(sample);
          ++shards[cell.shard].slice_samples[cell.slice];
        }
      }
      absl::StrAppendFormat(&line, ",\"%s_slice_imbalance\":%.3f",
                            PlacementName(placement),
                            coordinator::SliceImbalance(shards));
    }
    std::printf("%s}\n", line.c_str());
  }
  std::fflush(stdout);
  return absl::OkStatus();
}

}  // namespace

int RunChurnBench(const std::vector<std::string>& args) {
  ChurnFlags flags;
  if (!ParseChurnFlags(args, &flags)) return 2;
  std::vector<Run> runs;
  for (absl::string_view name : absl::StrSplit(flags.runs, ',')) {
    if (name == "sample") {
      runs.push_back({"sample", Placement::kSample, false});
    } else if (name == "owner") {
      runs.push_back({"owner", Placement::kOwner, false});
    } else if (name == "owner+risk") {
      runs.push_back({"owner+risk", Placement::kOwner, true});
    } else {
      std::fprintf(stderr, "--runs: unknown run '%s' (sample, owner, "
                   "owner+risk)\n", std::string(name).c_str());
      return 2;
    }
  }
  TempDir dir("churn");
  absl::StatusOr<tools::FashionMnistSplits> splits =
      tools::LoadFashionMnistSplits(flags.dataset_dir, flags.public_samples,
                                    flags.user_samples, flags.test_samples);
  if (!splits.ok()) return Fail("churn", splits.status());
  if (absl::Status s = PrintImbalance(
          flags, static_cast<int64_t>(splits->user_data.size()));
      !s.ok()) {
    return Fail("churn: imbalance", s);
  }
  const Owners owners = AssignOwners(flags, &splits->user_data);
  const Workload workload = MakeWorkload(flags, owners);
  int64_t largest = 0, risky = 0, risky_samples = 0;
  for (size_t i = 0; i < owners.sizes.size(); ++i) {
    largest = std::max(largest, owners.sizes[i]);
    risky += owners.high_risk[i] ? 1 : 0;
    risky_samples += owners.high_risk[i] ? owners.sizes[i] : 0;
  }
  std::vector<int64_t> sorted_sizes = owners.sizes;
  std::sort(sorted_sizes.begin(), sorted_sizes.end());
  std::printf(
      "{\"bench\":\"churn_workload\",\"user_samples\":%zu,\"owners\":%zu,"
      "\"zipf_exponent\":%.2f,\"median_owner_size\":%lld,"
      "\"mean_owner_size\":%.2f,\"largest_owner\":%lld,"
      "\"mean_slice\":%.1f,\"high_risk_owners\":%lld,"
      "\"high_risk_samples\":%lld,\"risk_shards\":%d,"
      "\"stream_deletions\":%zu,\"rate_per_s\":%.3f,\"seconds\":%d}\n",
      splits->user_data.size(), owners.names.size(), flags.zipf_exponent,
      static_cast<long long>(sorted_sizes[sorted_sizes.size() / 2]),
      static_cast<double>(splits->user_data.size()) / owners.names.size(),
      static_cast<long long>(largest),
      static_cast<double>(splits->user_data.size()) /
          (flags.shards * flags.slices),
      static_cast<long long>(risky), static_cast<long long>(risky_samples),
      flags.risk_shards, workload.stream.size(), flags.rate, flags.seconds);
  std::fflush(stdout);

  ModelConfig base = tools::DemoConfig(1, 1, 1, flags.epochs);
  if (flags.public_samples > 0) {
    if (absl::Status s = tools::PretrainBaseToFile(
            splits->public_split, flags.pretrain_epochs,
            dir.path() + "/base.safetensors", &base);
        !s.ok()) {
      return Fail("churn: pretrain", s);
    }
  }
  std::map<std::string, RunSummary> results;
  for (const Run& run : runs) {
    absl::StatusOr<RunSummary> summary =
        RunOne(flags, run, base, splits->user_data, splits->test, workload,
               absl::StrCat(dir.path(), "/", run.name));
    if (!summary.ok()) return Fail(absl::StrCat("churn ", run.name),
                                   summary.status());
    results[run.name] = *summary;
  }
  if (results.contains("sample") && results.contains("owner") &&
      results.contains("owner+risk")) {
    const RunSummary& s = results["sample"];
    const RunSummary& o = results["owner"];
    const RunSummary& r = results["owner+risk"];
    const double isolated_ratio =
        s.isolated_visits_fraction / o.isolated_visits_fraction;
    const double accuracy_drop = 100 * (o.accuracy_before - o.accuracy_mean);
    // 0 (not infinite) when owner placement served nothing at all: the
    // line stays JSON.
    const double prefix_gain =
        o.mean_prefix > 0 ? r.mean_prefix / o.mean_prefix - 1 : 0;
    // The most any profile could add: the risk run serving every shard at
    // full length all the time. A restore that keeps up leaves owner
    // placement little to lose, and the profile less to save.
    const double prefix_gain_ceiling =
        o.mean_prefix > 0 ? flags.slices / o.mean_prefix - 1 : 0;
    std::printf(
        "{\"bench\":\"churn_compare\","
        "\"isolated_retrain_visits_sample_over_owner\":%.2f,"
        "\"owner_shards_served_share\":%.4f,"
        "\"owner_accuracy_drop_points\":%.2f,"
        "\"risk_mean_served_prefix_gain\":%.4f,"
        "\"risk_mean_served_prefix_gain_ceiling\":%.4f,"
        "\"targets\":{\"isolated_ratio_at_least_4\":%s,"
        "\"owner_served_share_at_least_0.9\":%s,"
        "\"owner_accuracy_within_1_point\":%s,"
        "\"risk_prefix_gain_at_least_0.2\":%s}}\n",
        isolated_ratio, o.served_share, accuracy_drop, prefix_gain,
        prefix_gain_ceiling,
        isolated_ratio >= 4 ? "true" : "false",
        o.served_share >= 0.9 ? "true" : "false",
        accuracy_drop <= 1 ? "true" : "false",
        prefix_gain >= 0.2 ? "true" : "false");
  }
  return 0;
}

}  // namespace oubli::bench
