// Prometheus metrics end to end: an in-process coordinator with its metrics
// endpoint on 127.0.0.1:0, a tiny model taken through ingest, training and
// deletions to RESTORED, then a plain HTTP GET of /metrics. Asserts the
// metric contract (families, types, labels, counts), never timing.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "coordinator/grpc_service.h"
#include "oubli/v1/oubli.grpc.pb.h"
#include "tests/testing/service_client.h"
#include "tests/testing/test_util.h"

namespace oubli::coordinator {
namespace {

namespace v1 = ::oubli::v1;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::StartsWith;

// GET `path` over HTTP/1.0 (the server closes the connection after the
// response); returns the body, or "" with a test failure.
std::string HttpGet(int port, const std::string& path) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) {
    ADD_FAILURE() << "socket: " << std::strerror(errno);
    return "";
  }
  sockaddr_in address = {};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) !=
      0) {
    ADD_FAILURE() << "connect to port " << port << ": " << std::strerror(errno);
    ::close(fd);
    return "";
  }
  const std::string request =
      absl::StrCat("GET ", path, " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
  for (size_t sent = 0; sent < request.size();) {
    const ssize_t n =
        ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) {
      ADD_FAILURE() << "send: " << std::strerror(errno);
      ::close(fd);
      return "";
    }
    sent += static_cast<size_t>(n);
  }
  std::string response;
  char buffer[8192];
  while (true) {
    const ssize_t n = ::recv(fd, buffer, sizeof(buffer), 0);
    if (n <= 0) break;
    response.append(buffer, static_cast<size_t>(n));
  }
  ::close(fd);
  EXPECT_THAT(response, StartsWith("HTTP/1.")) << response;
  EXPECT_THAT(response.substr(0, response.find('\n')), HasSubstr(" 200 "));
  const size_t body = response.find("\r\n\r\n");
  if (body == std::string::npos) {
    ADD_FAILURE() << "no HTTP body in: " << response;
    return "";
  }
  return response.substr(body + 4);
}

// One sample line of the text exposition format.
struct MetricSample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

// Parses every sample line (comments skipped). Label values in our output
// hold no escaped quotes, which keeps this parser simple.
std::vector<MetricSample> ParseSamples(const std::string& text) {
  std::vector<MetricSample> samples;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (line.empty() || line[0] == '#') continue;
    MetricSample sample;
    const size_t brace = line.find('{');
    const size_t space = line.rfind(' ');
    if (space == absl::string_view::npos) continue;
    if (brace != absl::string_view::npos && brace < space) {
      sample.name = std::string(line.substr(0, brace));
      const size_t close = line.rfind('}');
      absl::string_view labels = line.substr(brace + 1, close - brace - 1);
      for (absl::string_view pair :
           absl::StrSplit(labels, absl::ByString("\","), absl::SkipEmpty())) {
        const size_t eq = pair.find("=\"");
        if (eq == absl::string_view::npos) continue;
        absl::string_view value = pair.substr(eq + 2);
        if (!value.empty() && value.back() == '"') value.remove_suffix(1);
        sample.labels[std::string(pair.substr(0, eq))] = std::string(value);
      }
    } else {
      sample.name = std::string(line.substr(0, space));
    }
    std::string value(line.substr(space + 1));
    if (!absl::SimpleAtod(value, &sample.value)) continue;
    samples.push_back(std::move(sample));
  }
  return samples;
}

// Sum of the samples named `name` whose labels include `labels` (-1 if no
// sample matches, so ">= 1" assertions fail for missing series).
double Value(const std::vector<MetricSample>& samples, const std::string& name,
             const std::map<std::string, std::string>& labels) {
  double sum = 0;
  bool found = false;
  for (const MetricSample& s : samples) {
    if (s.name != name) continue;
    bool match = true;
    for (const auto& [key, value] : labels) {
      auto it = s.labels.find(key);
      match = match && it != s.labels.end() && it->second == value;
    }
    if (!match) continue;
    found = true;
    sum += s.value;
  }
  return found ? sum : -1;
}

