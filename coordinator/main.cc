// oubli-coordinator: the oubli gRPC server (oubli.v1.Oubli, and
// oubli.cluster.Membership for oubli-worker processes).
//
//   oubli-coordinator --data_dir=/var/lib/oubli [--listen=127.0.0.1:50051]
//                     [--metrics_listen=127.0.0.1:9464]
//
// Prints "listening on HOST:PORT" on stdout once every model is open (with
// --listen=HOST:0 that is how scripts learn the port), then, unless
// --metrics_listen is empty, "metrics on HOST:PORT" (Prometheus, path
// /metrics). Health reports NOT_SERVING until then. SIGINT/SIGTERM shut
// down cleanly.

#include <malloc.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/cluster_protocol.h"
#include "common/server_main.h"
#include "common/thread_priority.h"
#include "common/tls_files.h"
#include "coordinator/grpc_service.h"
#include "worker/ml/device.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50051",
          "HOST:PORT to listen on; port 0 picks a free port");
ABSL_FLAG(std::string, data_dir, "", "root directory of all models (required)");
ABSL_FLAG(std::string, device, "auto",
          "where to train and predict: auto (CUDA when this LibTorch build "
          "and a GPU are there, else the CPU), cpu or cuda; part of the "
          "numeric environment, so the coordinator and its workers must "
          "choose the same");
ABSL_FLAG(int64_t, max_message_bytes, int64_t{64} << 20,
          "largest request or response message, bytes");
ABSL_FLAG(int, training_threads, 1, "training threads per model engine");
ABSL_FLAG(int, background_nice, 10,
          "added to the nice value of the threads that train, purge and "
          "compact (RocksDB), so Predict and deletions get a core first; "
          "0..19; in the idle class (--background_idle_class) it only "
          "shows in top, the class decides");
ABSL_FLAG(bool, background_idle_class, false,
          "also run those threads in the kernel's idle class (SCHED_IDLE), "
          "so a request's thread takes the core the moment it wakes (a "
          "shorter Predict tail under load); but a request that needs a "
          "lock such a thread holds waits until the CPU has nothing else "
          "to do, which under outside CPU contention stalled Predicts for "
          "100+ ms with workers: only where nothing else competes for the "
          "cores");
ABSL_FLAG(absl::Duration, worker_timeout, absl::Seconds(5),
          "a worker without heartbeats this long is dead and its work moves "
          "to others");
ABSL_FLAG(absl::Duration, heartbeat_interval, absl::Seconds(1),
          "how often workers are told to heartbeat");
ABSL_FLAG(bool, predict_on_workers, true,
          "fan Predict's shards out to live workers (each shard computed "
          "here when its worker fails); false: compute all here");
ABSL_FLAG(absl::Duration, predict_deadline, absl::Seconds(5),
          "deadline of one worker's share of a Predict, loading missing "
          "checkpoints included; past it the shards are computed here");
ABSL_FLAG(std::string, cluster_token_file, "",
          "file holding the shared secret workers must present (and that "
          "the coordinator presents to them); empty: no check, for loopback "
          "development only");
ABSL_FLAG(std::string, tls_cert, "",
          "PEM certificate chain served on --listen (public API and cluster "
          "protocol) and presented to workers; re-read when it changes. "
          "Empty: plaintext");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert");
ABSL_FLAG(std::string, tls_client_ca, "",
          "PEM CAs that callers' client certificates must chain to; "
          "workers must present one (mutual TLS)");
ABSL_FLAG(std::string, tls_peer_ca, "",
          "PEM CAs that workers' serving certificates must chain to; "
          "default: --tls_client_ca");
ABSL_FLAG(std::string, tls_worker_name, oubli::kWorkerCertificateName,
          "with TLS: the name (DNS SAN) every worker's certificate carries; "
          "checked when dialling a worker and when one registers");
ABSL_FLAG(std::string, policy_file, "",
          "access policy (text format of oubli.config.AccessPolicy: who has "
          "which roles for which models); re-read when it changes. Empty: "
          "no authentication, allowed on loopback or with --insecure only");
ABSL_FLAG(std::string, token_file, "",
          "bearer tokens as lines 'NAME SHA256HEX' (the hex SHA-256 of the "
          "token); re-read when it changes");
ABSL_FLAG(std::string, audit_log, "",
          "JSON-lines audit log of mutating and refused calls; empty: none");
ABSL_FLAG(int64_t, audit_log_max_bytes, int64_t{64} << 20,
          "rotate the audit log past this size");
ABSL_FLAG(int, audit_log_keep_files, 5, "rotated audit logs kept");
ABSL_FLAG(int, max_concurrent_calls, 512,
          "public API calls in flight (streams included); more are refused "
          "with RESOURCE_EXHAUSTED");
ABSL_FLAG(int, max_watch_streams, 256,
          "WatchDeletion streams open at once; more are refused with "
          "RESOURCE_EXHAUSTED");
