// oubli-worker: trains S3T positions for an oubli-coordinator.
//
//   oubli-worker --coordinator=HOST:PORT [--listen=127.0.0.1:0]
//                [--advertise=HOST:PORT] [--name=NAME] [--data_dir=DIR]
//
// Prints "listening on HOST:PORT" once serving (and "metrics on HOST:PORT"
// with --metrics_listen), then "registered as ID"
// each time the coordinator accepts it (again after a coordinator restart).
// Health (grpc.health.v1) is NOT_SERVING until registered. With --data_dir
// it keeps erasure-coded checkpoint chunks for the coordinator there, and
// cached training slices (--slice_disk_cache_bytes) until they are dropped
// or the next start shreds them.
// SIGINT/SIGTERM shut down cleanly.

#include <malloc.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/time/time.h"
#include "common/cluster_protocol.h"
#include "common/server_main.h"
#include "common/tls_files.h"
#include "worker/ml/device.h"
#include "worker/worker_service.h"

ABSL_FLAG(std::string, coordinator, "",
          "oubli-coordinator HOST:PORT to register with (required)");
ABSL_FLAG(std::string, listen, "127.0.0.1:0",
          "HOST:PORT to serve oubli.cluster.Worker on; port 0 picks one");
ABSL_FLAG(std::string, advertise, "",
          "HOST:PORT the coordinator dials; default: the bound --listen "
          "address (required when listening on a wildcard address)");
ABSL_FLAG(std::string, name, "",
          "stable name (logs, GetModel, chunk manifests); required with "
          "--data_dir, which is bound to it; default: the advertised "
          "address");
ABSL_FLAG(std::string, data_dir, "",
          "directory for erasure-coded checkpoint chunks and slice files; "
          "empty: this worker trains but holds no chunks and caches slices "
          "in memory only");
ABSL_FLAG(std::string, cluster_token_file, "",
          "file holding the coordinator's cluster token (see "
          "oubli-coordinator --cluster_token_file)");
ABSL_FLAG(std::string, tls_cert, "",
          "PEM certificate chain served on --listen and presented to the "
          "coordinator; re-read when it changes. Empty: plaintext");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert");
ABSL_FLAG(std::string, tls_client_ca, "",
          "PEM CAs the coordinator's client certificate must chain to "
          "(required with --tls_cert: the Worker service is mutual TLS)");
ABSL_FLAG(std::string, tls_peer_ca, "",
          "PEM CAs the coordinator's serving certificate must chain to; "
          "default: --tls_client_ca");
ABSL_FLAG(std::string, tls_coordinator_name,
          oubli::kCoordinatorCertificateName,
          "with TLS: the name (DNS SAN) the coordinator's certificate "
          "carries; checked when dialling it and required of its calls");
ABSL_FLAG(bool, metrics_tls, false,
          "serve /metrics over HTTPS with --tls_cert and --tls_key");
ABSL_FLAG(std::string, metrics_tls_client_ca, "",
          "with --metrics_tls: PEM CAs whose certificates scrapers must "
          "present (re-read when it changes); empty: none is asked for");
ABSL_FLAG(bool, insecure, false,
          "allow listening beyond loopback without mutual TLS: anyone "
          "reaching the port could read training data");
ABSL_FLAG(std::string, metrics_listen, "",
          "HOST:PORT serving Prometheus metrics on /metrics; port 0 picks a "
          "free port; empty (default) disables them");
ABSL_FLAG(std::string, device, "auto",
          "where to train and predict: auto (CUDA when this LibTorch build "
          "and a GPU are there, else the CPU), cpu or cuda; part of the "
          "numeric environment, so the coordinator and its workers must "
          "choose the same");
ABSL_FLAG(int64_t, max_message_bytes, int64_t{64} << 20,
          "largest request or response message, bytes");
ABSL_FLAG(int64_t, slice_cache_bytes, int64_t{1} << 30,
          "memory for training slices received from the coordinator, "
          "bytes; the slices of one position must fit");
