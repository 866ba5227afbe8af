#include "tools/lm/grpc_lm_service.h"

#include <google/protobuf/util/time_util.h>
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/grpc_status.h"
#include "common/http_scrape.h"
#include "common/status_macros.h"
#include "coordinator/api_config.h"
#include "oubli/v1/oubli.grpc.pb.h"
#include "tools/bench/service_client.h"

namespace oubli::lm {
namespace {

namespace v1 = ::oubli::v1;
using google::protobuf::util::TimeUtil;

// Scoring reads the whole served ensemble; Verify retrains from scratch.
constexpr int kCallSeconds = 600;
constexpr int kVerifySeconds = 3600;

absl::Duration Between(const google::protobuf::Timestamp& from,
                       const google::protobuf::Timestamp& to) {
  return absl::Nanoseconds(TimeUtil::TimestampToNanoseconds(to) -
                           TimeUtil::TimestampToNanoseconds(from));
}

void AddTokens(absl::Span<const int32_t> tokens,
               google::protobuf::RepeatedField<uint32_t>* out) {
  for (int32_t t : tokens) out->Add(static_cast<uint32_t>(t));
}

// Score and greedy Generate of one model, over gRPC.
class GrpcScorer : public LmScorer {
 public:
  GrpcScorer(v1::Oubli::Stub& stub, std::string model_id)
      : stub_(stub), model_id_(std::move(model_id)) {}

  absl::StatusOr<std::vector<std::vector<float>>> Score(
      absl::Span<const std::vector<int32_t>> sequences) override {
    grpc::ClientContext context;
    context.set_deadline(bench::Deadline(kCallSeconds));
    v1::ScoreRequest request;
    request.set_model_id(model_id_);
    for (const std::vector<int32_t>& sequence : sequences) {
      AddTokens(sequence, request.add_sequences()->mutable_tokens());
    }
    v1::ScoreResponse response;
    OUBLI_RETURN_IF_ERROR(FromGrpcStatus(
        stub_.Score(&context, request, &response), "Score"));
    if (response.sequences_size() != static_cast<int>(sequences.size())) {
      return absl::InternalError(absl::StrCat(
          "Score answered ", response.sequences_size(), " sequences for ",
          sequences.size()));
    }
    std::vector<std::vector<float>> out;
    out.reserve(sequences.size());
    for (const v1::ScoredSequence& scored : response.sequences()) {
      out.emplace_back(scored.token_log_probs().begin(),
                       scored.token_log_probs().end());
    }
    return out;
  }

  absl::StatusOr<std::vector<int32_t>> Generate(
      absl::Span<const int32_t> prompt, int max_tokens,
      int32_t stop_token) override {
    grpc::ClientContext context;
    context.set_deadline(bench::Deadline(kCallSeconds));
    v1::GenerateRequest request;
    request.set_model_id(model_id_);
    AddTokens(prompt, request.mutable_prompt());
    request.set_max_tokens(max_tokens);
    request.set_temperature(0);  // greedy
    if (stop_token >= 0) request.add_stop_tokens(stop_token);
    v1::GenerateResponse response;
    OUBLI_RETURN_IF_ERROR(FromGrpcStatus(
        stub_.Generate(&context, request, &response), "Generate"));
    std::vector<int32_t> tokens(response.tokens().begin(),
                                response.tokens().end());
    // The stop token ends the text; it is not part of it.
    if (response.finish_reason() ==
            v1::GenerateResponse::FINISH_REASON_STOP_TOKEN &&
        !tokens.empty() && tokens.back() == stop_token) {
      tokens.pop_back();
    }
    return tokens;
  }

 private:
  v1::Oubli::Stub& stub_;
  const std::string model_id_;
};

class GrpcLmService : public LmService {
 public:
  explicit GrpcLmService(bench::Cluster cluster)
      : cluster_(std::move(cluster)),
        stub_(bench::NewStub(cluster_.address, 0)) {}

  ~GrpcLmService() override {
    stub_.reset();
    if (absl::Status stopped = cluster_.Stop(); !stopped.ok()) {
      std::fprintf(stderr, "oubli: stopping the service: %s\n",
                   stopped.ToString().c_str());
    }
  }

  std::string Describe() const override {
    return absl::StrCat("oubli-coordinator on ", cluster_.address, " with ",
                        cluster_.workers.size(), " oubli-worker process",
                        cluster_.workers.size() == 1 ? "" : "es");
  }

  absl::Status CreateModel(const std::string& model_id,
                           const ModelConfig& config) override {
    return bench::CreateModel(*stub_, model_id,
                              coordinator::ConfigToProto(config))
        .status();
  }

  absl::Status Ingest(const std::string& model_id,
                      absl::Span<const Sample> samples) override {
    std::vector<v1::Sample> wire;
    wire.reserve(samples.size());
    for (const Sample& sample : samples) {
      if (!HoldsTokens(sample.feature_type)) {
        return absl::InvalidArgumentError(
            absl::StrCat("sample ", sample.id, " holds no tokens"));
      }
      v1::Sample& s = wire.emplace_back();
      s.set_id(sample.id);
      s.set_owner(sample.owner);
      s.set_label(sample.label);
      AddTokens(DecodeTokens(sample.feature_type, sample.features),
                s.mutable_tokens());
      s.set_prompt_tokens(sample.prompt_tokens);
    }
    return bench::Ingest(*stub_, model_id, wire);
  }

