#include "tests/testing/service_client.h"

#include <atomic>

#include <random>
#include <thread>
#include <utility>

namespace oubli::testing_util {

v1::ModelConfig TinyConfig(int epochs, int batch_size) {
  v1::ModelConfig c;
  c.set_backbone(v1::BACKBONE_KIND_MLP);
  c.set_input_height(kTinySide);
  c.set_input_width(kTinySide);
  c.set_num_classes(kTinyClasses);
  for (int i = 0; i < 4; ++i) c.add_mlp_hidden(12);
  c.mutable_lora()->set_rank(2);
  c.set_shards(2);
  c.set_slices(kTinySlices);
  c.set_sequences(2);
  c.set_seed(1);
  c.set_epochs_per_position(epochs);
  c.set_batch_size(batch_size);
  c.set_learning_rate(1e-2);
  return c;
}

std::vector<v1::Sample> TinySamples(int n, uint64_t seed, int first_id) {
  std::mt19937_64 rng(seed);
  std::vector<v1::Sample> samples;
  for (int i = 0; i < n; ++i) {
    v1::Sample s;
    s.set_id("sample-" + std::to_string(first_id + i));
    s.set_owner("owner-" + std::to_string(i / 5));
    std::string features(kTinyWidth, '\0');
    for (char& byte : features) byte = static_cast<char>(rng() % 256);
    const int label = static_cast<int>(rng() % kTinyClasses);
    for (int k = 0; k < kTinySide; ++k) {
      features[label * 5 + (k % 5)] = static_cast<char>(250);
    }
    s.set_label(label);
    s.set_features(features);
    s.set_feature_type(v1::FEATURE_TYPE_U8);
    samples.push_back(std::move(s));
  }
  return samples;
}

v1::ModelConfig TinyDecoderConfig(v1::DecoderObjective objective) {
  v1::ModelConfig c;
  c.set_backbone(v1::BACKBONE_KIND_DECODER);
  v1::DecoderConfig* d = c.mutable_decoder();
  d->set_layout(v1::DECODER_LAYOUT_LLAMA);
  d->set_objective(objective);
  d->set_vocab_size(kTinyVocab);
  d->set_context_length(kTinyContext);
  d->set_dim(16);
  d->set_layers(2);
  d->set_heads(2);
  d->set_kv_heads(2);
  d->set_mlp_dim(32);
  d->add_lora_targets("q");
  d->add_lora_targets("v");
  if (objective == v1::DECODER_OBJECTIVE_CLASSIFY) c.set_num_classes(2);
  c.mutable_lora()->set_rank(2);
  c.set_shards(2);
  c.set_slices(2);
  c.set_sequences(1);
  c.set_seed(3);
  c.set_epochs_per_position(2);
  c.set_batch_size(8);
  c.set_learning_rate(1e-2);
  return c;
}

std::vector<v1::Sample> CountingSamples(int n) {
  std::vector<v1::Sample> samples;
  for (int i = 0; i < n; ++i) {
    v1::Sample s;
    s.set_id("text-" + std::to_string(i));
    s.set_owner("owner-" + std::to_string(i / 4));
    const uint32_t start = 1 + static_cast<uint32_t>(i % 10);
    for (uint32_t t = start; t < start + 6; ++t) s.add_tokens(t);
    s.set_prompt_tokens(2);
    s.set_label(static_cast<int>(start % 2));
    samples.push_back(std::move(s));
  }
  return samples;
}

std::chrono::system_clock::time_point Deadline(int seconds) {
  return std::chrono::system_clock::now() + std::chrono::seconds(seconds);
}

std::unique_ptr<v1::Oubli::Stub> NewStub(const std::string& address,
                                         int channel_index) {
  grpc::ChannelArguments arguments;
  arguments.SetInt("oubli.test.channel", channel_index);
  arguments.SetMaxSendMessageSize(-1);
  return v1::Oubli::NewStub(grpc::CreateCustomChannel(
      address, grpc::InsecureChannelCredentials(), arguments));
}

std::unique_ptr<v1::Oubli::Stub> NewStub(
    const std::string& address,
    std::shared_ptr<grpc::ChannelCredentials> credentials,
    grpc::ChannelArguments arguments) {
  static std::atomic<int> channels{0};
  arguments.SetInt("oubli.test.channel", 1000 + channels++);
  arguments.SetMaxSendMessageSize(-1);
  return v1::Oubli::NewStub(
      grpc::CreateCustomChannel(address, std::move(credentials), arguments));
}

grpc::Status ServiceClientTest::Create(const std::string& model_id,
                                       const v1::ModelConfig& c,
                                       v1::Model* model) {
  v1::CreateModelRequest request;
  request.set_model_id(model_id);
  *request.mutable_config() = c;
  return Call(&v1::Oubli::Stub::CreateModel, request, model);
}

grpc::Status ServiceClientTest::Ingest(
    const std::string& model_id,
    const std::vector<std::vector<v1::Sample>>& batches,
    v1::IngestSamplesResponse* response) {
  grpc::ClientContext context;
  context.set_deadline(Deadline(60));
  auto writer = stub_->IngestSamples(&context, response);
  for (const auto& batch : batches) {
    v1::IngestSamplesRequest request;
    request.set_model_id(model_id);
    for (const v1::Sample& s : batch) *request.add_samples() = s;
    if (!writer->Write(request)) break;  // the server ended the stream
  }
  writer->WritesDone();
  return writer->Finish();
}

v1::Job ServiceClientTest::TrainAndWait(const std::string& model_id) {
  v1::Job job;
  v1::TrainRequest train;
  train.set_model_id(model_id);
  grpc::Status status = Call(&v1::Oubli::Stub::Train, train, &job);
  EXPECT_TRUE(status.ok()) << status.error_message();
  // Bounded only as a hang guard; the assertion is on the final state.
  for (int i = 0; i < 6000 && (job.state() == v1::Job::PENDING ||
                               job.state() == v1::Job::RUNNING);
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    v1::GetJobRequest get;
    get.set_job_id(job.job_id());
    status = Call(&v1::Oubli::Stub::GetJob, get, &job);
    EXPECT_TRUE(status.ok()) << status.error_message();
  }
  return job;
}

grpc::Status ServiceClientTest::GetModel(const std::string& model_id,
                                         v1::Model* model) {
  v1::GetModelRequest request;
  request.set_model_id(model_id);
  return Call(&v1::Oubli::Stub::GetModel, request, model);
}

grpc::Status ServiceClientTest::Predict(const std::string& model_id, int rows,
                                        const std::vector<float>& features,
                                        v1::PredictResponse* response) {
  v1::PredictRequest request;
  request.set_model_id(model_id);
  request.set_rows(rows);
  request.mutable_features()->Assign(features.begin(), features.end());
  return Call(&v1::Oubli::Stub::Predict, request, response);
}

grpc::Status ServiceClientTest::PredictF32le(const std::string& model_id,
                                             int rows, const std::string& f32le,
                                             v1::PredictResponse* response) {
  v1::PredictRequest request;
  request.set_model_id(model_id);
  request.set_rows(rows);
  request.set_features_f32le(f32le);
  return Call(&v1::Oubli::Stub::Predict, request, response);
}

grpc::Status ServiceClientTest::Delete(const std::string& model_id,
                                       const std::vector<std::string>& ids,
                                       const std::string& idempotency_key,
                                       v1::DeletionReceipt* receipt) {
  v1::DeleteSamplesRequest request;
  request.set_model_id(model_id);
  for (const std::string& id : ids) request.add_sample_ids(id);
  request.set_idempotency_key(idempotency_key);
  return Call(&v1::Oubli::Stub::DeleteSamples, request, receipt, 60);
}

grpc::Status ServiceClientTest::ForgetOwner(const std::string& model_id,
                                            const std::string& owner,
                                            v1::DeletionReceipt* receipt) {
  v1::ForgetOwnerRequest request;
  request.set_model_id(model_id);
  request.set_owner(owner);
  return Call(&v1::Oubli::Stub::ForgetOwner, request, receipt, 60);
}

grpc::Status ServiceClientTest::Watch(
    const std::string& deletion_id,
    std::vector<v1::DeletionReceipt>* receipts) {
  grpc::ClientContext context;
  context.set_deadline(Deadline(120));
  v1::WatchDeletionRequest request;
  request.set_deletion_id(deletion_id);
  auto reader = stub_->WatchDeletion(&context, request);
  v1::DeletionReceipt receipt;
  while (reader->Read(&receipt)) receipts->push_back(receipt);
  return reader->Finish();
}

void ServiceClientTest::CreateTrainedModel(
    const std::string& model_id, const v1::ModelConfig& config,
    const std::vector<v1::Sample>& samples, v1::Model* model, v1::Job* job) {
  v1::Model created;
  grpc::Status status = Create(model_id, config, &created);
  ASSERT_TRUE(status.ok()) << status.error_message();
  v1::IngestSamplesResponse ingest;
  status = Ingest(model_id, {samples}, &ingest);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(ingest.accepted(), static_cast<int64_t>(samples.size()));
  const v1::Job trained = TrainAndWait(model_id);
  ASSERT_EQ(trained.state(), v1::Job::SUCCEEDED) << trained.error();
  if (model != nullptr) *model = created;
  if (job != nullptr) *job = trained;
}

void ServiceClientTest::WatchToRestored(const std::string& deletion_id) {
  std::vector<v1::DeletionReceipt> receipts;
  grpc::Status status = Watch(deletion_id, &receipts);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_FALSE(receipts.empty());
  ASSERT_EQ(receipts.back().stage(), v1::RESTORED);
}

}  // namespace oubli::testing_util
