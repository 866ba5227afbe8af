#include "worker/worker_service.h"

#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/cluster_protocol.h"
#include "common/file_util.h"
#include "common/grpc_security.h"
#include "common/grpc_server.h"
#include "common/grpc_status.h"
#include "common/status_macros.h"
#include "common/thread_priority.h"
#include "worker/ml/determinism.h"

namespace oubli::worker {
namespace {

constexpr char kServiceName[] = "oubli.cluster.Worker";
// Pieces of a slice upload are at most 1 MiB of data.
constexpr size_t kMaxSlicePieceBytes = size_t{1} << 20;

grpc::Status NoChunks() {
  return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                      "this worker holds no chunks (started without "
                      "--data_dir)");
}

}  // namespace

grpc::Status WorkerService::TrainPosition(
    grpc::ServerContext* context, const cluster::TrainPositionRequest* request,
    cluster::TrainPositionResponse* response) {
  if (grpc::Status s = CheckClusterPeer(*context, coordinator_); !s.ok())
    return s;
  PositionRequest position;
  position.config_text = request->config();
  position.environment = request->environment();
  position.shard = request->shard();
  position.prefix.assign(request->prefix().begin(), request->prefix().end());
  position.parent = request->parent();
  position.model_id = request->model_id();
  // Held for the whole call: an eviction meanwhile does not pull a slice
  // from under the training.
  int64_t hits = 0, from_disk = 0, corrupt = 0;
  for (const std::string& digest : request->slice_digests()) {
    SliceSource source;
    std::shared_ptr<const storage::EncodedSlice> slice =
        slices_->Find(request->model_id(), digest, &source);
    from_disk += source == SliceSource::kDisk ? 1 : 0;
    corrupt += source == SliceSource::kCorruptFile ? 1 : 0;
    if (slice == nullptr) {
      response->add_missing_slices(digest);
    } else {
      ++hits;
      position.slices.push_back(std::move(slice));
    }
  }
  if (metrics_ != nullptr) {
    metrics_->SlicesLooked(hits, response->missing_slices_size());
    if (from_disk + corrupt > 0) {
      metrics_->SliceFilesRead(from_disk, corrupt);
      ReportSliceCache();
    }
  }
  if (response->missing_slices_size() > 0) return grpc::Status::OK;
  const absl::Time start = absl::Now();
  // On a thread of its own at a lower priority: gRPC's threads also answer
  // predictions, and a thread's priority once lowered cannot be raised
  // again.
  absl::StatusOr<PositionResult> result =
      absl::InternalError("training thread did not run");
  try {
    std::thread training([&] {
      StartBackgroundThread("oubli-train", background_priority_);
      result = worker_.Train(position,
                             [context] { return context->IsCancelled(); });
    });
    training.join();
  } catch (const std::system_error& error) {
    // No thread to be had (the process's thread limit): the coordinator
    // retries elsewhere or later.
    return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                        absl::StrCat("no training thread: ", error.what()));
  }
  if (metrics_ != nullptr) {
    metrics_->PositionDone(absl::StatusCodeToString(result.status().code()),
                           result.ok() ? result->samples : 0,
                           result.ok() ? result->steps : 0,
                           absl::Now() - start);
  }
  if (!result.ok()) return ToGrpcStatus(result.status());
  response->set_checkpoint(std::move(result->checkpoint));
  response->set_samples(result->samples);
  response->set_steps(result->steps);
  return grpc::Status::OK;
}

