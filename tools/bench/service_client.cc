#include "tools/bench/service_client.h"

#include <algorithm>
#include <chrono>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/grpc_status.h"
#include "common/status_macros.h"

namespace oubli::bench {

namespace v1 = ::oubli::v1;

std::chrono::system_clock::time_point Deadline(int seconds) {
  return std::chrono::system_clock::now() + std::chrono::seconds(seconds);
}

// A channel of its own (not sharing the TCP connection with other channels
// to the same address), so concurrent clients are really concurrent.
std::unique_ptr<v1::Oubli::Stub> NewStub(const std::string& address,
                                         int channel_index) {
  grpc::ChannelArguments arguments;
  arguments.SetInt("oubli.bench.channel", channel_index);
  arguments.SetMaxReceiveMessageSize(64 << 20);
  arguments.SetMaxSendMessageSize(64 << 20);
  return v1::Oubli::NewStub(grpc::CreateCustomChannel(
      address, grpc::InsecureChannelCredentials(), arguments));
}

absl::StatusOr<v1::Model> CreateModel(v1::Oubli::Stub& stub,
                                      const std::string& model_id,
                                      const v1::ModelConfig& config) {
  grpc::ClientContext context;
  context.set_deadline(Deadline(60));
  v1::CreateModelRequest request;
  request.set_model_id(model_id);
  *request.mutable_config() = config;
  v1::Model model;
  OUBLI_RETURN_IF_ERROR(FromGrpcStatus(
      stub.CreateModel(&context, request, &model), "CreateModel"));
  return model;
}

absl::Status Ingest(v1::Oubli::Stub& stub, const std::string& model_id,
                    const std::vector<v1::Sample>& samples) {
  grpc::ClientContext context;
  context.set_deadline(Deadline(600));
  v1::IngestSamplesResponse response;
  auto writer = stub.IngestSamples(&context, &response);
  for (size_t begin = 0; begin < samples.size(); begin += kIngestBatchSamples) {
    v1::IngestSamplesRequest request;
    request.set_model_id(model_id);
    const size_t end = std::min(samples.size(), begin + kIngestBatchSamples);
    for (size_t i = begin; i < end; ++i) *request.add_samples() = samples[i];
    if (!writer->Write(request)) break;  // the server ended the stream
  }
  writer->WritesDone();
  OUBLI_RETURN_IF_ERROR(FromGrpcStatus(writer->Finish(), "IngestSamples"));
  if (response.accepted() != static_cast<int64_t>(samples.size())) {
    return absl::InternalError(absl::StrCat("IngestSamples accepted ",
                                            response.accepted(), " of ",
                                            samples.size()));
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::Job> TrainJob(v1::Oubli::Stub& stub,
                                 const std::string& model_id) {
  v1::Job job;
  {
    grpc::ClientContext context;
    context.set_deadline(Deadline(60));
    v1::TrainRequest request;
    request.set_model_id(model_id);
    OUBLI_RETURN_IF_ERROR(
        FromGrpcStatus(stub.Train(&context, request, &job), "Train"));
  }
  while (job.state() == v1::Job::PENDING || job.state() == v1::Job::RUNNING) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    grpc::ClientContext context;
    context.set_deadline(Deadline(60));
    v1::GetJobRequest request;
    request.set_job_id(job.job_id());
    OUBLI_RETURN_IF_ERROR(
        FromGrpcStatus(stub.GetJob(&context, request, &job), "GetJob"));
  }
  if (job.state() != v1::Job::SUCCEEDED) {
    return absl::InternalError(absl::StrCat("training failed: ", job.error()));
  }
  return job;
}

absl::Status TrainAndWait(v1::Oubli::Stub& stub, const std::string& model_id) {
  return TrainJob(stub, model_id).status();
}

absl::StatusOr<v1::Model> GetModel(v1::Oubli::Stub& stub,
                                   const std::string& model_id) {
  grpc::ClientContext context;
  context.set_deadline(Deadline(30));
  v1::GetModelRequest request;
  request.set_model_id(model_id);
  v1::Model model;
  OUBLI_RETURN_IF_ERROR(
      FromGrpcStatus(stub.GetModel(&context, request, &model), "GetModel"));
  return model;
}

absl::StatusOr<v1::Model> WaitForAllPrefixes(v1::Oubli::Stub& stub,
                                             const std::string& model_id,
                                             absl::Duration timeout) {
  const absl::Time give_up = absl::Now() + timeout;
  while (true) {
    absl::StatusOr<v1::Model> model = GetModel(stub, model_id);
    if (model.ok() && model->missing_prefixes() == 0 &&
        model->training_requested()) {
      return model;
    }
    if (absl::Now() > give_up) {
      return absl::DeadlineExceededError("prefixes still missing");
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
}

}  // namespace oubli::bench
