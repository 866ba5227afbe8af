// Client helpers of the benchmarks that talk to a real oubli-coordinator
// over gRPC (service, recovery). Errors name the RPC that failed.
#ifndef OUBLI_TOOLS_BENCH_SERVICE_CLIENT_H_
#define OUBLI_TOOLS_BENCH_SERVICE_CLIENT_H_

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "oubli/v1/oubli.grpc.pb.h"

namespace oubli::bench {

// Samples per streamed IngestSamples message.
inline constexpr size_t kIngestBatchSamples = 5000;

// `seconds` from now.
std::chrono::system_clock::time_point Deadline(int seconds);

// A channel of its own (not sharing the TCP connection with other channels
// to the same address), so concurrent clients are really concurrent.
// Messages up to 64 MiB both ways.
std::unique_ptr<v1::Oubli::Stub> NewStub(const std::string& address,
                                         int channel_index);

absl::StatusOr<v1::Model> CreateModel(v1::Oubli::Stub& stub,
                                      const std::string& model_id,
                                      const v1::ModelConfig& config);
// Streams `samples` in kIngestBatchSamples messages; every one must be
// accepted.
absl::Status Ingest(v1::Oubli::Stub& stub, const std::string& model_id,
                    const std::vector<v1::Sample>& samples);
// Train, then GetJob until it ends; the final job, an error unless it
// SUCCEEDED.
absl::StatusOr<v1::Job> TrainJob(v1::Oubli::Stub& stub,
                                 const std::string& model_id);
// TrainJob without the job.
absl::Status TrainAndWait(v1::Oubli::Stub& stub, const std::string& model_id);
// GetModel with a 30 s deadline.
absl::StatusOr<v1::Model> GetModel(v1::Oubli::Stub& stub,
                                   const std::string& model_id);
// Polls GetModel until training was requested and no prefix is missing;
// returns the model. DeadlineExceeded after `timeout`.
absl::StatusOr<v1::Model> WaitForAllPrefixes(v1::Oubli::Stub& stub,
                                             const std::string& model_id,
                                             absl::Duration timeout);

}  // namespace oubli::bench

#endif  // OUBLI_TOOLS_BENCH_SERVICE_CLIENT_H_