grpc::Status WorkerService::PutSlice(
    grpc::ServerContext* context,
    grpc::ServerReader<cluster::SlicePiece>* reader,
    cluster::PutSliceResponse* /*response*/) {
  if (grpc::Status s = CheckClusterPeer(*context, coordinator_); !s.ok())
    return s;
  cluster::SlicePiece header;
  if (!reader->Read(&header)) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "no slice sent");
  }
  const int64_t total = header.total_bytes();
  if (header.model_id().empty() || header.digest().size() != 64 ||
      total < 0) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "slice header needs a model id, a 64-digit digest "
                        "and a size");
  }
  if (total > slices_->capacity()) {
    return grpc::Status(
        grpc::StatusCode::RESOURCE_EXHAUSTED,
        absl::StrCat("slice of ", total, " bytes exceeds the whole slice "
                     "cache (--slice_cache_bytes ", slices_->capacity(), ")"));
  }
  const std::string model_id = header.model_id();
  const std::string digest = header.digest();
  const int64_t epoch = header.epoch();
  // Refused before receiving anything it would throw away.
  if (slices_->IsStale(model_id, digest, epoch)) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        "slice upload older than the last purge or "
                        "registration here");
  }
  // Grown as pieces arrive: an announced size reserves nothing.
  std::string bytes;
  cluster::SlicePiece piece = std::move(header);
  try {
    do {
      if (piece.data().size() > kMaxSlicePieceBytes) {
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                            absl::StrCat("slice piece of ", piece.data().size(),
                                         " bytes exceeds ",
                                         kMaxSlicePieceBytes));
      }
      bytes.append(piece.data());
    } while (static_cast<int64_t>(bytes.size()) <= total &&
             reader->Read(&piece));
  } catch (const std::exception& e) {
    return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                        absl::StrCat("receiving a slice: ", e.what()));
  }
  if (static_cast<int64_t>(bytes.size()) != total) {
    return grpc::Status(
        grpc::StatusCode::INVALID_ARGUMENT,
        absl::StrCat("slice announced ", total, " bytes, sent ", bytes.size()));
  }
  absl::StatusOr<std::shared_ptr<const storage::EncodedSlice>> slice =
      storage::EncodedSlice::FromBytes(std::move(bytes), digest);
  if (!slice.ok()) return ToGrpcStatus(slice.status());
  const absl::Status kept = slices_->Insert(model_id, *std::move(slice), epoch);
  if (kept.ok()) slice_bytes_received_ += total;
  if (metrics_ != nullptr && kept.ok()) metrics_->SliceReceived(total);
  ReportSliceCache();
  return ToGrpcStatus(kept);
}

grpc::Status WorkerService::DropSlices(
    grpc::ServerContext* context, const cluster::DropSlicesRequest* request,
    cluster::DropSlicesResponse* response) {
  if (grpc::Status s = CheckClusterPeer(*context, coordinator_); !s.ok())
    return s;
  absl::flat_hash_set<std::string> keep(request->keep().begin(),
                                        request->keep().end());
  absl::StatusOr<int> dropped =
      slices_->DropModelExcept(request->model_id(), keep, request->epoch());
  ReportSliceCache();
  // Not confirmed while a file is left: the coordinator must not count
  // this purge done.
  if (!dropped.ok()) return ToGrpcStatus(dropped.status());
  response->set_dropped(*dropped);
  return grpc::Status::OK;
}

grpc::Status WorkerService::PutChunk(grpc::ServerContext* context,
                                     const cluster::PutChunkRequest* request,
                                     cluster::PutChunkResponse* /*response*/) {
  if (grpc::Status s = CheckClusterPeer(*context, coordinator_); !s.ok())
    return s;
  if (chunks_ == nullptr) return NoChunks();
  absl::Status stored =
      chunks_->Put(request->checkpoint_key(), request->index(), request->data(),
                   request->crc32c());
  if (stored.ok() && metrics_ != nullptr) {
    metrics_->ChunkStored(static_cast<int64_t>(request->data().size()));
  }
  return ToGrpcStatus(stored);
}

