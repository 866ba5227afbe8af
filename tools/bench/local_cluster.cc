#include "tools/bench/local_cluster.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/status_macros.h"

namespace oubli::bench {

std::vector<std::pair<std::string, pid_t>> Cluster::Processes() const {
  std::vector<std::pair<std::string, pid_t>> out = {
      {"coordinator", coordinator->pid()}};
  for (size_t i = 0; i < workers.size(); ++i) {
    out.emplace_back(absl::StrCat("worker-", i), workers[i]->pid());
  }
  return out;
}

absl::Status Cluster::Stop() {
  absl::Status first;
  for (auto& w : workers) first.Update(w->Stop(absl::Seconds(30)));
  if (coordinator != nullptr) {
    first.Update(coordinator->Stop(absl::Seconds(60)));
  }
  return first;
}

std::string SiblingBinary(const std::string& relative) {
  std::error_code error;
  const std::filesystem::path self =
      std::filesystem::read_symlink("/proc/self/exe", error);
  // build/tools/oubli-bench -> build/<relative>
  return (self.parent_path().parent_path() / relative).string();
}

absl::StatusOr<Cluster> StartCluster(const ClusterOptions& options) {
  Cluster cluster;
  const std::string& dir = options.dir;
  const std::string coordinator_binary =
      options.coordinator_binary.empty()
          ? SiblingBinary("coordinator/oubli-coordinator")
          : options.coordinator_binary;
  const std::string worker_binary = options.worker_binary.empty()
                                        ? SiblingBinary("worker/oubli-worker")
                                        : options.worker_binary;
  std::vector<std::string> coordinator_args = {
      absl::StrCat("--data_dir=", dir, "/coordinator"), "--listen=127.0.0.1:0",
      "--metrics_listen=127.0.0.1:0", "--device=cpu",
      absl::StrCat("--training_threads=", options.training_threads)};
  coordinator_args.insert(coordinator_args.end(),
                          options.coordinator_flags.begin(),
                          options.coordinator_flags.end());
  OUBLI_ASSIGN_OR_RETURN(
      cluster.coordinator,
      ChildProcess::Start(coordinator_binary, coordinator_args,
                          absl::StrCat(dir, "/coordinator.log")));
  OUBLI_ASSIGN_OR_RETURN(
      cluster.address,
      cluster.coordinator->WaitForLine("listening on ", absl::Minutes(2)));
  OUBLI_ASSIGN_OR_RETURN(
      cluster.metrics_address,
      cluster.coordinator->WaitForLine("metrics on ", absl::Seconds(30)));
  for (int i = 0; i < options.workers; ++i) {
    std::vector<std::string> worker_args = {
        absl::StrCat("--coordinator=", cluster.address),
        "--listen=127.0.0.1:0",
        "--metrics_listen=127.0.0.1:0",
        absl::StrCat("--name=worker-", i),
        absl::StrCat("--data_dir=", dir, "/worker-", i),
        "--device=cpu"};
    worker_args.insert(worker_args.end(), options.worker_flags.begin(),
                       options.worker_flags.end());
    OUBLI_ASSIGN_OR_RETURN(
        std::unique_ptr<ChildProcess> worker,
        ChildProcess::Start(worker_binary, worker_args,
                            absl::StrCat(dir, "/worker-", i, ".log")));
    cluster.workers.push_back(std::move(worker));
  }
  for (auto& worker : cluster.workers) {
    // It prints "metrics on" before "registered as".
    OUBLI_ASSIGN_OR_RETURN(
        cluster.worker_metrics_addresses.emplace_back(),
        worker->WaitForLine("metrics on ", absl::Minutes(2)));
    OUBLI_RETURN_IF_ERROR(
        worker->WaitForLine("registered as ", absl::Minutes(2)).status());
  }
  return cluster;
}

}  // namespace oubli::bench
