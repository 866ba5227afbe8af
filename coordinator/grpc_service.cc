#include "coordinator/grpc_service.h"

#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/support/server_interceptor.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstring>
#include <filesystem>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "common/cluster_protocol.h"
#include "common/grpc_security.h"
#include "common/grpc_server.h"
#include "common/grpc_status.h"
#include "common/status_macros.h"
#include "common/thread_priority.h"
#include "common/types.h"
#include "coordinator/access_policy.h"
#include "coordinator/api_guard.h"
#include "coordinator/audit_log.h"
#include "coordinator/request_validation.h"
#include "coordinator/worker_chunks.h"
#include "coordinator/worker_serving.h"
#include "coordinator/worker_training.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/timestamp.pb.h"
#include "worker/ml/determinism.h"

namespace oubli::coordinator {
namespace {

namespace v1 = ::oubli::v1;

constexpr char kServiceName[] = "oubli.v1.Oubli";

grpc::Status InvalidArgument(absl::string_view message) {
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                      SanitizeUtf8(message));
}

void SetTimestamp(absl::Time time, google::protobuf::Timestamp* out) {
  const int64_t nanos = absl::ToUnixNanos(time);
  int64_t seconds = nanos / 1000000000;
  int64_t rest = nanos % 1000000000;
  if (rest < 0) {  // Timestamp nanos must be non-negative
    rest += 1000000000;
    --seconds;
  }
  out->set_seconds(seconds);
  out->set_nanos(static_cast<int32_t>(rest));
}

v1::DeletionStage StageToProto(DeletionStage stage) {
  switch (stage) {
    case DeletionStage::kAccepted:
      return v1::ACCEPTED;
    case DeletionStage::kForgotten:
      return v1::FORGOTTEN;
    case DeletionStage::kPurged:
      return v1::PURGED;
    case DeletionStage::kRestored:
      return v1::RESTORED;
  }
  return v1::DELETION_STAGE_UNSPECIFIED;
}

void ReceiptToProto(const DeletionReceipt& in, absl::string_view model_id,
                    v1::DeletionReceipt* out) {
  out->set_deletion_id(SanitizeUtf8(in.deletion_id));
  out->set_model_id(SanitizeUtf8(model_id));
  out->set_owner(SanitizeUtf8(in.owner));
  out->set_stage(StageToProto(in.stage));
  out->set_resolved_count(static_cast<int32_t>(in.resolved_ids.size()));
  const std::pair<absl::Time,
                  google::protobuf::Timestamp* (v1::DeletionReceipt::*)()>
      times[] = {{in.accepted_at, &v1::DeletionReceipt::mutable_accepted_at},
                 {in.forgotten_at, &v1::DeletionReceipt::mutable_forgotten_at},
                 {in.purged_at, &v1::DeletionReceipt::mutable_purged_at},
                 {in.restored_at, &v1::DeletionReceipt::mutable_restored_at}};
  for (const auto& [time, field] : times) {
    if (time != absl::InfinitePast()) SetTimestamp(time, (out->*field)());
  }
  for (const std::string& id : in.resolved_ids) {
    out->add_resolved_ids(SanitizeUtf8(id));
  }
  for (const std::string& id : in.unknown_ids) {
    out->add_unknown_ids(SanitizeUtf8(id));
  }
  for (const auto& [id, by] : in.already_deleted) {
    v1::AlreadyDeleted* already = out->add_already_deleted();
    already->set_sample_id(SanitizeUtf8(id));
    already->set_deletion_id(SanitizeUtf8(by));
  }
  for (int shard : in.affected_shards) out->add_affected_shards(shard);
  for (const AffectedPrefix& a : in.affected) {
    v1::AffectedPrefix* prefix = out->add_affected();
    prefix->set_shard(a.shard);
    prefix->set_slice(a.slice);
    prefix->set_sequence(a.sequence);
    prefix->set_valid_length_before(a.valid_length_before);
    prefix->set_valid_length_after(a.valid_length_after);
  }
  out->set_fingerprint_before(in.fingerprint_before);
  out->set_fingerprint_forgotten(in.fingerprint_forgotten);
  out->set_fingerprint_restored(in.fingerprint_restored);
  out->set_note(SanitizeUtf8(in.note));
}

// `receipt` as it stood when its deletion reached `stage` (no later than
// its current one): the later stages' times and fingerprints unset.
DeletionReceipt ReceiptAsOf(DeletionReceipt receipt, DeletionStage stage) {
  if (stage >= receipt.stage) return receipt;
  receipt.stage = stage;
  receipt.note.clear();  // written at a later stage
  receipt.restored_at = absl::InfinitePast();
  receipt.fingerprint_restored.clear();
  if (stage < DeletionStage::kPurged) receipt.purged_at = absl::InfinitePast();
  if (stage < DeletionStage::kForgotten) {
    receipt.forgotten_at = absl::InfinitePast();
    receipt.fingerprint_forgotten.clear();
  }
  return receipt;
}

void ServedToProto(const ServedShard& in, v1::ServedShard* out) {
  out->set_shard(in.shard);
  out->set_served(in.served);
  out->set_sequence(in.sequence);
  for (int slice : in.prefix) out->add_prefix(slice);
  out->set_checkpoint_key(in.key);
  out->set_samples(in.samples);
  out->set_served_by(SanitizeUtf8(in.worker));
}

// What every answer of a model names: its fingerprint, whether the public
// base model answered, and what each shard served (Predict, Score and
// Generate responses share the field names).
template <typename Response>
void AnsweredByToProto(const std::string& fingerprint, bool from_base,
                       const std::vector<ServedShard>& served, Response* out) {
  out->set_fingerprint(fingerprint);
  out->set_from_base(from_base);
  for (const ServedShard& shard : served) {
    ServedToProto(shard, out->add_served());
  }
}

v1::GenerateResponse::FinishReason FinishReasonToProto(FinishReason reason) {
  switch (reason) {
    case FinishReason::kMaxTokens:
      return v1::GenerateResponse::FINISH_REASON_MAX_TOKENS;
    case FinishReason::kStopToken:
      return v1::GenerateResponse::FINISH_REASON_STOP_TOKEN;
    case FinishReason::kContext:
      return v1::GenerateResponse::FINISH_REASON_CONTEXT;
  }
  return v1::GenerateResponse::FINISH_REASON_UNSPECIFIED;
}

void ModelStatusToProto(absl::string_view model_id, const ModelStatus& in,
                        v1::Model* out) {
  out->set_model_id(std::string(model_id));
  *out->mutable_config() = ConfigToProto(in.config);
  out->set_config_fingerprint(ConfigFingerprint(in.config));
  out->set_training_requested(in.training_requested);
  out->set_active_samples(in.active_samples);
  out->set_fingerprint(in.fingerprint);
  for (const ShardStatus& shard : in.shards) {
    v1::ShardStatus* proto_shard = out->add_shards();
    ServedToProto(shard.served, proto_shard->mutable_served());
    for (const SequenceStatus& sequence : shard.sequences) {
      v1::SequenceStatus* proto_sequence = proto_shard->add_sequences();
      for (int slice : sequence.order) proto_sequence->add_order(slice);
      proto_sequence->set_valid_length(sequence.valid_length);
    }
    for (int64_t n : shard.slice_samples) proto_shard->add_slice_samples(n);
  }
  out->set_slice_imbalance(in.slice_imbalance);
  out->set_missing_prefixes(in.missing_prefixes);
  out->set_pending_deletions(in.pending_deletions);
  out->set_threads(SanitizeUtf8(in.threads));
}

void WorkersToProto(const std::vector<WorkerPool::WorkerInfo>& workers,
                    v1::Model* out) {
  bool any_alive = false;
  const std::string environment = ml::NumericEnvironment();
  for (const WorkerPool::WorkerInfo& in : workers) {
    v1::WorkerStatus* worker = out->add_workers();
    worker->set_worker_id(in.id);
    worker->set_name(SanitizeUtf8(in.name));
    worker->set_address(SanitizeUtf8(in.address));
    worker->set_alive(in.alive);
    worker->set_busy(in.busy);
    worker->set_positions_trained(in.positions_trained);
    worker->set_environment(SanitizeUtf8(in.environment));
    worker->set_environment_matches(in.environment == environment);
    any_alive |= in.alive && in.environment == environment;
  }
  out->set_worker_placement(any_alive ? "workers" : "local");
}

void RetiredToProto(const WorkerPool::RetiredHolder& in,
                    v1::RetiredWorker* out) {
  out->set_name(SanitizeUtf8(in.name));
  SetTimestamp(in.retired_at, out->mutable_retired_at());
}

void JobToProto(const JobInfo& in, v1::Job* out) {
  out->set_job_id(in.job_id);
  out->set_model_id(in.model_id);
  switch (in.state) {
    case JobState::kPending:
      out->set_state(v1::Job::PENDING);
      break;
    case JobState::kRunning:
      out->set_state(v1::Job::RUNNING);
      break;
    case JobState::kSucceeded:
      out->set_state(v1::Job::SUCCEEDED);
      break;
    case JobState::kFailed:
      out->set_state(v1::Job::FAILED);
      break;
  }
  out->set_trained_prefixes(in.trained_prefixes);
  out->set_total_prefixes(in.total_prefixes);
  out->set_progress(in.progress());
  out->set_error(SanitizeUtf8(in.error));
  if (in.created_at != absl::InfinitePast()) {
    SetTimestamp(in.created_at, out->mutable_created_at());
  }
  if (in.started_at != absl::InfinitePast()) {
    SetTimestamp(in.started_at, out->mutable_started_at());
  }
  if (in.finished_at != absl::InfinitePast()) {
    SetTimestamp(in.finished_at, out->mutable_finished_at());
  }
}

// Records method, final status code and latency of each oubli.v1.Oubli RPC.
// An interceptor rather than code in every handler: it sees the status the
// handler's early returns produce, and streaming RPCs as a whole.
class RpcMetricsInterceptor final : public grpc::experimental::Interceptor {
 public:
  RpcMetricsInterceptor(RpcMetrics* metrics, absl::string_view method)
      : metrics_(metrics), method_(method), start_(absl::Now()) {}

