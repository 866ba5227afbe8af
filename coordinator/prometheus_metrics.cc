#include "coordinator/prometheus_metrics.h"

#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <limits>
#include <map>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"

#ifndef OUBLI_VERSION
#define OUBLI_VERSION "dev"
#endif
#ifndef OUBLI_TORCH_VERSION
#define OUBLI_TORCH_VERSION "unknown"
#endif

namespace oubli::coordinator {
namespace {

using prometheus::ClientMetric;
using prometheus::Counter;
using prometheus::Family;
using prometheus::Histogram;
using prometheus::MetricFamily;
using prometheus::MetricType;

// Seconds, roughly x2.5 per bucket.
const Histogram::BucketBoundaries kForgetBuckets = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5};
const Histogram::BucketBoundaries kPurgeBuckets = {
    0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300};
const Histogram::BucketBoundaries kRestoreBuckets = {
    0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600};
const Histogram::BucketBoundaries kRpcBuckets = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1,    0.25,  0.5,    1,     2.5,  5,     10};

Family<Counter>& AddCounter(prometheus::Registry& registry,
                            const std::string& name, const std::string& help) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(registry);
}

Family<Histogram>& AddHistogram(prometheus::Registry& registry,
                                const std::string& name,
                                const std::string& help) {
  return prometheus::BuildHistogram().Name(name).Help(help).Register(registry);
}

// Builds one gauge family of the scrape-time snapshot (or a counter
// family, for totals kept elsewhere and read at scrape time).
class GaugeFamily {
 public:
  GaugeFamily(std::string name, std::string help,
              MetricType type = MetricType::Gauge) {
    family_.name = std::move(name);
    family_.help = std::move(help);
    family_.type = type;
  }
  void Set(std::vector<ClientMetric::Label> labels, double value) {
    ClientMetric& metric = family_.metric.emplace_back();
    metric.label = std::move(labels);
    if (family_.type == MetricType::Counter) {
      metric.counter.value = value;
    } else {
      metric.gauge.value = value;
    }
  }
  MetricFamily Take() { return std::move(family_); }

 private:
  MetricFamily family_;
};

}  // namespace

class ModelSeries;

// Scrape-time gauges: asks the registry at every Collect().
class StateCollector final : public prometheus::Collectable {
 public:
  void SetRegistry(ModelRegistry* registry) {
    absl::MutexLock lock(&mu_);  // waits out a scrape in progress
    registry_ = registry;
  }
  void SetWorkers(PrometheusMetrics::WorkerLiveness workers) {
    absl::MutexLock lock(&mu_);
    workers_ = std::move(workers);
  }
  void SetSliceCache(std::shared_ptr<const EncodedSliceCache> cache) {
    absl::MutexLock lock(&mu_);
    slice_cache_ = std::move(cache);
  }
  std::vector<MetricFamily> Collect() const override;

 private:
  mutable absl::Mutex mu_;
  ModelRegistry* registry_ ABSL_GUARDED_BY(mu_) = nullptr;
  PrometheusMetrics::WorkerLiveness workers_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<const EncodedSliceCache> slice_cache_ ABSL_GUARDED_BY(mu_);
};

