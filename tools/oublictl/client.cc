#include "tools/oublictl/client.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <utility>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/grpc_security.h"
#include "common/status_macros.h"

namespace oubli::oublictl {
namespace {

namespace v1 = ::oubli::v1;

// Marks a usage error; main looks for it.
constexpr char kUsagePayload[] = "oublictl/usage";

const char* CodeName(grpc::StatusCode code) {
  static const char* const kNames[] = {"OK",
                                       "CANCELLED",
                                       "UNKNOWN",
                                       "INVALID_ARGUMENT",
                                       "DEADLINE_EXCEEDED",
                                       "NOT_FOUND",
                                       "ALREADY_EXISTS",
                                       "PERMISSION_DENIED",
                                       "RESOURCE_EXHAUSTED",
                                       "FAILED_PRECONDITION",
                                       "ABORTED",
                                       "OUT_OF_RANGE",
                                       "UNIMPLEMENTED",
                                       "INTERNAL",
                                       "UNAVAILABLE",
                                       "DATA_LOSS",
                                       "UNAUTHENTICATED"};
  const int index = static_cast<int>(code);
  return index >= 0 && index < 17 ? kNames[index] : "UNKNOWN";
}

}  // namespace

Client::Client(const std::string& server, const TlsDialFiles& tls,
               std::string bearer_token, absl::Duration timeout)
    : bearer_token_(std::move(bearer_token)), timeout_(timeout) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  std::shared_ptr<grpc::ChannelCredentials> credentials =
      ChannelCredentialsFor(tls, &args);
  stub_ =
      v1::Oubli::NewStub(grpc::CreateCustomChannel(server, credentials, args));
}

std::unique_ptr<grpc::ClientContext> Client::Context(bool deadline) const {
  auto context = std::make_unique<grpc::ClientContext>();
  if (!bearer_token_.empty()) {
    context->AddMetadata(kAuthorizationMetadata,
                         absl::StrCat("Bearer ", bearer_token_));
  }
  if (deadline) {
    context->set_deadline(absl::ToChronoTime(absl::Now() + timeout_));
  }
  return context;
}

absl::Status RpcStatus(const grpc::Status& status, absl::string_view rpc) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(
      static_cast<absl::StatusCode>(status.error_code()),
      absl::StrCat(rpc, " failed: ", CodeName(status.error_code()), ": ",
                   status.error_message()));
}

absl::Status UsageError(absl::string_view message) {
  absl::Status status = absl::InvalidArgumentError(message);
  status.SetPayload(kUsagePayload, absl::Cord("1"));
  return status;
}

bool IsUsageError(const absl::Status& status) {
  return status.GetPayload(kUsagePayload).has_value();
}

absl::StatusOr<std::string> RequireFlag(const std::string& value,
                                        absl::string_view name) {
  if (value.empty()) {
    return UsageError(absl::StrCat("--", name, " is required"));
  }
  return value;
}

void PrintJson(const google::protobuf::Message& message) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  // Scripts should not have to know that proto3 JSON drops zeros.
  options.always_print_primitive_fields = true;
  if (!google::protobuf::util::MessageToJsonString(message, &out, options)
           .ok()) {
    out = "{}";
  }
  std::printf("%s\n", out.c_str());
  std::fflush(stdout);
}

void ProgressBar(absl::string_view label, double fraction,
                 absl::string_view detail) {
  constexpr int kWidth = 30;
  fraction = std::clamp(fraction, 0.0, 1.0);
  const int filled = static_cast<int>(fraction * kWidth);
  std::fprintf(stderr, "\r%s [%s%s] %3d%% %s", std::string(label).c_str(),
               std::string(filled, '#').c_str(),
               std::string(kWidth - filled, '.').c_str(),
               static_cast<int>(fraction * 100), std::string(detail).c_str());
  std::fflush(stderr);
}

absl::StatusOr<std::string> ReadWholeFile(const std::string& path,
                                          absl::string_view flag) {
  absl::StatusOr<std::string> bytes = ReadFile(path);
  if (!bytes.ok()) {
    return absl::Status(
        bytes.status().code(),
        absl::StrCat("--", flag, ": ", bytes.status().message()));
  }
  return bytes;
}

absl::StatusOr<v1::Model> GetModel(Client& client, const std::string& model) {
  v1::GetModelRequest request;
  request.set_model_id(model);
  v1::Model response;
  OUBLI_RETURN_IF_ERROR(RpcStatus(
      client.stub().GetModel(client.Context().get(), request, &response),
      "GetModel"));
  return response;
}

absl::Status StreamSamples(
    Client& client, const std::string& model, size_t count, int batch,
    bool json, const std::function<void(size_t, v1::Sample*)>& fill) {
  const size_t per_message = static_cast<size_t>(std::max(1, batch));
  auto context = client.Context();
  v1::IngestSamplesResponse response;
  auto writer = client.stub().IngestSamples(context.get(), &response);
  for (size_t start = 0; start < count; start += per_message) {
    v1::IngestSamplesRequest request;
    request.set_model_id(model);
    const size_t end = std::min(count, start + per_message);
    for (size_t i = start; i < end; ++i) fill(i, request.add_samples());
    if (!writer->Write(request)) break;  // Finish() tells why
    ProgressBar("ingest", static_cast<double>(end) / count,
                absl::StrCat(end, "/", count));
  }
  std::fprintf(stderr, "\n");
  writer->WritesDone();
  OUBLI_RETURN_IF_ERROR(RpcStatus(writer->Finish(), "IngestSamples"));
  if (json) {
    PrintJson(response);
    return absl::OkStatus();
  }
  std::printf("accepted %lld  duplicates %lld  rejected %d\n",
              static_cast<long long>(response.accepted()),
              static_cast<long long>(response.duplicates()),
              response.rejected_size());
  for (int i = 0; i < std::min(response.rejected_size(), 10); ++i) {
    std::printf("  rejected %s: %s\n", response.rejected(i).sample_id().c_str(),
                response.rejected(i).reason().c_str());
  }
  return absl::OkStatus();
}

}  // namespace oubli::oublictl