  void Intercept(
      grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS)) {
      // absl::StatusCode and grpc::StatusCode share their numbering.
      const int code = methods->GetSendStatus().error_code();
      std::string name =
          absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
      if (name.empty()) name = "UNKNOWN";
      metrics_->RpcHandled(method_, name, absl::Now() - start_);
    }
    methods->Proceed();
  }

 private:
  RpcMetrics* const metrics_;
  const std::string method_;
  const absl::Time start_;
};

class RpcMetricsInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit RpcMetricsInterceptorFactory(std::shared_ptr<RpcMetrics> metrics)
      : metrics_(std::move(metrics)),
        prefix_(absl::StrCat("/", kServiceName, "/")) {
    // Only the service's own methods become label values: a client calling
    // made-up method names must not create series.
    const google::protobuf::ServiceDescriptor* service =
        google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(
            kServiceName);
    for (int i = 0; service != nullptr && i < service->method_count(); ++i) {
      methods_.insert(service->method(i)->name());
    }
  }

  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    absl::string_view method = info->method() ? info->method() : "";
    if (!absl::ConsumePrefix(&method, prefix_) || !methods_.contains(method)) {
      return nullptr;  // health, reflection, unknown methods
    }
    return new RpcMetricsInterceptor(metrics_.get(), method);
  }

 private:
  const std::shared_ptr<RpcMetrics> metrics_;
  const std::string prefix_;  // "/oubli.v1.Oubli/"
  absl::flat_hash_set<std::string> methods_;
};

}  // namespace