grpc::Status WorkerService::GetChunk(
    grpc::ServerContext* context, const cluster::GetChunkRequest* request,
    grpc::ServerWriter<cluster::ChunkPiece>* writer) {
  if (grpc::Status s = CheckClusterPeer(*context, coordinator_); !s.ok())
    return s;
  if (chunks_ == nullptr) return NoChunks();
  absl::StatusOr<std::string> data =
      chunks_->Get(request->checkpoint_key(), request->index());
  if (!data.ok()) return ToGrpcStatus(data.status());
  constexpr size_t kPiece = size_t{1} << 20;
  cluster::ChunkPiece piece;
  for (size_t at = 0; at < data->size(); at += kPiece) {
    piece.set_data(data->substr(at, kPiece));
    if (!writer->Write(piece)) {
      return grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
    }
  }
  return grpc::Status::OK;
}

grpc::Status WorkerService::DeleteChunks(
    grpc::ServerContext* context, const cluster::DeleteChunksRequest* request,
    cluster::DeleteChunksResponse* response) {
  if (grpc::Status s = CheckClusterPeer(*context, coordinator_); !s.ok())
    return s;
  if (chunks_ == nullptr) return NoChunks();
  int deleted = 0;
  for (const std::string& key : request->checkpoint_keys()) {
    absl::StatusOr<int> n = chunks_->DestroyAll(key);
    if (!n.ok()) return ToGrpcStatus(n.status());
    deleted += *n;
  }
  if (metrics_ != nullptr) metrics_->ChunksDestroyed(deleted);
  response->set_chunks_deleted(deleted);
  return grpc::Status::OK;
}

grpc::Status WorkerService::ListChunks(grpc::ServerContext* context,
                                       const cluster::ListChunksRequest*,
                                       cluster::ListChunksResponse* response) {
  if (grpc::Status s = CheckClusterPeer(*context, coordinator_); !s.ok())
    return s;
  if (chunks_ == nullptr) return NoChunks();
  absl::StatusOr<std::vector<std::string>> keys = chunks_->ListCheckpoints();
  if (!keys.ok()) return ToGrpcStatus(keys.status());
  for (std::string& key : *keys) response->add_checkpoint_keys(std::move(key));
  return grpc::Status::OK;
}

absl::Status WorkerService::DropCopies() {
  shards_.DropAll();
  const absl::Status dropped = slices_->DropAllAndClose();
  if (metrics_ != nullptr) {
    metrics_->SetServingCheckpoints(shards_.loaded());
  }
  ReportSliceCache();
  return dropped;
}

absl::Status WorkerService::RaiseSliceEpoch(int64_t epoch) {
  const absl::Status dropped = slices_->Reopen(epoch);
  ReportSliceCache();
  return dropped;
}

void WorkerService::ReportSliceCache() {
  if (metrics_ == nullptr) return;
  metrics_->SetSliceCache(slices_->slices(), slices_->bytes(),
                          slices_->disk_slices(), slices_->disk_bytes());
}

grpc::Status WorkerService::PredictShards(
    grpc::ServerContext* context, const cluster::PredictShardsRequest* request,
    cluster::PredictShardsResponse* response) {
  if (grpc::Status s = CheckClusterPeer(*context, coordinator_); !s.ok())
    return s;
  const std::string& features = request->features();
  if (features.size() % sizeof(float) != 0) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "features must be whole float32 values");
  }
  // Copied into floats: the bytes of a protobuf string need not be aligned.
  std::vector<float> inputs(features.size() / sizeof(float));
  if (!features.empty()) {
    std::memcpy(inputs.data(), features.data(), features.size());
  }
  std::vector<ShardCheckpointRef> refs;
  refs.reserve(request->shards_size());
  for (const cluster::ShardCheckpoint& shard : request->shards()) {
    refs.push_back({shard.shard(), shard.checkpoint_sha256()});
  }
  absl::StatusOr<ShardPredictions> predictions =
      shards_.Predict(request->model_id(), request->config(),
                      request->environment(), refs, inputs, request->rows());
  if (metrics_ != nullptr) {
    metrics_->ShardsPredicted(
        absl::StatusCodeToString(predictions.status().code()),
        predictions.ok() && request->rows() > 0
            ? static_cast<int64_t>(refs.size())
            : 0,
        shards_.loaded());
  }
  if (!predictions.ok()) return ToGrpcStatus(predictions.status());
  response->set_classes(predictions->classes);
  for (const ShardAnswer& answer : predictions->shards) {
    cluster::ShardProbabilities* out = response->add_shards();
    out->set_shard(answer.shard);
    out->set_loaded(answer.loaded);
    out->set_probabilities(answer.probabilities.data(),
                           answer.probabilities.size() * sizeof(float));
  }
  return grpc::Status::OK;
}