ABSL_FLAG(int64_t, max_ingest_stream_samples, 10'000'000,
          "samples one IngestSamples stream may carry; past it the stream "
          "ends with RESOURCE_EXHAUSTED (what it stored is kept)");
ABSL_FLAG(int64_t, ingest_memory_bytes,
          oubli::coordinator::IngestBudget::kDefaultBytes,
          "bytes of received samples all IngestSamples streams work on at "
          "once; a message that does not fit waits (its stream reads no "
          "more meanwhile), and is refused with RESOURCE_EXHAUSTED if it "
          "never could or waited a minute");
ABSL_FLAG(int64_t, slice_cache_bytes,
          oubli::coordinator::EncodedSliceCache::kDefaultBytes,
          "bytes of encoded slices kept in memory between the positions that "
          "train on them, over every model; a slice not held is read again "
          "from the model's lineage store. 0: none kept");
ABSL_FLAG(int64_t, grpc_memory_bytes, int64_t{1} << 30,
          "memory gRPC may use for connection and message buffers");
ABSL_FLAG(bool, metrics_tls, false,
          "serve /metrics over HTTPS with --tls_cert and --tls_key");
ABSL_FLAG(std::string, metrics_tls_client_ca, "",
          "with --metrics_tls: PEM CAs whose certificates scrapers must "
          "present (re-read when it changes); empty: none is asked for");
ABSL_FLAG(bool, insecure, false,
          "allow listening beyond loopback without TLS (--tls_cert) and an "
          "access policy (--policy_file): anyone reaching the port can read "
          "and delete data");
ABSL_FLAG(std::string, metrics_listen, "127.0.0.1:9464",
          "HOST:PORT serving Prometheus metrics on /metrics; port 0 picks a "
          "free port; empty disables metrics");