// ----------------------------------------------------------- OubliService

absl::StatusOr<ModelRegistry*> OubliService::registry() const {
  ModelRegistry* registry = registry_.load();
  if (registry == nullptr) {
    return absl::UnavailableError(
        "the server is still opening its models; retry shortly");
  }
  return registry;
}

#define OUBLI_GRPC_ASSIGN_OR_RETURN(lhs, expr) \
  OUBLI_GRPC_ASSIGN_OR_RETURN_IMPL_(           \
      OUBLI_STATUS_CONCAT_(oubli_grpc_or_, __LINE__), lhs, expr)
#define OUBLI_GRPC_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                      \
  if (!tmp.ok()) return ToGrpcStatus(tmp.status());       \
  lhs = std::move(tmp).value()
// `expr`: an absl::Status (request_validation.h).
#define OUBLI_GRPC_RETURN_IF_ERROR(expr)                        \
  do {                                                          \
    const grpc::Status oubli_grpc_status_ = ToGrpcStatus(expr); \
    if (!oubli_grpc_status_.ok()) return oubli_grpc_status_;    \
  } while (0)

grpc::Status OubliService::CreateModel(grpc::ServerContext* context,
                                       const v1::CreateModelRequest* request,
                                       v1::Model* response) {
  OUBLI_GRPC_ASSIGN_OR_RETURN(ModelRegistry * registry, registry());
  OUBLI_GRPC_RETURN_IF_ERROR(CheckModelId(request->model_id()));
  OUBLI_GRPC_ASSIGN_OR_RETURN(ModelConfig config,
                              ConfigFromProto(request->config()));
  config.model_id = request->model_id();
  if (!request->config().has_placement()) {
    // Unset means the server default for a new model; repeating the
    // creation of an existing one (made before placement existed, say)
    // keeps its placement, so the repeat stays idempotent.
    if (absl::StatusOr<ModelConfig> existing =
            registry->GetConfig(config.model_id);
        existing.ok()) {
      config.placement = existing->placement;
    }
  }
  OUBLI_GRPC_ASSIGN_OR_RETURN(ModelConfig created,
                              registry->CreateModel(config));
  OUBLI_GRPC_ASSIGN_OR_RETURN(ModelStatus status,
                              registry->GetModelStatus(created.model_id));
  ModelStatusToProto(created.model_id, status, response);
  WorkersToProto(WorkerList(), response);
  if (workers_ != nullptr) {
    for (const WorkerPool::RetiredHolder& r : workers_->RetiredHolders()) {
      RetiredToProto(r, response->add_retired_workers());
    }
  }
  return grpc::Status::OK;
}

grpc::Status OubliService::IngestSamples(
    grpc::ServerContext* context,
    grpc::ServerReader<v1::IngestSamplesRequest>* reader,
    v1::IngestSamplesResponse* response) {
  OUBLI_GRPC_ASSIGN_OR_RETURN(ModelRegistry * registry, registry());
  v1::IngestSamplesRequest request;
  std::string model_id;
  int64_t messages = 0;
  int64_t samples_in_stream = 0;
  // Each message is ingested as it arrives, so memory stays bounded by one
  // message; an error ends the stream, keeping what earlier messages stored
  // (ingest is idempotent, so the client can simply resend).
  while (reader->Read(&request)) {
    ++messages;
    if (messages == 1) {
      OUBLI_GRPC_RETURN_IF_ERROR(CheckModelId(request.model_id()));
      model_id = request.model_id();
      if (ingest_model_check_ != nullptr) {
        if (grpc::Status s = ingest_model_check_(model_id); !s.ok()) return s;
      }
      // Fail fast for an unknown model instead of after the whole stream.
      OUBLI_GRPC_ASSIGN_OR_RETURN(ModelConfig ignored,
                                  registry->GetConfig(model_id));
      (void)ignored;
    } else if (request.model_id() != model_id) {
      return InvalidArgument(absl::StrCat(
          "model_id: message ", messages, " names '", request.model_id(),
          "' but the stream started with '", model_id, "'"));
    }
    // The stream's bound first: a message past it is refused whole.
    if (samples_in_stream + request.samples_size() >
        max_ingest_stream_samples_) {
      return grpc::Status(
          grpc::StatusCode::RESOURCE_EXHAUSTED,
          absl::StrCat("samples: the stream would carry more than ",
                       max_ingest_stream_samples_, " samples; the ",
                       samples_in_stream, " before message ", messages,
                       " are stored: send the rest on a new stream"));
    }
    samples_in_stream += request.samples_size();
    // Backpressure: room for this message's work first; meanwhile nothing
    // more is read, so gRPC's flow control holds the client.
    OUBLI_GRPC_ASSIGN_OR_RETURN(
        IngestBudget::Lease lease,
        ingest_budget_->Acquire(static_cast<int64_t>(request.ByteSizeLong()),
                                absl::FromChrono(context->deadline()),
                                [context] { return context->IsCancelled(); }));
    OUBLI_GRPC_ASSIGN_OR_RETURN(IngestBatch batch,
                                TakeIngestSamples(messages, &request));
    for (auto& [id, reason] : batch.rejected) {
      v1::Rejected* rejected = response->add_rejected();
      rejected->set_sample_id(SanitizeUtf8(id));
      rejected->set_reason(std::move(reason));
    }
    std::vector<Sample>& samples = batch.samples;
    if (samples.empty()) continue;
    OUBLI_GRPC_ASSIGN_OR_RETURN(storage::IngestResult result,
                                registry->Ingest(model_id, samples));
    response->set_accepted(response->accepted() + result.accepted);
    response->set_duplicates(response->duplicates() + result.duplicates);
    for (const auto& [id, reason] : result.rejected) {
      v1::Rejected* rejected = response->add_rejected();
      rejected->set_sample_id(SanitizeUtf8(id));
      rejected->set_reason(SanitizeUtf8(reason));
    }
  }
  if (messages == 0) {
    return InvalidArgument(
        "samples: the stream carried no IngestSamplesRequest");
  }
  return grpc::Status::OK;
}