struct PrometheusMetrics::Impl {
  Impl()
      : registry(std::make_shared<prometheus::Registry>()),
        state(std::make_shared<StateCollector>()),
        deletions(AddCounter(
            *registry, "oubli_deletions_total",
            "Deletions that reached a stage (accepted, forgotten, purged, "
            "restored), one per deletion however many samples it resolved. "
            "Counts stages reached in this process: a deletion interrupted "
            "by a restart is finished (and counted) from the stage it had.")),
        deleted_samples(
            AddCounter(*registry, "oubli_deleted_samples_total",
                       "Samples resolved (deleted) by accepted deletions.")),
        time_to_forget(AddHistogram(
            *registry, "oubli_time_to_forget_seconds",
            "From a deletion request's arrival in the engine to FORGOTTEN "
            "(durable and no longer served; the request is answered then).")),
        time_to_purge(AddHistogram(
            *registry, "oubli_time_to_purge_seconds",
            "From ACCEPTED to PURGED (payloads and every checkpoint holding "
            "them destroyed).")),
        time_to_restore(AddHistogram(
            *registry, "oubli_time_to_restore_seconds",
            "From ACCEPTED to RESTORED (cut prefixes retrained; includes any "
            "batching window of the retrain policy).")),
        training_samples(AddCounter(
            *registry, "oubli_training_samples_total",
            "Sample visits of training (samples x epochs per prefix "
            "position), initial training and retraining; not Verify.")),
        training_steps(AddCounter(*registry, "oubli_training_steps_total",
                                  "Optimizer steps of training.")),
        training_positions(AddCounter(
            *registry, "oubli_training_positions_total",
            "Prefix positions trained (including positions discarded "
            "because a deletion raced them).")),
        training_positions_wasted(AddCounter(
            *registry, "oubli_training_positions_wasted_total",
            "Prefix positions whose training was thrown away because a "
            "deletion changed their shard meanwhile: cancelled mid-way or "
            "finished and discarded as stale.")),
        checkpoint_bytes_written(
            AddCounter(*registry, "oubli_checkpoint_bytes_written_total",
                       "Bytes of prefix checkpoints written.")),
        checkpoint_bytes_encoded(AddCounter(
            *registry, "oubli_checkpoint_bytes_encoded_total",
            "Bytes of new checkpoints erasure-coded into chunks on workers "
            "(needs at least two workers with --data_dir).")),
        checkpoint_bytes_restored(AddCounter(
            *registry, "oubli_checkpoint_bytes_restored_total",
            "Bytes of lost checkpoints rebuilt from erasure-coded chunks "
            "instead of retrained.")),
        restore_failures(AddCounter(
            *registry, "oubli_checkpoint_restore_failures_total",
            "Lost checkpoints that could not be rebuilt from chunks (fewer "
            "than k good chunks reachable) and were retrained instead.")),
        chunk_repairs(AddCounter(
            *registry, "oubli_chunk_repairs_total",
            "Erasure-coded chunks regenerated from survivors and re-placed on "
            "a live worker after their holder died.")),
        shard_predictions(AddCounter(
            *registry, "oubli_predict_shards_total",
            "Shard predictions by who computed them: worker, coordinator "
            "(no worker serves) or fallback (a worker failed to answer).")),
        rpc_handled(AddCounter(
            *registry, "oubli_grpc_server_handled_total",
            "Completed RPCs of oubli.v1.Oubli by method and status code.")),
        rpc_seconds(AddHistogram(
            *registry, "oubli_grpc_server_handling_seconds",
            "RPC latency from the call's arrival to its status, by method "
            "(streaming RPCs: the whole stream).")) {}

  std::shared_ptr<prometheus::Registry> registry;
  std::shared_ptr<StateCollector> state;

  Family<Counter>& deletions;
  Family<Counter>& deleted_samples;
  Family<Histogram>& time_to_forget;
  Family<Histogram>& time_to_purge;
  Family<Histogram>& time_to_restore;
  Family<Counter>& training_samples;
  Family<Counter>& training_steps;
  Family<Counter>& training_positions;
  Family<Counter>& training_positions_wasted;
  Family<Counter>& checkpoint_bytes_written;
  Family<Counter>& checkpoint_bytes_encoded;
  Family<Counter>& checkpoint_bytes_restored;
  Family<Counter>& restore_failures;
  Family<Counter>& chunk_repairs;
  Family<Counter>& shard_predictions;
  Family<Counter>& rpc_handled;
  Family<Histogram>& rpc_seconds;

  // Serializes creating and removing model series (see ModelSeries).
  absl::Mutex models_mu;
  absl::flat_hash_map<std::string, std::weak_ptr<ModelSeries>> models
      ABSL_GUARDED_BY(models_mu);
};