  absl::StatusOr<TrainCost> Train(const std::string& model_id) override {
    OUBLI_ASSIGN_OR_RETURN(const TrainCost before, TrainedSoFar(model_id));
    const absl::Time start = absl::Now();
    OUBLI_ASSIGN_OR_RETURN(v1::Job job, bench::TrainJob(*stub_, model_id));
    TrainCost cost;
    cost.elapsed = absl::Now() - start;
    cost.positions = job.trained_prefixes();
    OUBLI_ASSIGN_OR_RETURN(const TrainCost after, TrainedSoFar(model_id));
    cost.sample_visits = after.sample_visits - before.sample_visits;
    return cost;
  }

  absl::StatusOr<TrainCost> TrainedSoFar(
      const std::string& model_id) override {
    const std::string page = HttpGet(cluster_.metrics_address, "/metrics");
    const std::string label = absl::StrCat("{model=\"", model_id, "\"}");
    const double visits =
        MetricValue(page, absl::StrCat("oubli_training_samples_total", label));
    const double positions = MetricValue(
        page, absl::StrCat("oubli_training_positions_total", label));
    if (visits < 0 || positions < 0) {
      return absl::InternalError(absl::StrCat(
          "no oubli_training_samples_total or oubli_training_positions_total "
          "for model '", model_id, "' on the coordinator's /metrics (",
          cluster_.metrics_address, ")"));
    }
    TrainCost cost;
    cost.positions = static_cast<int64_t>(positions);
    cost.sample_visits = static_cast<int64_t>(visits);
    return cost;
  }

  absl::StatusOr<std::string> Fingerprint(
      const std::string& model_id) override {
    OUBLI_ASSIGN_OR_RETURN(v1::Model model, bench::GetModel(*stub_, model_id));
    return model.fingerprint();
  }

  absl::StatusOr<ForgetReceipt> ForgetOwner(const std::string& model_id,
                                            const std::string& owner) override {
    v1::DeletionReceipt receipt;
    {
      grpc::ClientContext context;
      context.set_deadline(bench::Deadline(kCallSeconds));
      v1::ForgetOwnerRequest request;
      request.set_model_id(model_id);
      request.set_owner(owner);
      OUBLI_RETURN_IF_ERROR(FromGrpcStatus(
          stub_->ForgetOwner(&context, request, &receipt), "ForgetOwner"));
    }
    // The reply comes at FORGOTTEN; the watch confirms it on the record.
    OUBLI_ASSIGN_OR_RETURN(
        v1::DeletionReceipt forgotten,
        Watch(receipt.deletion_id(), v1::FORGOTTEN, absl::Seconds(60)));
    ForgetReceipt out;
    out.deletion_id = forgotten.deletion_id();
    out.to_forgotten =
        Between(forgotten.accepted_at(), forgotten.forgotten_at());
    out.affected_shards.assign(forgotten.affected_shards().begin(),
                               forgotten.affected_shards().end());
    return out;
  }

  absl::Status WaitForRestored(const std::string& deletion_id,
                               absl::Duration timeout) override {
    return Watch(deletion_id, v1::RESTORED, timeout).status();
  }

  absl::StatusOr<VerifyResult> Verify(const std::string& model_id) override {
    grpc::ClientContext context;
    context.set_deadline(bench::Deadline(kVerifySeconds));
    v1::VerifyRequest request;
    request.set_model_id(model_id);
    v1::VerifyResponse response;
    OUBLI_RETURN_IF_ERROR(FromGrpcStatus(
        stub_->Verify(&context, request, &response), "Verify"));
    return VerifyResult{response.match(), response.restored(),
                        absl::Milliseconds(response.elapsed_ms()),
                        response.served_fingerprint()};
  }

  std::unique_ptr<LmScorer> Scorer(const std::string& model_id) override {
    return std::make_unique<GrpcScorer>(*stub_, model_id);
  }

 private:
  // The first receipt WatchDeletion streams at `stage` or later.
  absl::StatusOr<v1::DeletionReceipt> Watch(const std::string& deletion_id,
                                            v1::DeletionStage stage,
                                            absl::Duration timeout) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         absl::ToChronoMilliseconds(timeout));
    v1::WatchDeletionRequest request;
    request.set_deletion_id(deletion_id);
    std::unique_ptr<grpc::ClientReader<v1::DeletionReceipt>> reader =
        stub_->WatchDeletion(&context, request);
    v1::DeletionReceipt receipt;
    while (reader->Read(&receipt)) {
      if (receipt.stage() >= stage) {
        // The rest of the stream is not needed: cancelled, it ends
        // CANCELLED, which is no error here.
        context.TryCancel();
        reader->Finish();
        return receipt;
      }
    }
    OUBLI_RETURN_IF_ERROR(
        FromGrpcStatus(reader->Finish(), "WatchDeletion"));
    return absl::InternalError(absl::StrCat(
        "WatchDeletion of ", deletion_id, " ended before ",
        v1::DeletionStage_Name(stage)));
  }

  bench::Cluster cluster_;
  std::unique_ptr<v1::Oubli::Stub> stub_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<LmService>> StartLocalLmService(
    const bench::ClusterOptions& options) {
  OUBLI_ASSIGN_OR_RETURN(bench::Cluster cluster, bench::StartCluster(options));
  return std::make_unique<GrpcLmService>(std::move(cluster));
}

}  // namespace oubli::lm