grpc::Status OubliService::Train(grpc::ServerContext* context,
                                 const v1::TrainRequest* request,
                                 v1::Job* response) {
  OUBLI_GRPC_ASSIGN_OR_RETURN(ModelRegistry * registry, registry());
  OUBLI_GRPC_RETURN_IF_ERROR(CheckModelId(request->model_id()));
  OUBLI_GRPC_ASSIGN_OR_RETURN(JobInfo job,
                              registry->StartTraining(request->model_id()));
  JobToProto(job, response);
  return grpc::Status::OK;
}

grpc::Status OubliService::GetJob(grpc::ServerContext* context,
                                  const v1::GetJobRequest* request,
                                  v1::Job* response) {
  OUBLI_GRPC_ASSIGN_OR_RETURN(ModelRegistry * registry, registry());
  if (request->job_id().empty()) return InvalidArgument("job_id is required");
  OUBLI_GRPC_ASSIGN_OR_RETURN(JobInfo job, registry->GetJob(request->job_id()));
  JobToProto(job, response);
  return grpc::Status::OK;
}

grpc::Status OubliService::DeleteSamples(
    grpc::ServerContext* context, const v1::DeleteSamplesRequest* request,
    v1::DeletionReceipt* response) {
  OUBLI_GRPC_ASSIGN_OR_RETURN(ModelRegistry * registry, registry());
  OUBLI_GRPC_ASSIGN_OR_RETURN(const std::vector<std::string> ids,
                              DeleteSamplesIds(*request));
  OUBLI_GRPC_ASSIGN_OR_RETURN(
      DeletionReceipt receipt,
      registry->DeleteSamples(request->model_id(), ids,
                              request->idempotency_key()));
  ReceiptToProto(receipt, request->model_id(), response);
  return grpc::Status::OK;
}

grpc::Status OubliService::ForgetOwner(grpc::ServerContext* context,
                                       const v1::ForgetOwnerRequest* request,
                                       v1::DeletionReceipt* response) {
  OUBLI_GRPC_ASSIGN_OR_RETURN(ModelRegistry * registry, registry());
  OUBLI_GRPC_RETURN_IF_ERROR(CheckForgetOwner(*request));
  OUBLI_GRPC_ASSIGN_OR_RETURN(
      DeletionReceipt receipt,
      registry->ForgetOwner(request->model_id(), request->owner(),
                            request->idempotency_key()));
  ReceiptToProto(receipt, request->model_id(), response);
  return grpc::Status::OK;
}

grpc::Status OubliService::GetDeletion(grpc::ServerContext* context,
                                       const v1::GetDeletionRequest* request,
                                       v1::DeletionReceipt* response) {
  OUBLI_GRPC_ASSIGN_OR_RETURN(ModelRegistry * registry, registry());
  OUBLI_GRPC_ASSIGN_OR_RETURN(auto parts,
                              SplitDeletionId(request->deletion_id()));
  OUBLI_GRPC_ASSIGN_OR_RETURN(DeletionReceipt receipt,
                              registry->GetDeletion(request->deletion_id()));
  ReceiptToProto(receipt, parts.first, response);
  return grpc::Status::OK;
}

grpc::Status OubliService::WatchDeletion(
    grpc::ServerContext* context, const v1::WatchDeletionRequest* request,
    grpc::ServerWriter<v1::DeletionReceipt>* writer) {
  OUBLI_GRPC_ASSIGN_OR_RETURN(ModelRegistry * registry, registry());
  OUBLI_GRPC_ASSIGN_OR_RETURN(auto parts,
                              SplitDeletionId(request->deletion_id()));
  OUBLI_GRPC_ASSIGN_OR_RETURN(DeletionReceipt receipt,
                              registry->GetDeletion(request->deletion_id()));
  auto send = [&](const DeletionReceipt& r) {
    v1::DeletionReceipt proto;
    ReceiptToProto(r, parts.first, &proto);
    return writer->Write(proto);
  };
  if (!send(receipt)) {
    return grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
  }
  while (receipt.stage != DeletionStage::kRestored) {
    // IsCancelled also turns true when the client's deadline passes.
    if (context->IsCancelled()) {
      return grpc::Status(grpc::StatusCode::CANCELLED,
                          "watch cancelled before RESTORED");
    }
    const DeletionStage seen = receipt.stage;
    OUBLI_GRPC_ASSIGN_OR_RETURN(
        receipt, registry->AwaitDeletionChange(request->deletion_id(), seen,
                                               kWatchTick));
    if (receipt.stage == seen) continue;
    // Stages passed between two looks (PURGED and RESTORED can land
    // milliseconds apart) still get their receipt each, as they stood.
    for (int stage = static_cast<int>(seen) + 1;
         stage <= static_cast<int>(receipt.stage); ++stage) {
      if (!send(ReceiptAsOf(receipt, static_cast<DeletionStage>(stage)))) {
        return grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
      }
    }
  }
  return grpc::Status::OK;
}

