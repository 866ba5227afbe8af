// oubli-worker: trains S3T positions for an oubli-coordinator.
//
//   oubli-worker --coordinator=HOST:PORT [--listen=127.0.0.1:0]
//                [--advertise=HOST:PORT] [--name=NAME] [--data_dir=DIR]
//
// Prints "listening on HOST:PORT" once serving (and "metrics on HOST:PORT"
// with --metrics_listen), then "registered as ID"
// each time the coordinator accepts it (again after a coordinator restart).
// Health (grpc.health.v1) is NOT_SERVING until registered. With --data_dir
// it keeps erasure-coded checkpoint chunks for the coordinator there;
// training data lives only for the call.
// SIGINT/SIGTERM shut down cleanly.

#include <cstdint>
#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/time/time.h"
#include "common/cluster_protocol.h"
#include "common/server_main.h"
#include "worker/device.h"
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
          "directory for erasure-coded checkpoint chunks; empty: this worker "
          "trains but holds no chunks");
ABSL_FLAG(std::string, cluster_token_file, "",
          "file holding the coordinator's cluster token (see "
          "oubli-coordinator --cluster_token_file)");
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

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "oubli-worker --coordinator=HOST:PORT [--listen=HOST:PORT]");
  absl::ParseCommandLine(argc, argv);
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
  if (options.coordinator_address.empty()) {
    std::fprintf(stderr, "oubli-worker: --coordinator is required\n");
    return 2;
  }

  oubli::ShutdownSignals shutdown_signals;  // before any thread starts

  // After the signal mask: looking for a GPU starts driver threads.
  if (!oubli::worker::UseComputeDeviceFlag("oubli-worker",
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