grpc::Status WorkerService::LoadShard(
    grpc::ServerContext* context, const cluster::LoadShardRequest* request,
    cluster::LoadShardResponse* /*response*/) {
  if (grpc::Status s = CheckClusterPeer(*context, coordinator_); !s.ok())
    return s;
  absl::Status loaded = shards_.Load(
      request->model_id(), request->config(), request->environment(),
      request->shard(), request->checkpoint_sha256(), request->checkpoint());
  if (loaded.ok() && metrics_ != nullptr) {
    metrics_->ShardLoaded(static_cast<int64_t>(request->checkpoint().size()),
                          shards_.loaded());
  }
  return ToGrpcStatus(loaded);
}

absl::StatusOr<std::unique_ptr<WorkerServer>> WorkerServer::Start(
    const Options& options) {
  if (options.coordinator_address.empty()) {
    return absl::InvalidArgumentError("coordinator address is required");
  }
  OUBLI_RETURN_IF_ERROR(
      CheckNiceIncrement("background_nice",
                         options.background_priority.nice_increment));
  absl::StatusOr<std::string> host =
      CheckServerAddress(options.listen_address, options.max_message_bytes);
  if (!host.ok()) return host.status();
  std::unique_ptr<WorkerServer> server(new WorkerServer());
  server->options_ = options;
  std::unique_ptr<storage::ChunkStore> chunks;
  if (!options.data_dir.empty()) {
    // Manifests name chunk holders by worker name: the dir is bound to the
    // name it was first used with, so a rename or a wrong mount cannot
    // answer for chunks it does not hold.
    if (options.name.empty()) {
      return absl::InvalidArgumentError(
          "a worker with a data dir needs a stable name (--name)");
    }
    std::error_code error;
    std::filesystem::create_directories(options.data_dir, error);
    const std::string name_file = options.data_dir + "/WORKER_NAME";
    absl::StatusOr<std::string> bound = ReadFile(name_file);
    if (bound.ok()) {
      if (*bound != options.name) {
        return absl::FailedPreconditionError(absl::StrCat(
            "data dir '", options.data_dir, "' belongs to worker '", *bound,
            "', not '", options.name, "'"));
      }
    } else if (absl::IsNotFound(bound.status())) {
      if (absl::Status s = WriteFileAtomically(name_file, options.name);
          !s.ok()) {
        return s;
      }
    } else {
      return bound.status();
    }
    absl::StatusOr<std::unique_ptr<storage::ChunkStore>> opened =
        storage::ChunkStore::Open(options.data_dir + "/chunks");
    if (!opened.ok()) return opened.status();
    chunks = *std::move(opened);
  }
  // Before registering: a previous run's slice files are shredded here.
  absl::StatusOr<std::unique_ptr<SliceCache>> slices = SliceCache::Open(
      options.slice_cache_bytes,
      options.data_dir.empty() ? "" : options.data_dir + "/slices",
      options.data_dir.empty() ? 0 : options.slice_disk_cache_bytes);
  if (!slices.ok()) return slices.status();
  if (!options.metrics_listen_address.empty()) {
    server->metrics_ = std::make_unique<WorkerMetrics>();
    absl::StatusOr<std::unique_ptr<MetricsServer>> metrics_server =
        MetricsServer::Start(
            options.metrics_listen_address,
            [metrics = server->metrics_.get()] { return metrics->Serialize(); },
            options.metrics_tls);
    if (!metrics_server.ok()) return metrics_server.status();
    server->metrics_server_ = *std::move(metrics_server);
  }
  ClusterPeer coordinator;
  coordinator.token = options.cluster_token;
  if (options.tls_listen.enabled()) {
    coordinator.certificate_name = options.coordinator_certificate_name;
  }
  server->service_ = std::make_unique<WorkerService>(
      std::move(chunks), std::move(coordinator), server->metrics_.get(),
      *std::move(slices), options.background_priority);
  absl::StatusOr<StartedGrpcServer> started = StartGrpcServer(
      options.listen_address,
      ServerCredentialsFor(options.tls_listen, ClientCertificates::kRequired),
      options.max_message_bytes, kServiceName,
      [&](grpc::ServerBuilder& builder) {
        builder.RegisterService(server->service_.get());
      });
  if (!started.ok()) return started.status();
  server->server_ = std::move(started->server);
  server->address_ = absl::StrCat(*host, ":", started->port);
  server->advertise_ = options.advertise_address;
  if (server->advertise_.empty()) {
    if (host->empty() || *host == "0.0.0.0" || *host == "[::]") {
      return absl::InvalidArgumentError(absl::StrCat(
          "listening on wildcard '", options.listen_address,
          "': give the address the coordinator should dial (advertise)"));
    }
    server->advertise_ = server->address_;
  }

  grpc::ChannelArguments args;
  // A restarted coordinator must be found again within a heartbeat or two,
  // not after gRPC's default reconnect backoff (up to two minutes).
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  TlsDialFiles dial = options.tls_dial;
  if (dial.server_name.empty()) {
    dial.server_name = options.coordinator_certificate_name;
  }
  std::shared_ptr<grpc::ChannelCredentials> credentials =
      ChannelCredentialsFor(dial, &args);
  server->membership_ = cluster::Membership::NewStub(grpc::CreateCustomChannel(
      options.coordinator_address, credentials, args));
  server->membership_thread_ =
      std::thread([s = server.get()] { s->MembershipLoop(); });
  return server;
}