grpc::Status OubliService::ListDeletions(
    grpc::ServerContext* context, const v1::ListDeletionsRequest* request,
    v1::ListDeletionsResponse* response) {
  OUBLI_GRPC_ASSIGN_OR_RETURN(ModelRegistry * registry, registry());
  OUBLI_GRPC_ASSIGN_OR_RETURN(const DeletionQuery query,
                              ListDeletionsQuery(*request));
  OUBLI_GRPC_ASSIGN_OR_RETURN(
      DeletionPage page, registry->ListDeletions(request->model_id(), query));
  for (DeletionReceipt& receipt : page.receipts) {
    v1::DeletionReceipt* out = response->add_deletions();
    ReceiptToProto(receipt, request->model_id(), out);
    if (!request->include_ids()) {
      out->clear_resolved_ids();
      out->clear_unknown_ids();
      out->clear_already_deleted();
    }
  }
  if (!page.next_below_id.empty()) {
    response->set_next_page_token(
        absl::StrCat(kPageTokenPrefix, page.next_below_id));
  }
  return grpc::Status::OK;
}

grpc::Status OubliService::Predict(grpc::ServerContext* context,
                                   const v1::PredictRequest* request,
                                   v1::PredictResponse* response) {
  OUBLI_GRPC_ASSIGN_OR_RETURN(ModelRegistry * registry, registry());
  OUBLI_GRPC_RETURN_IF_ERROR(CheckPredictRequest(*request));
  OUBLI_GRPC_ASSIGN_OR_RETURN(ModelConfig config,
                              registry->GetConfig(request->model_id()));
  OUBLI_GRPC_RETURN_IF_ERROR(CheckPredictFitsModel(*request, config));
  Prediction prediction;
  if (config.backbone.kind == BackboneKind::kDecoder) {
    OUBLI_GRPC_ASSIGN_OR_RETURN(
        const std::vector<std::vector<int32_t>> sequences,
        PredictTokenRows(*request));
    OUBLI_GRPC_ASSIGN_OR_RETURN(
        prediction, registry->PredictTokens(request->model_id(), sequences));
  } else {
    OUBLI_GRPC_ASSIGN_OR_RETURN(
        const std::vector<float> inputs,
        PredictInputs(*request, config.backbone.InputSize()));
    OUBLI_GRPC_ASSIGN_OR_RETURN(
        prediction,
        registry->Predict(request->model_id(), inputs, request->rows()));
  }
  response->set_rows(static_cast<int32_t>(prediction.rows));
  response->set_classes(static_cast<int32_t>(prediction.classes));
  response->mutable_probabilities()->Assign(prediction.probabilities.begin(),
                                            prediction.probabilities.end());
  for (int64_t r = 0; r < prediction.rows; ++r) {
    const auto row = prediction.probabilities.begin() + r * prediction.classes;
    response->add_predicted_classes(static_cast<int32_t>(
        std::max_element(row, row + prediction.classes) - row));
  }
  AnsweredByToProto(prediction.fingerprint, prediction.from_base,
                    prediction.served, response);
  return grpc::Status::OK;
}

grpc::Status OubliService::Score(grpc::ServerContext* context,
                                 const v1::ScoreRequest* request,
                                 v1::ScoreResponse* response) {
  OUBLI_GRPC_ASSIGN_OR_RETURN(ModelRegistry * registry, registry());
  OUBLI_GRPC_ASSIGN_OR_RETURN(const std::vector<std::vector<int32_t>> sequences,
                              ScoreSequences(*request));
  OUBLI_GRPC_ASSIGN_OR_RETURN(TokenScores scores,
                              registry->Score(request->model_id(), sequences));
  for (const std::vector<float>& log_probs : scores.token_log_probs) {
    v1::ScoredSequence* out = response->add_sequences();
    out->mutable_token_log_probs()->Assign(log_probs.begin(), log_probs.end());
    double total = 0;  // in double: hundreds of floats lose digits
    for (float p : log_probs) total += p;
    out->set_total_log_prob(total);
  }
  AnsweredByToProto(scores.fingerprint, scores.from_base, scores.served,
                    response);
  return grpc::Status::OK;
}

grpc::Status OubliService::Generate(grpc::ServerContext* context,
                                    const v1::GenerateRequest* request,
                                    v1::GenerateResponse* response) {
  OUBLI_GRPC_ASSIGN_OR_RETURN(ModelRegistry * registry, registry());
  OUBLI_GRPC_ASSIGN_OR_RETURN(const GenerateOptions options,
                              GenerateOptionsFrom(*request));
  OUBLI_GRPC_ASSIGN_OR_RETURN(
      Generation generation,
      registry->Generate(request->model_id(), options));
  for (int32_t token : generation.tokens) {
    response->add_tokens(static_cast<uint32_t>(token));
  }
  response->mutable_token_log_probs()->Assign(
      generation.token_log_probs.begin(), generation.token_log_probs.end());
  response->set_finish_reason(FinishReasonToProto(generation.finish_reason));
  AnsweredByToProto(generation.fingerprint, generation.from_base,
                    generation.served, response);
  return grpc::Status::OK;
}