ABSL_FLAG(int64_t, slice_disk_cache_bytes, int64_t{4} << 30,
          "with --data_dir: bytes of training slices also kept as files in "
          "DATA_DIR/slices (shredded when dropped; every file a previous "
          "run left is shredded at start); 0: memory only");
ABSL_FLAG(int, background_nice, 10,
          "added to the nice value of the threads that train positions, so "
          "shard predictions get a core first; 0..19; in the idle class "
          "(--background_idle_class) it only shows in top, the class "
          "decides");
ABSL_FLAG(bool, background_idle_class, false,
          "also train in the kernel's idle class (SCHED_IDLE), so a shard "
          "prediction's thread takes the core the moment it wakes; training "
          "then gets no CPU while anything else wants it: only where nothing "
          "else competes for the cores");
ABSL_FLAG(int, malloc_arena_max, 2,
          "glibc malloc arenas (M_ARENA_MAX); 0 keeps glibc's default (8 "
          "per core; the environment's MALLOC_ARENA_MAX wins). Under "
          "oubli-bench soak's deletion stream glibc's default let RSS grow "
          "~100 MiB a minute while the slice cache held under 5 MiB (freed "
          "memory kept in per-thread arenas); 2 kept it flat");

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "oubli-worker --coordinator=HOST:PORT [--listen=HOST:PORT]");
  absl::ParseCommandLine(argc, argv);
  // An operator's MALLOC_ARENA_MAX wins over the flag's default.
  if (const int arenas = absl::GetFlag(FLAGS_malloc_arena_max);
      arenas > 0 && std::getenv("MALLOC_ARENA_MAX") == nullptr) {
    mallopt(M_ARENA_MAX, arenas);
  } else if (arenas < 0) {
    std::fprintf(stderr, "oubli-worker: --malloc_arena_max must be >= 0\n");
    return 2;
  }
  oubli::worker::WorkerServer::Options options;
  options.coordinator_address = absl::GetFlag(FLAGS_coordinator);
  options.listen_address = absl::GetFlag(FLAGS_listen);
  options.advertise_address = absl::GetFlag(FLAGS_advertise);
  options.name = absl::GetFlag(FLAGS_name);
  options.data_dir = absl::GetFlag(FLAGS_data_dir);
  options.metrics_listen_address = absl::GetFlag(FLAGS_metrics_listen);
  options.on_registered = [](const std::string& worker_id) {
    std::printf("registered as %s\n", worker_id.c_str());
    std::fflush(stdout);
  };
  if (!oubli::ReadClusterTokenFlag("oubli-worker",
                                   absl::GetFlag(FLAGS_cluster_token_file),
                                   &options.cluster_token)) {
    return 2;
  }
  options.max_message_bytes = absl::GetFlag(FLAGS_max_message_bytes);
  options.slice_cache_bytes = absl::GetFlag(FLAGS_slice_cache_bytes);
  options.background_priority = {
      .nice_increment = absl::GetFlag(FLAGS_background_nice),
      .idle_class = absl::GetFlag(FLAGS_background_idle_class)};
  if (options.slice_cache_bytes < (int64_t{1} << 20)) {
    std::fprintf(stderr, "oubli-worker: --slice_cache_bytes must be at "
                         "least 1 MiB\n");
    return 2;
  }
  options.slice_disk_cache_bytes = absl::GetFlag(FLAGS_slice_disk_cache_bytes);
  if (options.slice_disk_cache_bytes < 0) {
    std::fprintf(stderr,
                 "oubli-worker: --slice_disk_cache_bytes must be >= 0\n");
    return 2;
  }
  if (options.coordinator_address.empty()) {
    std::fprintf(stderr, "oubli-worker: --coordinator is required\n");
    return 2;
  }
  options.tls_listen.cert = absl::GetFlag(FLAGS_tls_cert);
  options.tls_listen.key = absl::GetFlag(FLAGS_tls_key);
  options.tls_listen.client_ca = absl::GetFlag(FLAGS_tls_client_ca);
  if (options.tls_listen.enabled()) {
    if (options.tls_listen.client_ca.empty()) {
      std::fprintf(stderr,
                   "oubli-worker: --tls_cert needs --tls_client_ca: only the "
                   "coordinator may call a worker\n");
      return 2;
    }
    options.tls_dial.ca = absl::GetFlag(FLAGS_tls_peer_ca);
    if (options.tls_dial.ca.empty()) {
      options.tls_dial.ca = options.tls_listen.client_ca;
    }
    options.tls_dial.cert = options.tls_listen.cert;
    options.tls_dial.key = options.tls_listen.key;
  }
  if (absl::GetFlag(FLAGS_metrics_tls)) {
    if (!options.tls_listen.enabled()) {
      std::fprintf(stderr,
                   "oubli-worker: --metrics_tls needs --tls_cert and "
                   "--tls_key\n");
      return 2;
    }
    options.metrics_tls.cert = options.tls_listen.cert;
    options.metrics_tls.key = options.tls_listen.key;
    options.metrics_tls.client_ca = absl::GetFlag(FLAGS_metrics_tls_client_ca);
    options.metrics_tls.client_ca_flag = "metrics_tls_client_ca";
  } else if (!absl::GetFlag(FLAGS_metrics_tls_client_ca).empty()) {
    std::fprintf(stderr,
                 "oubli-worker: --metrics_tls_client_ca needs --metrics_tls\n");
    return 2;
  }
  options.coordinator_certificate_name =
      absl::GetFlag(FLAGS_tls_coordinator_name);
  if (options.tls_listen.enabled() &&
      options.coordinator_certificate_name.empty()) {
    // The cluster token is for plaintext loopback setups; under TLS the
    // coordinator is who its certificate names.
    std::fprintf(stderr,
                 "oubli-worker: with TLS, the coordinator is recognised by the "
                 "name its certificate carries (--tls_coordinator_name), "
                 "which is empty; a cluster token does not replace it\n");
    return 2;
  }
  for (const absl::Status& s :
       {oubli::CheckTlsServerFiles(options.tls_listen),
        oubli::CheckTlsDialFiles(options.tls_dial, "tls_peer_ca")}) {
    if (!s.ok()) {
      std::fprintf(stderr, "oubli-worker: %s\n",
                   std::string(s.message()).c_str());
      return 2;
    }
  }
  if (absl::StatusOr<std::string> host = oubli::CheckServerAddress(
          options.listen_address, options.max_message_bytes);
      (!host.ok() || !oubli::IsLoopbackHost(*host)) &&
      !absl::GetFlag(FLAGS_insecure) && !options.tls_listen.enabled()) {
    std::fprintf(stderr,
                 "oubli-worker: --listen=%s reaches beyond this machine: give "
                 "--tls_cert/--tls_key/--tls_client_ca, or --insecure to "
                 "serve it unprotected\n",
                 options.listen_address.c_str());
    return 2;
  }

  oubli::ShutdownSignals shutdown_signals;  // before any thread starts

  // After the signal mask: looking for a GPU starts driver threads.
  if (!oubli::ml::UseComputeDeviceFlag("oubli-worker",
                                       absl::GetFlag(FLAGS_device))) {
    return 2;
  }

  auto server = oubli::worker::WorkerServer::Start(options);
  if (!server.ok()) {
    std::fprintf(stderr, "oubli-worker: %s\n",
                 server.status().ToString().c_str());
    return 1;
  }
  oubli::AnnounceAddresses((*server)->address(), (*server)->metrics_address());

  const int signal_number = shutdown_signals.Wait();
  std::fprintf(stderr, "oubli-worker: signal %d, shutting down\n",
               signal_number);
  (*server)->Shutdown(absl::Seconds(5));
  return 0;
}