void WorkerServer::MembershipLoop() {
  const std::string environment = ml::NumericEnvironment();
  std::string worker_id;
  absl::Duration interval = absl::Seconds(1);
  // Serving copies live no longer than the coordinator would count this
  // worker alive without heartbeats: it purges as if a dead worker held
  // none.
  absl::Duration lease = absl::Seconds(5);
  absl::Time last_heartbeat = absl::Now();
  absl::Duration backoff = absl::Milliseconds(100);
  grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService();
  auto set_registered = [&](bool registered) {
    if (metrics_ != nullptr) metrics_->SetRegistered(registered);
    {
      absl::MutexLock lock(&mu_);
      registered_ = registered;
    }
    health->SetServingStatus(registered);
    health->SetServingStatus(kServiceName, registered);
  };
  while (true) {
    absl::Duration wait;
    grpc::ClientContext context;
    context.set_deadline(
        absl::ToChronoTime(absl::Now() + options_.rpc_timeout));
    if (!options_.cluster_token.empty()) {
      context.AddMetadata(kClusterTokenMetadata, options_.cluster_token);
    }
    // A new registration: the coordinator may have purged data while it
    // counted this worker dead, so no serving copy or cached slice (nor its
    // file) survives it. Dropped before asking, so nothing loaded after the
    // answer is lost.
    absl::Status dropped;
    if (worker_id.empty() && !(dropped = service_->DropCopies()).ok()) {
      // Registering would tell the coordinator that nothing from before is
      // left here: not while a slice file could not be shredded.
      std::fprintf(stderr,
                   "oubli-worker: not registering while a cached slice "
                   "file is left: %s\n",
                   dropped.ToString().c_str());
      wait = backoff;
      backoff = std::min(backoff * 2, absl::Seconds(5));
    } else if (worker_id.empty()) {
      cluster::RegisterRequest request;
      request.set_address(advertise_);
      request.set_environment(environment);
      request.set_name(options_.name);
      request.set_holds_chunks(service_->holds_chunks());
      request.set_protocol_version(kClusterProtocolVersion);
      cluster::RegisterResponse response;
      const grpc::Status status =
          membership_->Register(&context, request, &response);
      if (status.ok()) {
        // Uploads begun while the coordinator counted this worker dead
        // may hold data purged meanwhile. (Closed since the drop above, the
        // cache took none, so this drops no file: a failure is one retried
        // by the next drop, which reports it.)
        if (absl::Status s = service_->RaiseSliceEpoch(response.slice_epoch());
            !s.ok()) {
          std::fprintf(stderr, "oubli-worker: %s\n", s.ToString().c_str());
        }
        worker_id = response.worker_id();
        interval =
            std::max(absl::Milliseconds(10),
                     absl::Milliseconds(response.heartbeat_interval_ms()));
        if (response.worker_timeout_ms() > 0) {
          lease = absl::Milliseconds(response.worker_timeout_ms());
        }
        last_heartbeat = absl::Now();
        backoff = absl::Milliseconds(100);
        // Registered either way (chunks are environment-free), but say why
        // no work will come.
        // Empty: a coordinator of an older release, which does not say.
        const bool matches = response.coordinator_environment().empty() ||
                             response.coordinator_environment() == environment;
        if (metrics_ != nullptr) metrics_->SetEnvironmentMatches(matches);
        if (!matches) {
          std::fprintf(stderr,
                       "oubli-worker: the coordinator computes in another "
                       "numeric environment, so this worker gets no training "
                       "or Predict (same release, BLAS and --device needed):"
                       "\n  worker      %s\n  coordinator %s\n",
                       environment.c_str(),
                       response.coordinator_environment().c_str());
        }
        if (options_.on_registered) options_.on_registered(worker_id);
        set_registered(true);
        wait = interval;
      } else {
        std::fprintf(stderr, "oubli-worker: register with %s: %s\n",
                     options_.coordinator_address.c_str(),
                     status.error_message().c_str());
        wait = backoff;
        backoff = std::min(backoff * 2, absl::Seconds(5));
      }
    } else {
      cluster::HeartbeatRequest request;
      request.set_worker_id(worker_id);
      cluster::HeartbeatResponse response;
      const grpc::Status status =
          membership_->Heartbeat(&context, request, &response);
      if (status.ok() && !response.known()) {
        std::fprintf(stderr,
                     "oubli-worker: coordinator forgot %s; registering again\n",
                     worker_id.c_str());
        worker_id.clear();
        set_registered(false);
        wait = absl::ZeroDuration();
      } else {
        // A failed heartbeat is retried; the coordinator decides death,
        // and past its timeout this worker acts as dead for serving.
        if (status.ok()) {
          last_heartbeat = absl::Now();
        } else if (absl::Now() - last_heartbeat > lease) {
          // A file left is retried before registering again.
          if (absl::Status s = service_->DropCopies(); !s.ok()) {
            std::fprintf(stderr, "oubli-worker: %s\n", s.ToString().c_str());
          }
        }
        wait = interval;
      }
    }
    absl::MutexLock lock(&mu_);
    auto stopping = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return stopping_;
    };
    if (mu_.AwaitWithTimeout(absl::Condition(&stopping), wait)) return;
  }
}

bool WorkerServer::WaitRegistered(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto registered = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return registered_;
  };
  return mu_.AwaitWithTimeout(absl::Condition(&registered), timeout);
}

WorkerServer::~WorkerServer() { Shutdown(absl::Seconds(5)); }

void WorkerServer::Shutdown(absl::Duration grace) {
  if (shut_down_) return;
  shut_down_ = true;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (membership_thread_.joinable()) membership_thread_.join();
  if (server_ != nullptr) {
    server_->Shutdown(absl::ToChronoTime(absl::Now() + grace));
  }
}

}  // namespace oubli::worker
