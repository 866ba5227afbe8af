#include "coordinator/worker_serving.h"

#include <grpcpp/grpcpp.h>

#include <cstring>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/grpc_status.h"
#include "common/status_macros.h"
#include "coordinator/pooled_worker.h"
#include "oubli/cluster/cluster.grpc.pb.h"

namespace oubli::coordinator {

namespace {

// A PredictShardsRequest naming query.shards[indices], without inputs.
cluster::PredictShardsRequest ShardsRequest(
    const ShardServing::Query& query, const std::vector<size_t>& indices) {
  cluster::PredictShardsRequest request;
  request.set_model_id(query.model_id);
  request.set_config(query.config_text);
  request.set_environment(query.environment);
  for (size_t i : indices) {
    cluster::ShardCheckpoint* shard = request.add_shards();
    shard->set_shard(query.shards[i].shard);
    shard->set_checkpoint_sha256(query.shards[i].checkpoint_sha256);
  }
  return request;
}

}  // namespace

WorkerServing::WorkerServing(std::shared_ptr<WorkerPool> pool)
    : pool_(std::move(pool)) {}

WorkerServing::~WorkerServing() = default;

int WorkerServing::ServingCapacity(const std::string& environment) {
  return pool_->Capacity(environment);
}

std::vector<ShardServing::ShardResult> WorkerServing::Predict(
    const Query& query) {
  std::vector<ShardResult> results(query.shards.size());
  const WorkerPool::Placement placement = pool_->PlaceShards(query);
  if (placement.servers.empty()) {
    for (ShardResult& result : results) {
      result.probabilities =
          absl::UnavailableError("no live worker can serve this model");
    }
    return results;
  }
  std::string features(reinterpret_cast<const char*>(query.inputs.data()),
                       query.inputs.size() * sizeof(float));
  std::vector<std::thread> threads;
  for (size_t w = 0; w < placement.servers.size(); ++w) {
    if (placement.groups[w].empty()) continue;
    threads.emplace_back([&, w] {
      PredictOn(placement.servers[w], query, features, placement.groups[w],
                &results);
    });
  }
  for (std::thread& thread : threads) thread.join();
  return results;
}

absl::Status WorkerServing::Sync(const Query& query) {
  OUBLI_RETURN_IF_ERROR(
      pool_->WaitForUnreachableCopies(query.model_id, query.reopened, false));
  const WorkerPool::Placement placement = pool_->PlaceShards(query);
  // Workers backed off from this model may still hold copies they loaded
  // before: they are told to serve none. Workers not known to have dropped
  // are declared dead, so they hold nothing by the time anyone asks them
  // again (a worker drops every copy before it registers again, and by
  // itself once heartbeats fail for worker_timeout).
  std::vector<std::shared_ptr<WorkerPool::Worker>> told = placement.servers;
  std::vector<std::vector<size_t>> groups = placement.groups;
  for (const std::shared_ptr<WorkerPool::Worker>& worker :
       placement.backed_off) {
    told.push_back(worker);
    groups.emplace_back();
  }
  return pool_->ConfirmDropOnAll(told, "serving copies", [&](size_t w) {
    const cluster::PredictShardsRequest request =
        ShardsRequest(query, groups[w]);  // rows 0: sync only
    grpc::ClientContext context;
    pool_->PrepareCall(&context,
                       absl::Now() + pool_->options().predict_deadline);
    cluster::PredictShardsResponse response;
    const grpc::Status status =
        told[w]->stub->PredictShards(&context, request, &response);
    // The worker drops before it validates the request: its own
    // rejections still dropped.
    const grpc::StatusCode code = status.error_code();
    return code == grpc::StatusCode::FAILED_PRECONDITION ||
                   code == grpc::StatusCode::INVALID_ARGUMENT
               ? grpc::Status::OK
               : status;
  });
}

void WorkerServing::PredictOn(const std::shared_ptr<WorkerPool::Worker>& server,
                              const Query& query, const std::string& features,
                              const std::vector<size_t>& indices,
                              std::vector<ShardResult>* results) {
  pool_->AskedToServe(*server, query.model_id);
  const WorkerPool::Worker& worker = *server;
  const absl::Time deadline = absl::Now() + pool_->options().predict_deadline;
  // Keeps answers a first round already got.
  auto fail_all = [&](const absl::Status& why) {
    for (size_t i : indices) {
      if ((*results)[i].probabilities.ok()) continue;
      (*results)[i].probabilities = absl::Status(
          why.code(),
          absl::StrCat("worker ", worker.name, ": ", why.message()));
    }
  };
  for (size_t i : indices) {
    (*results)[i].probabilities = absl::UnavailableError("not answered");
  }
  // The answer carries rows x classes floats per shard; one too big for a
  // message would fail after the worker did the work.
  const double answer_bytes =
      static_cast<double>(indices.size()) * static_cast<double>(query.rows) *
      static_cast<double>(query.classes) * sizeof(float);
  if (answer_bytes + 4096 >
      static_cast<double>(pool_->options().max_message_bytes)) {
    return fail_all(absl::ResourceExhaustedError(
        "its answer would exceed max_message_bytes"));
  }
  cluster::PredictShardsRequest request = ShardsRequest(query, indices);
  request.set_rows(query.rows);
  request.set_features(features);

  // At most two rounds: ask, load what the worker lacks, ask again. Both
  // name every shard this worker serves: a worker drops the slots a
  // request does not name (that is how a purge reaches it).
  for (int round = 0; round < 2; ++round) {
    grpc::ClientContext context;
    pool_->PrepareCall(&context, deadline);
    cluster::PredictShardsResponse response;
    grpc::Status status =
        worker.stub->PredictShards(&context, request, &response);
    if (!status.ok()) return fail_all(FromGrpcStatus(status));
    if (response.shards_size() != static_cast<int>(indices.size())) {
      return fail_all(absl::InternalError("answered the wrong shards"));
    }
    if (response.classes() != query.classes) {
      return fail_all(
          absl::InternalError(absl::StrCat("answered with ", response.classes(),
                                           " classes, not ", query.classes)));
    }
    const size_t expected = static_cast<size_t>(query.rows) *
                            static_cast<size_t>(query.classes) * sizeof(float);
    std::vector<size_t> missing;
    for (size_t j = 0; j < indices.size(); ++j) {
      const cluster::ShardProbabilities& answer = response.shards(j);
      ShardResult& result = (*results)[indices[j]];
      if (answer.shard() != query.shards[indices[j]].shard) {
        return fail_all(absl::InternalError("answered the wrong shards"));
      }
      if (!answer.loaded()) {
        missing.push_back(j);
        // In the second round, keep why loading failed.
        if (round == 0) {
          result.probabilities = absl::UnavailableError(
              absl::StrCat("worker ", worker.name, " lacks the checkpoint"));
        }
        continue;
      }
      if (answer.probabilities().size() != expected) {
        result.probabilities = absl::InternalError(absl::StrCat(
            "worker ", worker.name, " answered shard ", answer.shard(),
            " with ", answer.probabilities().size(), " bytes"));
        continue;
      }
      std::vector<float> probabilities(expected / sizeof(float));
      std::memcpy(probabilities.data(), answer.probabilities().data(),
                  expected);
      result.probabilities = std::move(probabilities);
      result.worker = worker.name;
    }
    if (missing.empty() || round == 1) return;
    bool loaded_any = false;
    for (size_t j : missing) {
      const size_t i = indices[j];
      absl::StatusOr<std::string> bytes = query.checkpoint(i);
      if (!bytes.ok()) {
        (*results)[i].probabilities = bytes.status();
        continue;
      }
      cluster::LoadShardRequest load;
      load.set_model_id(query.model_id);
      load.set_config(query.config_text);
      load.set_environment(query.environment);
      load.set_shard(query.shards[i].shard);
      load.set_checkpoint_sha256(query.shards[i].checkpoint_sha256);
      load.set_checkpoint(*std::move(bytes));
      grpc::ClientContext load_context;
      pool_->PrepareCall(&load_context, deadline);
      cluster::LoadShardResponse loaded;
      grpc::Status status =
          worker.stub->LoadShard(&load_context, load, &loaded);
      if (!status.ok()) {
        absl::Status why = FromGrpcStatus(status);
        (*results)[i].probabilities = absl::Status(
            why.code(), absl::StrCat("loading onto worker ", worker.name, ": ",
                                     why.message()));
        // The worker's own trouble, not this checkpoint's: the rest of its
        // shards would fail the same way, now and on the next requests.
        if (absl::IsFailedPrecondition(why) || absl::IsResourceExhausted(why)) {
          pool_->CannotServe(server, query.model_id, why);
          return;
        }
        continue;
      }
      loaded_any = true;
      // Stays only if the next round still finds the slot empty: another
      // request replaced it in between (one naming another checkpoint).
      (*results)[i].probabilities = absl::UnavailableError(absl::StrCat(
          "worker ", worker.name, " dropped shard ", query.shards[i].shard,
          "'s checkpoint before answering: a concurrent request named "
          "another one"));
    }
    if (!loaded_any) return;
  }
}

}  // namespace oubli::coordinator
