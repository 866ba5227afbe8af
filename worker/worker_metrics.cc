#include "worker/worker_metrics.h"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <algorithm>

#include "worker/ml/device.h"

namespace oubli::worker {

struct WorkerMetrics::Impl {
  prometheus::Registry registry;
  prometheus::Family<prometheus::Counter>& positions =
      prometheus::BuildCounter()
          .Name("oubli_worker_positions_total")
          .Help("TrainPosition calls answered, by gRPC status code.")
          .Register(registry);
  prometheus::Counter& samples =
      prometheus::BuildCounter()
          .Name("oubli_worker_training_samples_total")
          .Help("Sample visits trained (rows x epochs) in completed calls.")
          .Register(registry)
          .Add({});
  prometheus::Counter& steps = prometheus::BuildCounter()
                                   .Name("oubli_worker_training_steps_total")
                                   .Help("Optimizer steps in completed calls.")
                                   .Register(registry)
                                   .Add({});
  prometheus::Counter& seconds =
      prometheus::BuildCounter()
          .Name("oubli_worker_training_seconds_total")
          .Help("Wall time spent in TrainPosition calls.")
          .Register(registry)
          .Add({});
  prometheus::Counter& chunk_bytes =
      prometheus::BuildCounter()
          .Name("oubli_worker_chunk_bytes_written_total")
          .Help("Bytes of erasure-coded chunks stored (fsynced).")
          .Register(registry)
          .Add({});
  prometheus::Counter& chunks_destroyed =
      prometheus::BuildCounter()
          .Name("oubli_worker_chunks_destroyed_total")
          .Help("Chunks destroyed (overwritten and unlinked) on purge.")
          .Register(registry)
          .Add({});
  prometheus::Family<prometheus::Counter>& predict_calls =
      prometheus::BuildCounter()
          .Name("oubli_worker_predict_requests_total")
          .Help("PredictShards calls answered, by gRPC status code.")
          .Register(registry);
  prometheus::Counter& shard_predictions =
      prometheus::BuildCounter()
          .Name("oubli_worker_shard_predictions_total")
          .Help("Shards named in answered PredictShards calls.")
          .Register(registry)
          .Add({});
  prometheus::Counter& serving_bytes_loaded =
      prometheus::BuildCounter()
          .Name("oubli_worker_serving_checkpoint_bytes_loaded_total")
          .Help("Checkpoint bytes loaded into serving slots (memory only).")
          .Register(registry)
          .Add({});
  prometheus::Gauge& serving_checkpoints =
      prometheus::BuildGauge()
          .Name("oubli_worker_serving_checkpoints")
          .Help("Checkpoints held in memory for serving shard predictions.")
          .Register(registry)
          .Add({});
  prometheus::Family<prometheus::Counter>& slice_lookups =
      prometheus::BuildCounter()
          .Name("oubli_worker_slice_lookups_total")
          .Help("Slices a TrainPosition named, by result (hit: cached here, "
                "miss: the coordinator had to send it).")
          .Register(registry);
  prometheus::Counter& slice_bytes_received =
      prometheus::BuildCounter()
          .Name("oubli_worker_slice_bytes_received_total")
          .Help("Bytes of training slices received into the slice cache.")
          .Register(registry)
          .Add({});
  prometheus::Family<prometheus::Counter>& slice_file_reads =
      prometheus::BuildCounter()
          .Name("oubli_worker_slice_file_reads_total")
          .Help("Slices read back from their file on --data_dir, by result "
                "(promoted: verified and taken into memory; corrupt: failed "
                "verification, shredded and counted a miss).")
          .Register(registry);
  prometheus::Gauge& cached_slices =
      prometheus::BuildGauge()
          .Name("oubli_worker_cached_slices")
          .Help("Training slices held in the slice cache's memory.")
          .Register(registry)
          .Add({});
  prometheus::Gauge& cached_slice_bytes =
      prometheus::BuildGauge()
          .Name("oubli_worker_cached_slice_bytes")
          .Help("Bytes of slices in the slice cache's memory (at most "
                "--slice_cache_bytes).")
          .Register(registry)
          .Add({});
  prometheus::Gauge& disk_cached_slices =
      prometheus::BuildGauge()
          .Name("oubli_worker_disk_cached_slices")
          .Help("Training slices kept as files on --data_dir (including "
                "those being written).")
          .Register(registry)
          .Add({});
  prometheus::Gauge& disk_cached_slice_bytes =
      prometheus::BuildGauge()
          .Name("oubli_worker_disk_cached_slice_bytes")
          .Help("Bytes of slice files on --data_dir (at most "
                "--slice_disk_cache_bytes).")
          .Register(registry)
          .Add({});
  prometheus::Gauge& registered =
      prometheus::BuildGauge()
          .Name("oubli_worker_registered")
          .Help("1 while registered with the coordinator.")
          .Register(registry)
          .Add({});
  // The device is fixed for the process: one series, labelled once.
  prometheus::Gauge& device =
      prometheus::BuildGauge()
          .Name("oubli_worker_compute_device")
          .Help(
              "1, labelled with the device this worker trains and predicts "
              "on (cpu or cuda).")
          .Register(registry)
          .Add({{"device", ml::ComputeOnCuda() ? "cuda" : "cpu"}});
  prometheus::Gauge& environment_matches =
      prometheus::BuildGauge()
          .Name("oubli_worker_environment_matches")
          .Help(
              "1 when the coordinator's numeric environment equals this "
              "worker's at the last registration; 0: it gets no training "
              "or Predict.")
          .Register(registry)
          .Add({});
};

WorkerMetrics::WorkerMetrics() : impl_(std::make_unique<Impl>()) {
  impl_->device.Set(1);
}
WorkerMetrics::~WorkerMetrics() = default;

void WorkerMetrics::PositionDone(const std::string& code, int64_t samples,
                                 int64_t steps, absl::Duration elapsed) {
  // Bounded label: gRPC code names only.
  impl_->positions.Add({{"code", code}}).Increment();
  impl_->samples.Increment(static_cast<double>(samples));
  impl_->steps.Increment(static_cast<double>(steps));
  impl_->seconds.Increment(std::max(0.0, absl::ToDoubleSeconds(elapsed)));
}

void WorkerMetrics::ChunkStored(int64_t bytes) {
  impl_->chunk_bytes.Increment(static_cast<double>(bytes));
}

void WorkerMetrics::ChunksDestroyed(int64_t chunks) {
  impl_->chunks_destroyed.Increment(static_cast<double>(chunks));
}

void WorkerMetrics::ShardsPredicted(const std::string& code, int64_t shards,
                                    int loaded) {
  impl_->predict_calls.Add({{"code", code}}).Increment();
  impl_->shard_predictions.Increment(static_cast<double>(shards));
  impl_->serving_checkpoints.Set(loaded);
}

void WorkerMetrics::ShardLoaded(int64_t bytes, int loaded) {
  impl_->serving_bytes_loaded.Increment(static_cast<double>(bytes));
  impl_->serving_checkpoints.Set(loaded);
}

void WorkerMetrics::SetServingCheckpoints(int loaded) {
  impl_->serving_checkpoints.Set(loaded);
}

void WorkerMetrics::SlicesLooked(int64_t hits, int64_t misses) {
  impl_->slice_lookups.Add({{"result", "hit"}})
      .Increment(static_cast<double>(hits));
  impl_->slice_lookups.Add({{"result", "miss"}})
      .Increment(static_cast<double>(misses));
}

void WorkerMetrics::SliceReceived(int64_t bytes) {
  impl_->slice_bytes_received.Increment(static_cast<double>(bytes));
}

void WorkerMetrics::SliceFilesRead(int64_t promoted, int64_t corrupt) {
  impl_->slice_file_reads.Add({{"result", "promoted"}})
      .Increment(static_cast<double>(promoted));
  impl_->slice_file_reads.Add({{"result", "corrupt"}})
      .Increment(static_cast<double>(corrupt));
}

void WorkerMetrics::SetSliceCache(int64_t slices, int64_t bytes,
                                  int64_t disk_slices, int64_t disk_bytes) {
  impl_->cached_slices.Set(static_cast<double>(slices));
  impl_->cached_slice_bytes.Set(static_cast<double>(bytes));
  impl_->disk_cached_slices.Set(static_cast<double>(disk_slices));
  impl_->disk_cached_slice_bytes.Set(static_cast<double>(disk_bytes));
}

void WorkerMetrics::SetRegistered(bool registered) {
  impl_->registered.Set(registered ? 1 : 0);
}

void WorkerMetrics::SetEnvironmentMatches(bool matches) {
  impl_->environment_matches.Set(matches ? 1 : 0);
}

std::string WorkerMetrics::Serialize() const {
  return prometheus::TextSerializer().Serialize(impl_->registry.Collect());
}

}  // namespace oubli::worker