// One model's event series; removed from their families when the last
// engine holding them goes away (a failed CreateModel leaves no series).
class ModelSeries final : public EngineMetrics {
 public:
  ModelSeries(std::shared_ptr<PrometheusMetrics::Impl> impl,
              const std::string& model_id)
      : impl_(std::move(impl)),
        model_id_(model_id),
        accepted_(Stage("accepted")),
        forgotten_(Stage("forgotten")),
        purged_(Stage("purged")),
        restored_(Stage("restored")),
        deleted_samples_(impl_->deleted_samples.Add(Model())),
        time_to_forget_(impl_->time_to_forget.Add(Model(), kForgetBuckets)),
        time_to_purge_(impl_->time_to_purge.Add(Model(), kPurgeBuckets)),
        time_to_restore_(impl_->time_to_restore.Add(Model(), kRestoreBuckets)),
        training_samples_(impl_->training_samples.Add(Model())),
        training_steps_(impl_->training_steps.Add(Model())),
        training_positions_(impl_->training_positions.Add(Model())),
        training_positions_wasted_(
            impl_->training_positions_wasted.Add(Model())),
        checkpoint_bytes_written_(impl_->checkpoint_bytes_written.Add(Model())),
        checkpoint_bytes_encoded_(impl_->checkpoint_bytes_encoded.Add(Model())),
        checkpoint_bytes_restored_(
            impl_->checkpoint_bytes_restored.Add(Model())),
        restore_failures_(impl_->restore_failures.Add(Model())),
        chunk_repairs_(impl_->chunk_repairs.Add(Model())),
        by_workers_(Placement("worker")),
        by_coordinator_(Placement("coordinator")),
        after_worker_failure_(Placement("fallback")) {}

  ~ModelSeries() override {
    absl::MutexLock lock(&impl_->models_mu);
    auto it = impl_->models.find(model_id_);
    // A new ForModel may have revived this id between our last reference
    // dropping and this lock: then it shares these very series; keep them.
    if (it != impl_->models.end() && !it->second.expired()) return;
    if (it != impl_->models.end()) impl_->models.erase(it);
    for (Counter* c : {&accepted_, &forgotten_, &purged_, &restored_}) {
      impl_->deletions.Remove(c);
    }
    impl_->deleted_samples.Remove(&deleted_samples_);
    impl_->time_to_forget.Remove(&time_to_forget_);
    impl_->time_to_purge.Remove(&time_to_purge_);
    impl_->time_to_restore.Remove(&time_to_restore_);
    impl_->training_samples.Remove(&training_samples_);
    impl_->training_steps.Remove(&training_steps_);
    impl_->training_positions.Remove(&training_positions_);
    impl_->training_positions_wasted.Remove(&training_positions_wasted_);
    impl_->checkpoint_bytes_written.Remove(&checkpoint_bytes_written_);
    impl_->checkpoint_bytes_encoded.Remove(&checkpoint_bytes_encoded_);
    impl_->checkpoint_bytes_restored.Remove(&checkpoint_bytes_restored_);
    impl_->restore_failures.Remove(&restore_failures_);
    impl_->chunk_repairs.Remove(&chunk_repairs_);
    for (Counter* c :
         {&by_workers_, &by_coordinator_, &after_worker_failure_}) {
      impl_->shard_predictions.Remove(c);
    }
  }

  void DeletionAccepted(int64_t samples) override {
    accepted_.Increment();
    deleted_samples_.Increment(static_cast<double>(samples));
  }
  void DeletionForgotten(absl::Duration since_request) override {
    forgotten_.Increment();
    time_to_forget_.Observe(Seconds(since_request));
  }
  void DeletionPurged(absl::Duration since_accepted) override {
    purged_.Increment();
    time_to_purge_.Observe(Seconds(since_accepted));
  }
  void DeletionRestored(absl::Duration since_accepted) override {
    restored_.Increment();
    time_to_restore_.Observe(Seconds(since_accepted));
  }
  void PositionTrained(int64_t sample_visits, int64_t steps,
                       int64_t checkpoint_bytes_written) override {
    training_samples_.Increment(static_cast<double>(sample_visits));
    training_steps_.Increment(static_cast<double>(steps));
    training_positions_.Increment();
    checkpoint_bytes_written_.Increment(
        static_cast<double>(checkpoint_bytes_written));
  }
  void PositionWasted(int64_t) override {
    training_positions_wasted_.Increment();
  }
  void CheckpointEncoded(int64_t bytes) override {
    checkpoint_bytes_encoded_.Increment(static_cast<double>(bytes));
  }
  void CheckpointRestored(int64_t bytes) override {
    checkpoint_bytes_restored_.Increment(static_cast<double>(bytes));
  }
  void CheckpointRestoreFailed() override { restore_failures_.Increment(); }
  void ChunksRepaired(int64_t chunks) override {
    chunk_repairs_.Increment(static_cast<double>(chunks));
  }
  void ShardsPredicted(int64_t by_workers, int64_t by_coordinator,
                       int64_t after_worker_failure) override {
    by_workers_.Increment(static_cast<double>(by_workers));
    by_coordinator_.Increment(static_cast<double>(by_coordinator));
    after_worker_failure_.Increment(static_cast<double>(after_worker_failure));
  }