class MetricsTest : public testing_util::ServiceClientTest {
 protected:
  void SetUp() override {
    CoordinatorServer::Options options;
    options.listen_address = "127.0.0.1:0";
    options.metrics_listen_address = "127.0.0.1:0";
    options.data_dir = (temp_dir_.path() / "models").string();
    auto server = CoordinatorServer::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    ASSERT_GT(server_->metrics_port(), 0);
    EXPECT_EQ(server_->metrics_address(),
              absl::StrCat("127.0.0.1:", server_->metrics_port()));
    stub_ = testing_util::NewStub(server_->address());
  }
  void TearDown() override {
    stub_.reset();
    server_.reset();
  }

  testing_util::ScopedTempDir temp_dir_;
  std::unique_ptr<CoordinatorServer> server_;
};

TEST_F(MetricsTest, ExposesTheContractAfterDeletionsAreRestored) {
  v1::Job job;
  ASSERT_NO_FATAL_FAILURE(CreateTrainedModel("tiny", testing_util::TinyConfig(),
                                             testing_util::TinySamples(60),
                                             nullptr, &job));

  v1::DeletionReceipt by_id;
  grpc::Status status = Delete("tiny", {"sample-1003"}, "", &by_id);
  ASSERT_TRUE(status.ok()) << status.error_message();
  v1::DeletionReceipt by_owner;
  status = ForgetOwner("tiny", "owner-7", &by_owner);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(by_owner.resolved_ids_size(), 5);
  ASSERT_NO_FATAL_FAILURE(WatchToRestored(by_id.deletion_id()));
  ASSERT_NO_FATAL_FAILURE(WatchToRestored(by_owner.deletion_id()));
  // A NOT_FOUND, to see codes other than OK.
  v1::Model model;
  EXPECT_EQ(GetModel("no-such-model", &model).error_code(),
            grpc::StatusCode::NOT_FOUND);

  const std::string text = HttpGet(server_->metrics_port(), "/metrics");
  ASSERT_FALSE(text.empty());

  const std::vector<std::pair<std::string, std::string>> families = {
      {"oubli_deletions_total", "counter"},
      {"oubli_deleted_samples_total", "counter"},
      {"oubli_time_to_forget_seconds", "histogram"},
      {"oubli_time_to_purge_seconds", "histogram"},
      {"oubli_time_to_restore_seconds", "histogram"},
      {"oubli_deletions_pending", "gauge"},
      {"oubli_oldest_pending_deletion_age_seconds", "gauge"},
      {"oubli_retrain_queue_shards", "gauge"},
      {"oubli_retrain_backlog_sample_visits", "gauge"},
      {"oubli_shard_valid_prefix_length", "gauge"},
      {"oubli_shard_slices", "gauge"},
      {"oubli_model_active_samples", "gauge"},
      {"oubli_model_slice_imbalance", "gauge"},
      {"oubli_model_missing_prefixes", "gauge"},
      {"oubli_training_samples_total", "counter"},
      {"oubli_training_steps_total", "counter"},
      {"oubli_training_positions_wasted_total", "counter"},
      {"oubli_training_positions_total", "counter"},
      {"oubli_checkpoint_bytes_written_total", "counter"},
      {"oubli_checkpoint_bytes_encoded_total", "counter"},
      {"oubli_checkpoint_bytes_restored_total", "counter"},
      {"oubli_chunk_repairs_total", "counter"},
      {"oubli_worker_up", "gauge"},
      {"oubli_lineage_db_bytes", "gauge"},
      {"oubli_checkpoint_store_bytes", "gauge"},
      {"oubli_grpc_server_handled_total", "counter"},
      {"oubli_grpc_server_handling_seconds", "histogram"},
      {"oubli_build_info", "gauge"},
      {"oubli_slice_cache_hits_total", "counter"},
      {"oubli_slice_cache_misses_total", "counter"},
      {"oubli_slice_cache_bytes", "gauge"},
  };
  for (const auto& [name, type] : families) {
    EXPECT_THAT(text,
                HasSubstr(absl::StrCat("\n# TYPE ", name, " ", type, "\n")))
        << name;
  }

  const std::vector<MetricSample> samples = ParseSamples(text);
  const std::map<std::string, std::string> tiny = {{"model", "tiny"}};
  // One per deletion at every stage, however many samples it resolved.
  for (const char* stage : {"accepted", "forgotten", "purged", "restored"}) {
    EXPECT_EQ(Value(samples, "oubli_deletions_total",
                    {{"model", "tiny"}, {"stage", stage}}),
              2)
        << stage;
  }
  EXPECT_EQ(Value(samples, "oubli_deleted_samples_total", tiny), 6);
  EXPECT_EQ(Value(samples, "oubli_time_to_forget_seconds_count", tiny), 2);
  EXPECT_EQ(Value(samples, "oubli_time_to_purge_seconds_count", tiny), 2);
  EXPECT_EQ(Value(samples, "oubli_time_to_restore_seconds_count", tiny), 2);
  EXPECT_EQ(Value(samples, "oubli_time_to_forget_seconds_bucket",
                  {{"model", "tiny"}, {"le", "+Inf"}}),
            2);
  for (const char* stage : {"accepted", "forgotten", "purged"}) {
    EXPECT_EQ(Value(samples, "oubli_deletions_pending",
                    {{"model", "tiny"}, {"stage", stage}}),
              0)
        << stage;
  }
  EXPECT_EQ(Value(samples, "oubli_oldest_pending_deletion_age_seconds", tiny),
            0);
  EXPECT_EQ(Value(samples, "oubli_retrain_queue_shards", tiny), 0);
  EXPECT_EQ(Value(samples, "oubli_retrain_backlog_sample_visits", tiny), 0);
  // RESTORED: every shard serves its full length again.
  EXPECT_EQ(Value(samples, "oubli_shard_slices", tiny),
            testing_util::kTinySlices);
  for (const char* shard : {"0", "1"}) {
    EXPECT_EQ(Value(samples, "oubli_shard_valid_prefix_length",
                    {{"model", "tiny"}, {"shard", shard}}),
              testing_util::kTinySlices)
        << shard;
  }
  EXPECT_EQ(Value(samples, "oubli_model_active_samples", tiny), 60 - 6);
  EXPECT_GE(Value(samples, "oubli_model_slice_imbalance", tiny), 1.0);
  EXPECT_EQ(Value(samples, "oubli_model_missing_prefixes", tiny), 0);
  EXPECT_GT(Value(samples, "oubli_training_samples_total", tiny), 0);
  EXPECT_GT(Value(samples, "oubli_training_steps_total", tiny), 0);
  // The initial training's prefixes, then the retrained ones.
  ASSERT_GT(job.trained_prefixes(), 0);
  EXPECT_GT(Value(samples, "oubli_training_positions_total", tiny),
            job.trained_prefixes());
  EXPECT_GT(Value(samples, "oubli_checkpoint_bytes_written_total", tiny), 0);
  EXPECT_EQ(Value(samples, "oubli_checkpoint_bytes_encoded_total", tiny), 0);
  EXPECT_EQ(Value(samples, "oubli_checkpoint_bytes_restored_total", tiny), 0);
  EXPECT_EQ(Value(samples, "oubli_chunk_repairs_total", tiny), 0);
  EXPECT_EQ(Value(samples, "oubli_worker_up", {{"worker", "local"}}), 1);
  EXPECT_GT(Value(samples, "oubli_lineage_db_bytes", tiny), 0);
  EXPECT_GT(Value(samples, "oubli_checkpoint_store_bytes", tiny), 0);
  EXPECT_EQ(Value(samples, "oubli_build_info", {}), 1);
  // Training here read each slice from the store once (a miss), then
  // from the cache; the retrains read the slices the deletions changed.
  EXPECT_GE(Value(samples, "oubli_slice_cache_misses_total", {}),
            2 * testing_util::kTinySlices);
  EXPECT_GE(Value(samples, "oubli_slice_cache_hits_total", {}), 1);
  EXPECT_GT(Value(samples, "oubli_slice_cache_bytes", {}), 0);

  EXPECT_GE(Value(samples, "oubli_grpc_server_handled_total",
                  {{"method", "DeleteSamples"}, {"code", "OK"}}),
            1);
  EXPECT_GE(Value(samples, "oubli_grpc_server_handled_total",
                  {{"method", "GetModel"}, {"code", "NOT_FOUND"}}),
            1);
  // Client streaming and server streaming RPCs count once each.
  EXPECT_EQ(Value(samples, "oubli_grpc_server_handled_total",
                  {{"method", "IngestSamples"}, {"code", "OK"}}),
            1);
  EXPECT_EQ(Value(samples, "oubli_grpc_server_handled_total",
                  {{"method", "WatchDeletion"}, {"code", "OK"}}),
            2);
  EXPECT_GE(Value(samples, "oubli_grpc_server_handling_seconds_count",
                  {{"method", "DeleteSamples"}}),
            1);

  // No sample or owner id ever becomes a label value.
  std::set<std::string> private_ids;
  for (const v1::Sample& s : testing_util::TinySamples(60)) {
    private_ids.insert(s.id());
    private_ids.insert(s.owner());
  }
  for (const MetricSample& s : samples) {
    for (const auto& [key, value] : s.labels) {
      EXPECT_FALSE(private_ids.contains(value))
          << s.name << " label " << key << "=" << value;
      EXPECT_THAT(value, Not(StartsWith("sample-"))) << s.name;
      EXPECT_THAT(value, Not(StartsWith("owner-"))) << s.name;
    }
  }
}