grpc::Status OubliService::GetModel(grpc::ServerContext* context,
                                    const v1::GetModelRequest* request,
                                    v1::Model* response) {
  OUBLI_GRPC_ASSIGN_OR_RETURN(ModelRegistry * registry, registry());
  OUBLI_GRPC_RETURN_IF_ERROR(CheckModelId(request->model_id()));
  OUBLI_GRPC_ASSIGN_OR_RETURN(ModelStatus status,
                              registry->GetModelStatus(request->model_id()));
  ModelStatusToProto(request->model_id(), status, response);
  WorkersToProto(WorkerList(), response);
  if (workers_ != nullptr) {
    for (const WorkerPool::RetiredHolder& r : workers_->RetiredHolders()) {
      RetiredToProto(r, response->add_retired_workers());
    }
  }
  return grpc::Status::OK;
}

grpc::Status OubliService::ListModels(grpc::ServerContext* context,
                                      const v1::ListModelsRequest* request,
                                      v1::ListModelsResponse* response) {
  OUBLI_GRPC_ASSIGN_OR_RETURN(ModelRegistry * registry, registry());
  for (const std::string& id : registry->ModelIds()) {  // sorted
    absl::StatusOr<ModelStatus> status = registry->GetModelStatus(id);
    if (absl::IsNotFound(status.status())) continue;  // gone meanwhile
    if (!status.ok()) return ToGrpcStatus(status.status());
    v1::ModelSummary* out = response->add_models();
    out->set_model_id(id);
    out->set_config_fingerprint(ConfigFingerprint(status->config));
    out->set_training_requested(status->training_requested);
    out->set_active_samples(status->active_samples);
    out->set_shards(static_cast<int32_t>(status->shards.size()));
    for (const ShardStatus& shard : status->shards) {
      if (!shard.served.served) continue;
      out->set_shards_served(out->shards_served() + 1);
      if (static_cast<int>(shard.served.prefix.size()) ==
          status->config.slices) {
        out->set_shards_full_length(out->shards_full_length() + 1);
      }
    }
    out->set_pending_deletions(status->pending_deletions);
    if (status->oldest_pending_accepted_at != absl::InfinitePast()) {
      SetTimestamp(status->oldest_pending_accepted_at,
                   out->mutable_oldest_pending_accepted_at());
    }
    out->set_fingerprint(status->fingerprint);
  }
  return grpc::Status::OK;
}

grpc::Status OubliService::Verify(grpc::ServerContext* context,
                                  const v1::VerifyRequest* request,
                                  v1::VerifyResponse* response) {
  OUBLI_GRPC_ASSIGN_OR_RETURN(ModelRegistry * registry, registry());
  OUBLI_GRPC_RETURN_IF_ERROR(CheckModelId(request->model_id()));
  OUBLI_GRPC_ASSIGN_OR_RETURN(VerifyReport report,
                              registry->Verify(request->model_id()));
  response->set_restored(report.restored);
  response->set_match(report.match);
  response->set_served_fingerprint(report.served_fingerprint);
  response->set_scratch_fingerprint(report.scratch_fingerprint);
  for (const auto& [shard, match] : report.shard_matches) {
    v1::ShardMatch* proto = response->add_shards();
    proto->set_shard(shard);
    proto->set_match(match);
  }
  response->set_elapsed_ms(absl::ToInt64Milliseconds(report.elapsed));
  return grpc::Status::OK;
}

grpc::Status OubliService::ExportLedger(
    grpc::ServerContext* context, const v1::ExportLedgerRequest* request,
    grpc::ServerWriter<v1::ExportLedgerResponse>* writer) {
  OUBLI_GRPC_ASSIGN_OR_RETURN(ModelRegistry * registry, registry());
  OUBLI_GRPC_RETURN_IF_ERROR(CheckModelId(request->model_id()));
  if (request->from_sequence() < 0) {
    return InvalidArgument("from_sequence: must be >= 0");
  }
  // Pages bound the memory per call; the head at the start bounds the
  // export, so it is one consistent prefix of the chain.
  constexpr size_t kPage = 1000;
  int64_t next = std::max<int64_t>(1, request->from_sequence());
  int64_t head = -1;
  while (true) {
    if (context->IsCancelled()) {
      return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
    }
    OUBLI_GRPC_ASSIGN_OR_RETURN(
        Engine::LedgerPage page,
        registry->ReadLedger(request->model_id(), next, kPage));
    v1::ExportLedgerResponse response;
    if (head < 0) {
      head = page.head_sequence;
      response.set_public_key_pem(page.public_key_pem);
      response.set_head_sequence(head);
    }
    for (std::string& bytes : page.records) {
      if (next > head) break;
      if (!response.add_records()->ParseFromString(bytes)) {
        return ToGrpcStatus(absl::DataLossError(
            absl::StrCat("ledger entry ", next, " is corrupt")));
      }
      ++next;
    }
    const bool last = next > head || page.records.size() < kPage;
    if (response.records_size() > 0 || response.head_sequence() > 0 ||
        !response.public_key_pem().empty()) {
      if (!writer->Write(response)) {
        return grpc::Status(grpc::StatusCode::CANCELLED,
                            "the client went away");
      }
    }
    if (last) return grpc::Status::OK;
  }
}

grpc::Status OubliService::DeleteModel(grpc::ServerContext* context,
                                       const v1::DeleteModelRequest* request,
                                       v1::ModelDeletion* response) {
  OUBLI_GRPC_ASSIGN_OR_RETURN(ModelRegistry * registry, registry());
  OUBLI_GRPC_RETURN_IF_ERROR(CheckModelId(request->model_id()));
  OUBLI_GRPC_ASSIGN_OR_RETURN(
      ModelRegistry::ModelDeletion deletion,
      request->status_only() ? registry->GetModelDeletion(request->model_id())
                             : registry->DeleteModel(request->model_id()));
  response->set_model_id(deletion.model_id);
  response->set_stage(deletion.purged ? v1::PURGED : v1::ACCEPTED);
  SetTimestamp(deletion.accepted_at, response->mutable_accepted_at());
  if (deletion.purged) {
    SetTimestamp(deletion.purged_at, response->mutable_purged_at());
  }
  response->set_note(SanitizeUtf8(deletion.note));
  return grpc::Status::OK;
}