 private:
  prometheus::Labels Model() const { return {{"model", model_id_}}; }
  Counter& Placement(const char* placement) {
    return impl_->shard_predictions.Add(
        {{"model", model_id_}, {"placement", placement}});
  }
  Counter& Stage(const char* stage) {
    return impl_->deletions.Add({{"model", model_id_}, {"stage", stage}});
  }
  // Clock steps can make wall-clock differences negative.
  static double Seconds(absl::Duration d) {
    return std::max(0.0, absl::ToDoubleSeconds(d));
  }

  const std::shared_ptr<PrometheusMetrics::Impl> impl_;
  const std::string model_id_;
  Counter& accepted_;
  Counter& forgotten_;
  Counter& purged_;
  Counter& restored_;
  Counter& deleted_samples_;
  Histogram& time_to_forget_;
  Histogram& time_to_purge_;
  Histogram& time_to_restore_;
  Counter& training_samples_;
  Counter& training_steps_;
  Counter& training_positions_;
  Counter& training_positions_wasted_;
  Counter& checkpoint_bytes_written_;
  Counter& checkpoint_bytes_encoded_;
  Counter& checkpoint_bytes_restored_;
  Counter& restore_failures_;
  Counter& chunk_repairs_;
  Counter& by_workers_;
  Counter& by_coordinator_;
  Counter& after_worker_failure_;
};

