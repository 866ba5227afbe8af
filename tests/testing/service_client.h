// Client side of the service tests: a tiny model config and learnable
// samples, deadlines, stubs, and a fixture whose helpers make one call each
// to an oubli.v1.Oubli server through `stub_`.
#ifndef OUBLI_TESTS_TESTING_SERVICE_CLIENT_H_
#define OUBLI_TESTS_TESTING_SERVICE_CLIENT_H_

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "oubli/v1/oubli.grpc.pb.h"

namespace oubli::testing_util {

// Shape of TinyConfig's model: 1x4x4 u8 inputs, 3 classes, 4 slices.
inline constexpr int kTinySide = 4;
inline constexpr int kTinyWidth = kTinySide * kTinySide;
inline constexpr int kTinyClasses = 3;
inline constexpr int kTinySlices = 4;

// An MLP with LoRA rank 2, S=2 shards x L=kTinySlices slices x B=2
// sequences, seed 1.
v1::ModelConfig TinyConfig(int epochs = 2, int batch_size = 8);

// Learnable synthetic samples: the label is which third of the image is
// brightest. Ids are "sample-<first_id + i>"; owners ("owner-<i / 5>") hold
// 5 samples each.
std::vector<v1::Sample> TinySamples(int n, uint64_t seed = 1,
                                    int first_id = 1000);

// A tiny Llama-layout decoder (vocabulary kTinyVocab, context
// kTinyContext, dim 16, 2 layers, LoRA on q and v): S=2 x L=2 x B=1, seed
// 3. A classifier of 2 classes under DECODER_OBJECTIVE_CLASSIFY.
inline constexpr int kTinyVocab = 24;
inline constexpr int kTinyContext = 12;
v1::ModelConfig TinyDecoderConfig(v1::DecoderObjective objective);

// Counting sequences: ids "text-<i>", owners ("owner-<i / 4>") hold 4 each;
// each starts at a token of its own and counts up six tokens, the first
// two a prompt; the label is the start's parity.
std::vector<v1::Sample> CountingSamples(int n);

// `seconds` from now.
std::chrono::system_clock::time_point Deadline(int seconds);

// A stub on a channel of its own: channels with distinct `channel_index`
// share no connection.
std::unique_ptr<v1::Oubli::Stub> NewStub(const std::string& address,
                                         int channel_index = 0);
// The same over `credentials` (e.g. TLS), each call its own channel.
std::unique_ptr<v1::Oubli::Stub> NewStub(
    const std::string& address,
    std::shared_ptr<grpc::ChannelCredentials> credentials,
    grpc::ChannelArguments arguments);

// Helpers over `stub_`, which the test sets. Each sets a deadline (a hang
// guard only). The void ones report fatal failures: wrap them in
// ASSERT_NO_FATAL_FAILURE.
class ServiceClientTest : public ::testing::Test {
 protected:
  // One unary call, e.g. Call(&v1::Oubli::Stub::GetJob, request, &job).
  template <typename Request, typename Response>
  grpc::Status Call(grpc::Status (v1::Oubli::Stub::*method)(
                        grpc::ClientContext*, const Request&, Response*),
                    const Request& request, Response* response,
                    int deadline_seconds = 30) {
    grpc::ClientContext context;
    context.set_deadline(Deadline(deadline_seconds));
    return (stub_.get()->*method)(&context, request, response);
  }

  grpc::Status Create(const std::string& model_id, const v1::ModelConfig& c,
                      v1::Model* model);
  // One IngestSamplesRequest per batch.
  grpc::Status Ingest(const std::string& model_id,
                      const std::vector<std::vector<v1::Sample>>& batches,
                      v1::IngestSamplesResponse* response);
  // Trains to completion through the job API; returns the final job.
  v1::Job TrainAndWait(const std::string& model_id);
  grpc::Status GetModel(const std::string& model_id, v1::Model* model);
  // `rows` rows of features as floats, or as little-endian float32 bytes.
  grpc::Status Predict(const std::string& model_id, int rows,
                       const std::vector<float>& features,
                       v1::PredictResponse* response);
  grpc::Status PredictF32le(const std::string& model_id, int rows,
                            const std::string& f32le,
                            v1::PredictResponse* response);
  grpc::Status Delete(const std::string& model_id,
                      const std::vector<std::string>& ids,
                      const std::string& idempotency_key,
                      v1::DeletionReceipt* receipt);
  grpc::Status ForgetOwner(const std::string& model_id,
                           const std::string& owner,
                           v1::DeletionReceipt* receipt);
  // Every receipt WatchDeletion streams, and the final status.
  grpc::Status Watch(const std::string& deletion_id,
                     std::vector<v1::DeletionReceipt>* receipts);

  // Creates `model_id` with `config`, ingests `samples` in one request (all
  // accepted) and trains it (SUCCEEDED). The created model and the final
  // job go to `model` and `job` when not null.
  void CreateTrainedModel(
      const std::string& model_id, const v1::ModelConfig& config = TinyConfig(),
      const std::vector<v1::Sample>& samples = TinySamples(60),
      v1::Model* model = nullptr, v1::Job* job = nullptr);
  // Watches the deletion until its stream ends at RESTORED.
  void WatchToRestored(const std::string& deletion_id);

  std::unique_ptr<v1::Oubli::Stub> stub_;
};

}  // namespace oubli::testing_util

#endif  // OUBLI_TESTS_TESTING_SERVICE_CLIENT_H_