grpc::Status OubliService::RetireWorker(grpc::ServerContext* context,
                                        const v1::RetireWorkerRequest* request,
                                        v1::RetiredWorker* response) {
  if (grpc::Status s = CheckClusterToken(*context, admin_token_); !s.ok()) {
    return s;
  }
  if (workers_ == nullptr) {
    return ToGrpcStatus(absl::FailedPreconditionError(
        "this server has no worker pool, so no chunk holders"));
  }
  // Known only from manifests when the holder died before this process
  // started; the registry must be open to say.
  OUBLI_GRPC_ASSIGN_OR_RETURN(ModelRegistry * registry, registry());
  OUBLI_GRPC_ASSIGN_OR_RETURN(
      WorkerPool::RetiredHolder retired,
      workers_->RetireHolder(request->name(), [&] {
        return registry->NamesChunkHolder(request->name());
      }));
  // Deletions waiting on its chunks need not wait out their back-off.
  RetryPurgesNow();
  RetiredToProto(retired, response);
  return grpc::Status::OK;
}

void OubliService::RetryPurgesNow() {
  if (absl::StatusOr<ModelRegistry*> registry = this->registry();
      registry.ok()) {
    (*registry)->RetryPurgesNow();
  }
}

// -------------------------------------------------------- CoordinatorServer

// In the data dir beside the models' dirs: '~' is not allowed in model ids.
constexpr char kRetiredWorkersFile[] = "~retired_workers";