std::vector<MetricFamily> StateCollector::Collect() const {
  GaugeFamily worker_up(
      "oubli_worker_up",
      "1 for each worker the coordinator sees alive, 0 for one registered "
      "and then silent (until it registers again). worker=\"local\" is the "
      "training and serving code inside the coordinator, which trains when "
      "no worker can (0 while the models are still opening); other workers "
      "are oubli-worker processes by name.");
  GaugeFamily build_info("oubli_build_info",
                         "Always 1; labels name the oubli and LibTorch "
                         "versions of this coordinator.");
  build_info.Set({{"version", OUBLI_VERSION}, {"torch", OUBLI_TORCH_VERSION}},
                 1);
  GaugeFamily pending(
      "oubli_deletions_pending",
      "Deletions not yet RESTORED, by current stage (accepted, forgotten, "
      "purged). accepted is momentary: one group commit takes a deletion "
      "from ACCEPTED to FORGOTTEN.");
  GaugeFamily oldest(
      "oubli_oldest_pending_deletion_age_seconds",
      "Age since ACCEPTED of the oldest deletion not yet RESTORED; 0 if "
      "none.");
  GaugeFamily retrain_queue(
      "oubli_retrain_queue_shards",
      "Shards waiting for (re)training, due now or later under the retrain "
      "policy; shards being trained right now are not counted.");
  GaugeFamily prefix_length(
      "oubli_shard_valid_prefix_length",
      "Length (slices) of the prefix a shard serves; 0: no valid prefix, "
      "the shard is not served. Compare with oubli_shard_slices.");
  GaugeFamily retrain_backlog(
      "oubli_retrain_backlog_sample_visits",
      "Training owed, in sample-visits: samples x epochs of every current "
      "prefix without a checkpoint (first training, new samples and "
      "deletions alike). Divide by the training rate "
      "(rate(oubli_training_samples_total)) for the time to catch up.");
  GaugeFamily slices("oubli_shard_slices",
                     "Slices per shard (L): a fully restored shard serves a "
                     "prefix of this length.");
  GaugeFamily active_samples("oubli_model_active_samples",
                             "Samples ingested and not deleted.");
  GaugeFamily slice_imbalance(
      "oubli_model_slice_imbalance",
      "Active samples of the largest (shard, slice) over the mean one (1: "
      "even). Under owner placement the largest owners raise it; the shard "
      "holding the largest slice trains longest.");
  GaugeFamily missing_prefixes(
      "oubli_model_missing_prefixes",
      "Current prefixes (over every shard and sequence) without a "
      "checkpoint: training or retraining still to do.");
  GaugeFamily lineage_bytes(
      "oubli_lineage_db_bytes",
      "Size of the model's lineage DB files (samples, index, deletion log).");
  GaugeFamily checkpoint_bytes("oubli_checkpoint_store_bytes",
                               "Size of the model's checkpoint files.");
  GaugeFamily redundancy(
      "oubli_checkpoint_redundancy_chunks",
      "Over the model's erasure-coded checkpoints, the fewest chunks on live "
      "workers beyond the k needed to rebuild one: how many more worker "
      "losses the least protected checkpoint survives (negative: not "
      "rebuildable now). No series while nothing is erasure-coded.");
  GaugeFamily redundancy_target(
      "oubli_checkpoint_redundancy_target_chunks",
      "Parity chunks (m) the least protected checkpoint (see "
      "oubli_checkpoint_redundancy_chunks) was encoded with.");
  GaugeFamily cache_hits(
      "oubli_slice_cache_hits_total",
      "Slices a position read from the coordinator's slice cache "
      "(--slice_cache_bytes), over every model.",
      MetricType::Counter);
  GaugeFamily cache_misses(
      "oubli_slice_cache_misses_total",
      "Slices a position read from the lineage store because the "
      "coordinator's slice cache did not hold them (slices a worker already "
      "holds are not read at all).",
      MetricType::Counter);
  GaugeFamily cache_bytes(
      "oubli_slice_cache_bytes",
      "Encoded slice bytes the coordinator's slice cache holds now, at most "
      "--slice_cache_bytes.");

  {
    absl::MutexLock lock(&mu_);
    if (slice_cache_ != nullptr) {
      cache_hits.Set({}, static_cast<double>(slice_cache_->hits()));
      cache_misses.Set({}, static_cast<double>(slice_cache_->misses()));
      cache_bytes.Set({}, static_cast<double>(slice_cache_->bytes()));
    }
    worker_up.Set({{"worker", "local"}}, registry_ != nullptr ? 1 : 0);
    // By name; a name registered twice (restarted at a new address) is
    // one series, up if either is.
    std::map<std::string, bool> by_name;
    if (workers_) {
      for (const auto& [name, alive] : workers_()) {
        if (name == "local") continue;  // reserved for the coordinator
        by_name[name] = by_name[name] || alive;
      }
      for (const auto& [name, alive] : by_name) {
        worker_up.Set({{"worker", name}}, alive ? 1 : 0);
      }
    }
    if (registry_ != nullptr) {
      const absl::Time now = absl::Now();
      for (const std::string& id : registry_->ModelIds()) {
        absl::StatusOr<ModelStatus> status = registry_->GetModelStatus(id);
        if (!status.ok()) continue;  // vanished meanwhile
        const std::vector<ClientMetric::Label> model = {{"model", id}};
        pending.Set({{"model", id}, {"stage", "accepted"}},
                    status->pending_accepted);
        pending.Set({{"model", id}, {"stage", "forgotten"}},
                    status->pending_forgotten);
        pending.Set({{"model", id}, {"stage", "purged"}},
                    status->pending_purged);
        oldest.Set(
            model,
            status->oldest_pending_accepted_at == absl::InfinitePast()
                ? 0.0
                : std::max(0.0, absl::ToDoubleSeconds(
                                    now - status->oldest_pending_accepted_at)));
        retrain_queue.Set(model, status->retrain_queue_shards);
        retrain_backlog.Set(
            model, static_cast<double>(status->retrain_backlog_sample_visits));
        for (const ShardStatus& shard : status->shards) {
          prefix_length.Set(
              {{"model", id}, {"shard", absl::StrCat(shard.served.shard)}},
              shard.served.served
                  ? static_cast<double>(shard.served.prefix.size())
                  : 0.0);
        }
        slices.Set(model, status->config.slices);
        active_samples.Set(model, static_cast<double>(status->active_samples));
        slice_imbalance.Set(model, status->slice_imbalance);
        missing_prefixes.Set(model, status->missing_prefixes);
        // A file removed mid-walk (compaction, checkpoint GC) fails the
        // walk; the gauge is left out of this scrape rather than wrong.
        absl::StatusOr<StorageStats> storage = registry_->GetStorageStats(id);
        if (storage.ok()) {
          lineage_bytes.Set(model,
                            static_cast<double>(storage->lineage_db_bytes));
          checkpoint_bytes.Set(model,
                               static_cast<double>(storage->checkpoint_bytes));
        }
        absl::StatusOr<std::vector<ChunkPlacement>> placements =
            registry_->ChunkPlacements(id);
        if (placements.ok() && !placements->empty()) {
          // The least protected checkpoint, and the parity it was coded
          // with (of the worse-off one among equally protected).
          int least = std::numeric_limits<int>::max();
          int target = 0;
          for (const ChunkPlacement& p : *placements) {
            int live = 0;
            for (const std::string& holder : p.holders) {
              auto it = by_name.find(holder);
              live += it != by_name.end() && it->second ? 1 : 0;
            }
            const int spare = live - p.data_chunks;
            if (spare < least || (spare == least && p.parity_chunks > target)) {
              least = spare;
              target = p.parity_chunks;
            }
          }
          redundancy.Set(model, least);
          redundancy_target.Set(model, target);
        }
      }
    }
  }
  std::vector<MetricFamily> out;
  for (GaugeFamily* family :
       {&worker_up, &build_info, &pending, &oldest, &retrain_queue,
        &retrain_backlog,
        &prefix_length, &slices, &active_samples, &slice_imbalance,
        &missing_prefixes,
        &lineage_bytes, &checkpoint_bytes, &redundancy, &redundancy_target,
        &cache_hits, &cache_misses, &cache_bytes}) {
    out.push_back(family->Take());
  }
  return out;
}