TEST_F(MetricsTest, UnknownMethodsCreateNoSeries) {
  // A hostile client calling made-up methods must not grow label sets.
  grpc::GenericStub generic(grpc::CreateChannel(
      server_->address(), grpc::InsecureChannelCredentials()));
  grpc::CompletionQueue queue;
  grpc::ClientContext context;
  context.set_deadline(testing_util::Deadline(30));
  grpc::ByteBuffer request, response;
  std::unique_ptr<grpc::GenericClientAsyncResponseReader> call =
      generic.PrepareUnaryCall(&context, "/oubli.v1.Oubli/MadeUpMethod",
                               request, &queue);
  call->StartCall();
  grpc::Status status;
  call->Finish(&response, &status, reinterpret_cast<void*>(1));
  void* tag = nullptr;
  bool ok = false;
  ASSERT_TRUE(queue.Next(&tag, &ok));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNIMPLEMENTED);
  queue.Shutdown();
  while (queue.Next(&tag, &ok)) {
  }

  const std::string text = HttpGet(server_->metrics_port(), "/metrics");
  EXPECT_THAT(text, Not(HasSubstr("MadeUpMethod")));
  // No model yet: the registry's gauges are there without model series.
  EXPECT_EQ(Value(ParseSamples(text), "oubli_worker_up", {{"worker", "local"}}),
            1);
}

TEST(MetricsDisabledTest, NoMetricsAddressWhenNotRequested) {
  testing_util::ScopedTempDir dir;
  CoordinatorServer::Options options;
  options.listen_address = "127.0.0.1:0";
  options.data_dir = (dir.path() / "models").string();
  auto server = CoordinatorServer::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_THAT((*server)->metrics_address(), IsEmpty());
  EXPECT_EQ((*server)->metrics_port(), 0);
}

TEST(MetricsListenTest, TakenMetricsPortFailsTheStart) {
  testing_util::ScopedTempDir dir;
  CoordinatorServer::Options options;
  options.listen_address = "127.0.0.1:0";
  options.metrics_listen_address = "127.0.0.1:0";
  options.data_dir = (dir.path() / "a").string();
  auto first = CoordinatorServer::Start(options);
  ASSERT_TRUE(first.ok()) << first.status();
  options.metrics_listen_address = (*first)->metrics_address();
  options.data_dir = (dir.path() / "b").string();
  auto second = CoordinatorServer::Start(options);
  EXPECT_FALSE(second.ok());
}

}  // namespace
}  // namespace oubli::coordinator
