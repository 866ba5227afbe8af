// Prometheus metrics of the coordinator (prometheus-cpp behind a pimpl: this
// header names no prometheus type, so its includers need not see the
// library).
//
// Event metrics (counters, histograms) are recorded as the engines and the
// gRPC service report events through the coordinator/metrics.h interfaces.
// State metrics (gauges: pending deletions, served prefixes, disk bytes)
// are computed at scrape time from the ModelRegistry: each scrape sees the
// exact current state, a model's series exist exactly while it is open, and
// nothing runs between scrapes. The price is one GetModelStatus (a short
// hold of each engine's mutex) and one walk of each data dir per scrape.
//
// Label `model` is the model id; sample and owner ids never become labels.
// See README.md "Monitoring" for every family.
#ifndef OUBLI_COORDINATOR_PROMETHEUS_METRICS_H_
#define OUBLI_COORDINATOR_PROMETHEUS_METRICS_H_

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/metrics_server.h"
#include "coordinator/encoded_slice_cache.h"
#include "coordinator/metrics.h"
#include "coordinator/model_registry.h"

namespace oubli::coordinator {

class PrometheusMetrics final : public ModelMetricsFactory, public RpcMetrics {
 public:
  static std::shared_ptr<PrometheusMetrics> Create();
  ~PrometheusMetrics() override;
  PrometheusMetrics(const PrometheusMetrics&) = delete;
  PrometheusMetrics& operator=(const PrometheusMetrics&) = delete;

  // A model's event series live while any returned pointer does.
  std::shared_ptr<EngineMetrics> ForModel(absl::string_view model_id) override;
  void RpcHandled(absl::string_view method, absl::string_view code,
                  absl::Duration latency) override;

  // The registry whose state the scrape-time gauges describe; nullptr
  // detaches it, waiting for a scrape in progress. `registry` must stay
  // open until detached.
  void SetRegistry(ModelRegistry* registry);

  // (name, alive) of every registered worker, asked at each scrape for
  // oubli_worker_up; must not block. Empty function: none.
  using WorkerLiveness =
      std::function<std::vector<std::pair<std::string, bool>>()>;
  void SetWorkers(WorkerLiveness workers);

  // The coordinator's slice cache, read at each scrape for
  // oubli_slice_cache_*; nullptr: no such series.
  void SetSliceCache(std::shared_ptr<const EncodedSliceCache> cache);

  // The exposition text, as served on /metrics (tests, debugging).
  std::string Serialize() const;

  struct Impl;

 private:
  PrometheusMetrics();
  std::shared_ptr<Impl> impl_;
};

}  // namespace oubli::coordinator

#endif  // OUBLI_COORDINATOR_PROMETHEUS_METRICS_H_