// ------------------------------------------------------- PrometheusMetrics

PrometheusMetrics::PrometheusMetrics() : impl_(std::make_shared<Impl>()) {}
PrometheusMetrics::~PrometheusMetrics() = default;

std::shared_ptr<PrometheusMetrics> PrometheusMetrics::Create() {
  return std::shared_ptr<PrometheusMetrics>(new PrometheusMetrics());
}

std::shared_ptr<EngineMetrics> PrometheusMetrics::ForModel(
    absl::string_view model_id) {
  absl::MutexLock lock(&impl_->models_mu);
  std::weak_ptr<ModelSeries>& slot = impl_->models[model_id];
  if (std::shared_ptr<ModelSeries> live = slot.lock()) return live;
  auto series = std::make_shared<ModelSeries>(impl_, std::string(model_id));
  slot = series;
  return series;
}

void PrometheusMetrics::RpcHandled(absl::string_view method,
                                   absl::string_view code,
                                   absl::Duration latency) {
  const std::string method_name(method);
  impl_->rpc_handled.Add({{"method", method_name}, {"code", std::string(code)}})
      .Increment();
  impl_->rpc_seconds.Add({{"method", method_name}}, kRpcBuckets)
      .Observe(std::max(0.0, absl::ToDoubleSeconds(latency)));
}

void PrometheusMetrics::SetRegistry(ModelRegistry* registry) {
  impl_->state->SetRegistry(registry);
}

void PrometheusMetrics::SetWorkers(WorkerLiveness workers) {
  impl_->state->SetWorkers(std::move(workers));
}

void PrometheusMetrics::SetSliceCache(
    std::shared_ptr<const EncodedSliceCache> cache) {
  impl_->state->SetSliceCache(std::move(cache));
}

std::string PrometheusMetrics::Serialize() const {
  std::vector<MetricFamily> families = impl_->registry->Collect();
  std::vector<MetricFamily> state = impl_->state->Collect();
  families.insert(families.end(), std::make_move_iterator(state.begin()),
                  std::make_move_iterator(state.end()));
  return prometheus::TextSerializer().Serialize(families);
}

}  // namespace oubli::coordinator