absl::StatusOr<std::unique_ptr<CoordinatorServer>> CoordinatorServer::Start(
    const Options& options) {
  if (options.data_dir.empty()) {
    return absl::InvalidArgumentError("data_dir is required");
  }
  OUBLI_RETURN_IF_ERROR(
      CheckNiceIncrement("background_nice",
                         options.background_priority.nice_increment));
  OUBLI_ASSIGN_OR_RETURN(
      const std::string host,
      CheckServerAddress(options.listen_address, options.max_message_bytes));
  std::unique_ptr<CoordinatorServer> server(new CoordinatorServer());
  if (!options.metrics_listen_address.empty()) {
    // Before the gRPC port, so a taken metrics port fails the start early.
    server->metrics_ = PrometheusMetrics::Create();
    OUBLI_ASSIGN_OR_RETURN(
        server->metrics_server_,
        MetricsServer::Start(
            options.metrics_listen_address,
            [metrics = server->metrics_] { return metrics->Serialize(); },
            options.metrics_tls));
    server->metrics_address_ = server->metrics_server_->address();
    server->metrics_port_ = server->metrics_server_->port();
  }
  WorkerPool::Options pool_options = options.workers;
  pool_options.max_message_bytes = options.max_message_bytes;
  server->workers_ = std::make_shared<WorkerPool>(pool_options);
  // Before registrations are served: a retired name must never get in.
  {
    std::error_code error;
    std::filesystem::create_directories(options.data_dir, error);
    if (error) {
      return absl::FailedPreconditionError(absl::StrCat(
          "cannot create data dir ", options.data_dir, ": ", error.message()));
    }
  }
  OUBLI_RETURN_IF_ERROR(server->workers_->OpenRetiredHolders(
      (std::filesystem::path(options.data_dir) / kRetiredWorkersFile)
          .string()));
  OUBLI_RETURN_IF_ERROR(CheckTlsServerFiles(options.tls));
  if (options.tls.enabled() && options.workers.tls.server_name.empty()) {
    // Nothing but a shared secret would tell workers from anyone else on
    // the TLS port; the cluster token is for plaintext loopback setups.
    return absl::InvalidArgumentError(
        "with TLS, workers are recognised by the name their certificate "
        "carries (--tls_worker_name), which is empty; a cluster token does "
        "not replace it");
  }
  if (!options.policy_file.empty()) {
    OUBLI_ASSIGN_OR_RETURN(
        server->policy_,
        AccessPolicyFiles::Open(options.policy_file, options.token_file));
  } else if (!options.token_file.empty()) {
    return absl::InvalidArgumentError(
        "a token file needs a policy file naming its callers' roles");
  }
  OUBLI_ASSIGN_OR_RETURN(
      server->ledger_key_,
      SigningKey::LoadOrCreate(
          options.ledger_key_file.empty()
              ? (std::filesystem::path(options.data_dir) / "ledger-key.pem")
                    .string()
              : options.ledger_key_file));
  if (!options.audit_log.empty()) {
    AuditLog::Options audit;
    audit.path = options.audit_log;
    audit.max_bytes = options.audit_log_max_bytes;
    audit.keep_files = options.audit_log_keep_files;
    OUBLI_ASSIGN_OR_RETURN(server->audit_, AuditLog::Open(audit));
  }
  // The services outlive every RPC (the gRPC server stops first).
  ClusterPeer workers;
  workers.token = options.workers.cluster_token;
  if (options.tls.enabled()) {
    workers.certificate_name = options.workers.tls.server_name;
  }
  server->membership_ = std::make_unique<MembershipService>(
      server->workers_, std::move(workers),
      [service = &server->service_] { service->RetryPurgesNow(); });
  server->service_.SetWorkers(server->workers_);
  // With a policy, RetireWorker needs the admin role instead.
  if (server->policy_ == nullptr) {
    server->service_.SetAdminToken(options.workers.cluster_token);
  }
  if (options.max_concurrent_calls < 1 ||
      options.max_concurrent_calls > 100000 || options.max_watch_streams < 1 ||
      options.max_ingest_stream_samples < 1 ||
      options.ingest_memory_bytes < 1 || options.slice_cache_bytes < 0 ||
      options.grpc_memory_bytes < (int64_t{1} << 20)) {
    return absl::InvalidArgumentError(
        "max_concurrent_calls must be 1..100000, max_watch_streams and "
        "max_ingest_stream_samples >= 1, grpc_memory_bytes >= 1 MiB, "
        "ingest_memory_bytes >= 1, slice_cache_bytes >= 0");
  }
  server->service_.SetMaxIngestStreamSamples(options.max_ingest_stream_samples);
  server->service_.SetIngestMemoryBytes(options.ingest_memory_bytes);
  ApiLimits limits;
  limits.max_concurrent_calls = options.max_concurrent_calls;
  limits.max_watch_streams = options.max_watch_streams;
  server->guard_ = std::make_unique<ApiGuard>(
      &server->service_, server->policy_.get(), server->audit_.get(), limits);
  OUBLI_ASSIGN_OR_RETURN(
      StartedGrpcServer started,
      StartGrpcServer(
          options.listen_address,
          ServerCredentialsFor(options.tls, ClientCertificates::kOptional),
          options.max_message_bytes, kServiceName,
          [&](grpc::ServerBuilder& builder) {
            // The sync server retires a worker thread once more than
            // MAX_POLLERS are idle; with the default (2), every burst of
            // concurrent clients (e.g. 32 deleters) creates and destroys
            // threads per request. Keep them.
            builder.SetSyncServerOption(
                grpc::ServerBuilder::SyncServerOption::MAX_POLLERS, 64);
            // Threads and buffer memory are bounded; calls past the
            // guard's limits are refused by the spare threads.
            grpc::ResourceQuota quota("oubli-coordinator");
            quota.Resize(static_cast<size_t>(options.grpc_memory_bytes));
            quota.SetMaxThreads(options.max_concurrent_calls + 128);
            builder.SetResourceQuota(quota);
            builder.RegisterService(server->guard_.get());
            builder.RegisterService(server->membership_.get());
            if (server->metrics_ != nullptr) {
              std::vector<std::unique_ptr<
                  grpc::experimental::ServerInterceptorFactoryInterface>>
                  interceptors;
              interceptors.push_back(
                  std::make_unique<RpcMetricsInterceptorFactory>(
                      server->metrics_));
              builder.experimental().SetInterceptorCreators(
                  std::move(interceptors));
            }
          }));
  server->server_ = std::move(started.server);
  server->port_ = started.port;
  server->address_ = absl::StrCat(host, ":", started.port);

  ModelRegistry::Options registry_options;
  registry_options.root_dir = options.data_dir;
  registry_options.training_threads = options.training_threads;
  registry_options.background_priority = options.background_priority;
  registry_options.background_retrain = options.background_retrain;
  registry_options.ledger_key = server->ledger_key_.get();
  registry_options.metrics = server->metrics_;
  registry_options.slice_cache =
      std::make_shared<EncodedSliceCache>(options.slice_cache_bytes);
  if (server->metrics_ != nullptr) {
    server->metrics_->SetSliceCache(registry_options.slice_cache);
  }
  registry_options.remote_trainer =
      std::make_shared<WorkerTraining>(server->workers_);
  registry_options.replicas = std::make_shared<WorkerChunks>(server->workers_);
  if (options.predict_on_workers) {
    registry_options.shard_serving =
        std::make_shared<WorkerServing>(server->workers_);
  }
  absl::StatusOr<std::unique_ptr<ModelRegistry>> registry =
      ModelRegistry::Open(registry_options);
  if (!registry.ok()) {
    server->Shutdown(absl::ZeroDuration());
    return registry.status();
  }
  server->registry_ = *std::move(registry);
  server->service_.SetRegistry(server->registry_.get());
  if (server->metrics_ != nullptr) {
    server->metrics_->SetRegistry(server->registry_.get());
    server->metrics_->SetWorkers(
        [workers = std::weak_ptr<WorkerPool>(server->workers_)] {
          std::vector<std::pair<std::string, bool>> out;
          if (auto pool = workers.lock()) {
            for (const WorkerPool::WorkerInfo& w : pool->Workers()) {
              out.emplace_back(w.name, w.alive);
            }
          }
          return out;
        });
  }
  grpc::HealthCheckServiceInterface* health =
      server->server_->GetHealthCheckService();
  health->SetServingStatus(true);
  health->SetServingStatus(kServiceName, true);
  return server;
}

CoordinatorServer::~CoordinatorServer() { Shutdown(); }

void CoordinatorServer::Shutdown(absl::Duration grace) {
  if (shut_down_) return;
  shut_down_ = true;
  if (server_ != nullptr) {
    if (auto* health = server_->GetHealthCheckService(); health != nullptr) {
      health->SetServingStatus(false);
      health->SetServingStatus(kServiceName, false);
    }
    server_->Shutdown(absl::ToChronoTime(absl::Now() + grace));
  }
  // No RPC is running any more: safe to close the models. Scrapes stop
  // first (SetRegistry waits for one in progress).
  service_.SetRegistry(nullptr);
  metrics_server_.reset();
  if (metrics_ != nullptr) metrics_->SetRegistry(nullptr);
  registry_.reset();
}

void CoordinatorServer::Wait() {
  if (server_ != nullptr) server_->Wait();
}

}  // namespace oubli::coordinator