ABSL_FLAG(int, malloc_arena_max, 2,
          "glibc malloc arenas (M_ARENA_MAX); 0 keeps glibc's default (8 "
          "per core; the environment's MALLOC_ARENA_MAX wins). Fewer arenas "
          "mean more lock contention in malloc, but many gRPC threads each "
          "holding an arena of freed ingest buffers cost ~30% more memory "
          "at 1,000,000 samples");

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "oubli-coordinator --data_dir=DIR [--listen=HOST:PORT]");
  absl::ParseCommandLine(argc, argv);
  // An operator's MALLOC_ARENA_MAX wins over the flag's default.
  if (const int arenas = absl::GetFlag(FLAGS_malloc_arena_max);
      arenas > 0 && std::getenv("MALLOC_ARENA_MAX") == nullptr) {
    mallopt(M_ARENA_MAX, arenas);
  } else if (arenas < 0) {
    std::fprintf(stderr,
                 "oubli-coordinator: --malloc_arena_max must be >= 0\n");
    return 2;
  }

  oubli::coordinator::CoordinatorServer::Options options;
  options.listen_address = absl::GetFlag(FLAGS_listen);
  options.data_dir = absl::GetFlag(FLAGS_data_dir);
  options.max_message_bytes = absl::GetFlag(FLAGS_max_message_bytes);
  options.training_threads = absl::GetFlag(FLAGS_training_threads);
  options.background_priority = {
      .nice_increment = absl::GetFlag(FLAGS_background_nice),
      .idle_class = absl::GetFlag(FLAGS_background_idle_class)};
  if (const absl::Status valid = oubli::CheckNiceIncrement(
          "--background_nice", options.background_priority.nice_increment);
      !valid.ok()) {
    std::fprintf(stderr, "oubli-coordinator: %s\n",
                 std::string(valid.message()).c_str());
    return 2;
  }
  options.metrics_listen_address = absl::GetFlag(FLAGS_metrics_listen);
  options.workers.worker_timeout = absl::GetFlag(FLAGS_worker_timeout);
  options.workers.heartbeat_interval = absl::GetFlag(FLAGS_heartbeat_interval);
  options.predict_on_workers = absl::GetFlag(FLAGS_predict_on_workers);
  options.workers.predict_deadline = absl::GetFlag(FLAGS_predict_deadline);
  if (!oubli::ReadClusterTokenFlag("oubli-coordinator",
                                   absl::GetFlag(FLAGS_cluster_token_file),
                                   &options.workers.cluster_token)) {
    return 2;
  }
  if (options.workers.heartbeat_interval <= absl::ZeroDuration() ||
      options.workers.worker_timeout <= options.workers.heartbeat_interval) {
    std::fprintf(stderr,
                 "oubli-coordinator: need 0 < --heartbeat_interval < "
                 "--worker_timeout\n");
    return 2;
  }
  if (options.workers.predict_deadline <= absl::ZeroDuration()) {
    std::fprintf(stderr, "oubli-coordinator: --predict_deadline must be > 0\n");
    return 2;
  }
  if (options.data_dir.empty()) {
    std::fprintf(stderr, "oubli-coordinator: --data_dir is required\n");
    return 2;
  }
  options.tls.cert = absl::GetFlag(FLAGS_tls_cert);
  options.tls.key = absl::GetFlag(FLAGS_tls_key);
  options.tls.client_ca = absl::GetFlag(FLAGS_tls_client_ca);
  options.workers.tls.ca = absl::GetFlag(FLAGS_tls_peer_ca);
  if (options.workers.tls.ca.empty()) {
    options.workers.tls.ca = options.tls.client_ca;
  }
  if (!absl::GetFlag(FLAGS_tls_peer_ca).empty() &&
      options.tls.client_ca.empty()) {
    std::fprintf(stderr,
                 "oubli-coordinator: --tls_peer_ca without --tls_client_ca: "
                 "workers could not register (they must present a client "
                 "certificate)\n");
    return 2;
  }
  if (options.tls.enabled() && !options.workers.tls.ca.empty()) {
    options.workers.tls.cert = options.tls.cert;
    options.workers.tls.key = options.tls.key;
  } else {
    // Plaintext cluster, or TLS for API callers only (no client CA: no
    // worker can present a certificate, so none registers).
    options.workers.tls.ca.clear();
  }
  options.workers.tls.server_name = absl::GetFlag(FLAGS_tls_worker_name);
  for (const absl::Status& s :
       {oubli::CheckTlsServerFiles(options.tls),
        oubli::CheckTlsDialFiles(options.workers.tls, "tls_peer_ca")}) {
    if (!s.ok()) {
      std::fprintf(stderr, "oubli-coordinator: %s\n",
                   std::string(s.message()).c_str());
      return 2;
    }
  }
  options.max_concurrent_calls = absl::GetFlag(FLAGS_max_concurrent_calls);
  options.max_watch_streams = absl::GetFlag(FLAGS_max_watch_streams);
  options.max_ingest_stream_samples =
      absl::GetFlag(FLAGS_max_ingest_stream_samples);
  options.ingest_memory_bytes = absl::GetFlag(FLAGS_ingest_memory_bytes);
  options.slice_cache_bytes = absl::GetFlag(FLAGS_slice_cache_bytes);
  options.grpc_memory_bytes = absl::GetFlag(FLAGS_grpc_memory_bytes);
  if (absl::GetFlag(FLAGS_metrics_tls)) {
    if (!options.tls.enabled()) {
      std::fprintf(stderr,
                   "oubli-coordinator: --metrics_tls needs --tls_cert and "
                   "--tls_key\n");
      return 2;
    }
    options.metrics_tls.cert = options.tls.cert;
    options.metrics_tls.key = options.tls.key;
    options.metrics_tls.client_ca = absl::GetFlag(FLAGS_metrics_tls_client_ca);
    options.metrics_tls.client_ca_flag = "metrics_tls_client_ca";
  } else if (!absl::GetFlag(FLAGS_metrics_tls_client_ca).empty()) {
    std::fprintf(
        stderr,
        "oubli-coordinator: --metrics_tls_client_ca needs --metrics_tls\n");
    return 2;
  }
  options.policy_file = absl::GetFlag(FLAGS_policy_file);
  options.token_file = absl::GetFlag(FLAGS_token_file);
  options.audit_log = absl::GetFlag(FLAGS_audit_log);
  options.audit_log_max_bytes = absl::GetFlag(FLAGS_audit_log_max_bytes);
  options.audit_log_keep_files = absl::GetFlag(FLAGS_audit_log_keep_files);
  if (absl::StatusOr<std::string> host = oubli::CheckServerAddress(
          options.listen_address, options.max_message_bytes);
      (!host.ok() || !oubli::IsLoopbackHost(*host)) &&
      !absl::GetFlag(FLAGS_insecure) &&
      (!options.tls.enabled() || options.policy_file.empty())) {
    std::fprintf(stderr,
                 "oubli-coordinator: --listen=%s reaches beyond this machine: "
                 "give --tls_cert/--tls_key and --policy_file, or "
                 "--insecure to serve it unprotected\n",
                 options.listen_address.c_str());
    return 2;
  }

  oubli::ShutdownSignals shutdown_signals;  // before any thread starts

  // After the signal mask: looking for a GPU starts driver threads.
  if (!oubli::ml::UseComputeDeviceFlag("oubli-coordinator",
                                       absl::GetFlag(FLAGS_device))) {
    return 2;
  }

  auto server = oubli::coordinator::CoordinatorServer::Start(options);
  if (!server.ok()) {
    std::fprintf(stderr, "oubli-coordinator: %s\n",
                 server.status().ToString().c_str());
    return 1;
  }
  oubli::AnnounceAddresses((*server)->address(), (*server)->metrics_address());

  const int signal_number = shutdown_signals.Wait();
  std::fprintf(stderr, "oubli-coordinator: signal %d, shutting down\n",
               signal_number);
  (*server)->Shutdown();
  return 0;
}
