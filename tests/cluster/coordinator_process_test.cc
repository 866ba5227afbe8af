// The real oubli-coordinator binary as a child process, driven over the
// wire: crash safety of acknowledged deletions under SIGKILL, bitwise
// agreement with the in-process engine, and hostile requests. Asserts
// behaviour, never timing (time only bounds waits as hang guards).
#include <fcntl.h>
#include <gmock/gmock.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <future>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/types.h"
#include "coordinator/engine.h"
#include "coordinator/grpc_service.h"
#include "oubli/v1/oubli.grpc.pb.h"
#include "tests/testing/service_client.h"
#include "tests/testing/test_util.h"

extern char** environ;

namespace oubli {
namespace {

namespace v1 = ::oubli::v1;
using ::testing::Contains;
using ::testing::IsEmpty;
using testing_util::Deadline;
using testing_util::TinyConfig;
using testing_util::TinySamples;

// One oubli-coordinator child process. Its stdout is a pipe (to learn the
// port from "listening on HOST:PORT"); its stderr goes to `log_path`.
class CoordinatorProcess {
 public:
  CoordinatorProcess() = default;
  ~CoordinatorProcess() { Kill(); }
  CoordinatorProcess(const CoordinatorProcess&) = delete;
  CoordinatorProcess& operator=(const CoordinatorProcess&) = delete;

  // Spawns the binary and waits (hang guard: 60 s) for its listening line.
  ::testing::AssertionResult Start(const std::vector<std::string>& flags,
                                   const std::filesystem::path& log_path) {
    log_path_ = log_path;
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) {
      return ::testing::AssertionFailure() << "pipe2 failed";
    }
    std::vector<std::string> argv_strings = {OUBLI_COORDINATOR_BIN};
    argv_strings.insert(argv_strings.end(), flags.begin(), flags.end());
    std::vector<char*> argv;
    for (std::string& s : argv_strings) argv.push_back(s.data());
    argv.push_back(nullptr);

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, log_path.c_str(),
                                     O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawnattr_t attributes;
    posix_spawnattr_init(&attributes);
    sigset_t empty;
    sigemptyset(&empty);
    posix_spawnattr_setsigmask(&attributes, &empty);
    posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGMASK);
    const int rc = posix_spawn(&pid_, argv[0], &actions, &attributes,
                               argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attributes);
    ::close(fds[1]);
    stdout_fd_ = fds[0];
    if (rc != 0) {
      pid_ = -1;
      return ::testing::AssertionFailure()
             << "posix_spawn " << argv[0] << ": " << std::strerror(rc);
    }

    std::string out;
    const auto give_up =
        std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (out.find('\n') == std::string::npos) {
      if (std::chrono::steady_clock::now() > give_up) {
        return ::testing::AssertionFailure() << "no listening line; stderr:\n"
                                             << Log();
      }
      pollfd p = {stdout_fd_, POLLIN, 0};
      if (::poll(&p, 1, 500) <= 0) continue;
      char buffer[256];
      const ssize_t n = ::read(stdout_fd_, buffer, sizeof(buffer));
      if (n <= 0) {
        return ::testing::AssertionFailure()
               << "coordinator exited before listening; stderr:\n"
               << Log();
      }
      out.append(buffer, n);
    }
    const std::string prefix = "listening on ";
    const size_t at = out.find(prefix);
    if (at == std::string::npos) {
      return ::testing::AssertionFailure() << "unexpected stdout: " << out;
    }
    address_ =
        out.substr(at + prefix.size(), out.find('\n', at) - at - prefix.size());
    return ::testing::AssertionSuccess();
  }

  // Sends `signal` and reaps the process; returns its wait status.
  int Stop(int signal) {
    if (pid_ <= 0) return 0;
    ::kill(pid_, signal);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    if (stdout_fd_ >= 0) ::close(stdout_fd_);
    stdout_fd_ = -1;
    return status;
  }
  void Kill() { Stop(SIGKILL); }

  const std::string& address() const { return address_; }
  std::string Log() const { return testing_util::ReadWholeFile(log_path_); }

 private:
  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  std::string address_;
  std::filesystem::path log_path_;
};

class CoordinatorProcessTest : public testing_util::ServiceClientTest {
 protected:
  void TearDown() override {
    stub_.reset();
    coordinator_.Kill();  // always: never leave a child behind
  }

  void StartCoordinator(std::vector<std::string> extra_flags = {}) {
    std::vector<std::string> flags = {
        absl::StrCat("--data_dir=", (dir_.path() / "data").string()),
        "--listen=127.0.0.1:0", "--metrics_listen=127.0.0.1:0"};
    flags.insert(flags.end(), extra_flags.begin(), extra_flags.end());
    ASSERT_TRUE(coordinator_.Start(
        flags, dir_.path() / absl::StrCat("coordinator-", ++starts_, ".log")));
    stub_ = testing_util::NewStub(coordinator_.address(), 0);
  }

  // Polls GetModel until nothing is missing or pending (hang guard: 120 s).
  v1::Model WaitUntilRestored(const std::string& model_id) {
    v1::Model model;
    for (int i = 0; i < 1200; ++i) {
      grpc::Status status = GetModel(model_id, &model);
      EXPECT_TRUE(status.ok()) << status.error_message();
      if (!status.ok() ||
          (model.missing_prefixes() == 0 && model.pending_deletions() == 0)) {
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return model;
  }

  testing_util::ScopedTempDir dir_;  // first: outlives the process's files
  CoordinatorProcess coordinator_;
  int starts_ = 0;
};

std::string ZeroFeatures(int rows) {
  return std::string(
      static_cast<size_t>(rows) * testing_util::kTinyWidth * sizeof(float),
      '\0');
}

TEST_F(CoordinatorProcessTest, CoordinatorSigkillLosesNoAcknowledgedDeletion) {
  constexpr int kSamples = 2000;
  constexpr int kClients = 8;
  constexpr int kAcksBeforeKill = 100;
  ASSERT_NO_FATAL_FAILURE(StartCoordinator());
  ASSERT_NO_FATAL_FAILURE(CreateTrainedModel(
      "tiny", TinyConfig(1, 32), TinySamples(kSamples, 1, /*first_id=*/0)));

  // Clients delete distinct single samples until their first failure.
  absl::Mutex mu;
  std::map<std::string, std::string> acknowledged;  // sample id -> deletion
  std::vector<std::string> failures_before_kill;
  std::atomic<bool> killed{false};
  std::atomic<int> acks{0};
  std::vector<std::thread> clients;
  const std::string address = coordinator_.address();
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      auto stub = testing_util::NewStub(address, c + 1);
      for (int i = c; i < kSamples; i += kClients) {
        const std::string id = "sample-" + std::to_string(i);
        grpc::ClientContext context;
        context.set_deadline(Deadline(60));
        v1::DeleteSamplesRequest request;
        request.set_model_id("tiny");
        request.add_sample_ids(id);
        v1::DeletionReceipt receipt;
        grpc::Status s = stub->DeleteSamples(&context, request, &receipt);
        absl::MutexLock lock(&mu);
        if (!s.ok()) {
          if (!killed.load()) {
            failures_before_kill.push_back(
                absl::StrCat(id, ": ", s.error_code(), " ", s.error_message()));
          }
          return;
        }
        if (receipt.resolved_ids_size() == 1 && receipt.resolved_ids(0) == id) {
          acknowledged[id] = receipt.deletion_id();
          ++acks;
        } else {
          failures_before_kill.push_back(
              absl::StrCat(id, ": not resolved by ", receipt.deletion_id()));
          return;
        }
      }
    });
  }
  // Kill once enough deletions are acknowledged (hang guard: 60 s) while the
  // clients are still sending.
  for (int i = 0; i < 6000 && acks.load() < kAcksBeforeKill; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  killed = true;
  const int wait_status = coordinator_.Stop(SIGKILL);
  EXPECT_TRUE(WIFSIGNALED(wait_status));
  for (auto& t : clients) t.join();
  EXPECT_THAT(failures_before_kill, IsEmpty());
  ASSERT_GT(acknowledged.size(), 0u);
  EXPECT_LT(acknowledged.size(), static_cast<size_t>(kSamples))
      << "clients finished before the kill: nothing was in flight";

  // Same data dir.
  ASSERT_NO_FATAL_FAILURE(StartCoordinator());
  std::vector<std::string> acked_ids;
  for (const auto& [id, deletion_id] : acknowledged) {
    acked_ids.push_back(id);
    v1::GetDeletionRequest request;
    request.set_deletion_id(deletion_id);
    v1::DeletionReceipt receipt;
    grpc::Status status =
        Call(&v1::Oubli::Stub::GetDeletion, request, &receipt);
    ASSERT_TRUE(status.ok()) << deletion_id << ": " << status.error_message();
    EXPECT_GE(receipt.stage(), v1::ACCEPTED) << deletion_id;
    EXPECT_THAT(receipt.resolved_ids(), Contains(id)) << deletion_id;
  }
  // Deleting them again resolves none: each is reported as already deleted
  // by the deletion that acknowledged it.
  v1::DeletionReceipt again;
  grpc::Status status = Delete("tiny", acked_ids, "", &again);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_THAT(again.resolved_ids(), IsEmpty());
  std::map<std::string, std::string> reported;
  for (const auto& a : again.already_deleted()) {
    reported[a.sample_id()] = a.deletion_id();
  }
  EXPECT_EQ(reported, acknowledged);

  // Requests in flight at the kill may or may not have landed.
  const v1::Model after = WaitUntilRestored("tiny");
  RecordProperty("acknowledged", static_cast<int>(acknowledged.size()));
  RecordProperty("landed_unacknowledged",
                 static_cast<int>(kSamples - acknowledged.size() -
                                  after.active_samples()));
  EXPECT_LE(after.active_samples(),
            kSamples - static_cast<int64_t>(acknowledged.size()));
  EXPECT_GE(after.active_samples(),
            kSamples - static_cast<int64_t>(acknowledged.size()) - kClients);
  EXPECT_EQ(after.missing_prefixes(), 0);
  v1::PredictResponse prediction;
  status = PredictF32le("tiny", 2, ZeroFeatures(2), &prediction);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(prediction.rows(), 2);
  EXPECT_EQ(prediction.fingerprint(), after.fingerprint());
}

TEST_F(CoordinatorProcessTest, ServiceMatchesInProcessEngine) {
  const std::vector<v1::Sample> samples = TinySamples(60, 1, /*first_id=*/0);
  ASSERT_NO_FATAL_FAILURE(StartCoordinator());
  v1::Model created;
  ASSERT_NO_FATAL_FAILURE(
      CreateTrainedModel("tiny", TinyConfig(2, 8), samples, &created));
  v1::DeletionReceipt receipt;
  grpc::Status status = ForgetOwner("tiny", "owner-3", &receipt);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(receipt.resolved_ids_size(), 5);
  ASSERT_NO_FATAL_FAILURE(WatchToRestored(receipt.deletion_id()));
  v1::Model served;
  ASSERT_TRUE(GetModel("tiny", &served).ok());
  ASSERT_EQ(served.missing_prefixes(), 0);

  // The same config (every field as the server filled it in) and samples.
  absl::StatusOr<ModelConfig> config =
      coordinator::ConfigFromProto(created.config());
  ASSERT_TRUE(config.ok()) << config.status();
  config->model_id = "tiny";
  coordinator::Engine::Options options;
  options.data_dir = (dir_.path() / "engine").string();
  options.config = *config;
  auto engine = coordinator::Engine::Open(options);
  ASSERT_TRUE(engine.ok()) << engine.status();
  std::vector<Sample> domain;
  for (const v1::Sample& s : samples) {
    Sample d;
    d.id = s.id();
    d.owner = s.owner();
    d.label = s.label();
    d.feature_type = FeatureType::kU8;
    d.features = s.features();
    domain.push_back(std::move(d));
  }
  ASSERT_TRUE((*engine)->Ingest(domain).ok());
  ASSERT_TRUE((*engine)->Train().ok());
  auto forgotten = (*engine)->ForgetOwner("owner-3");
  ASSERT_TRUE(forgotten.ok()) << forgotten.status();
  ASSERT_TRUE((*engine)
                  ->WaitForRestored(forgotten->deletion_id, absl::Seconds(120))
                  .ok());
  EXPECT_EQ(served.fingerprint(), (*engine)->Fingerprint());
  EXPECT_EQ(receipt.fingerprint_before(), forgotten->fingerprint_before);
}

// grpc.health.v1.Health/Check by hand (Debian ships no health proto):
// HealthCheckRequest{service} is field 1 (string); the response's status is
// field 1 (enum), SERVING = 1, i.e. the bytes 08 01.
grpc::Status HealthCheck(const std::string& address, const std::string& service,
                         std::string* response_bytes) {
  grpc::GenericStub stub(
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  std::string request_bytes;
  if (!service.empty()) {
    request_bytes.push_back(0x0a);
    request_bytes.push_back(static_cast<char>(service.size()));
    request_bytes += service;
  }
  grpc::Slice slice(request_bytes);
  grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer response;
  grpc::ClientContext context;
  context.set_deadline(Deadline(30));
  std::promise<grpc::Status> done;
  stub.UnaryCall(&context, "/grpc.health.v1.Health/Check", grpc::StubOptions(),
                 &request, &response,
                 [&done](grpc::Status status) { done.set_value(status); });
  grpc::Status status = done.get_future().get();
  response_bytes->clear();
  std::vector<grpc::Slice> slices;
  if (status.ok() && response.Dump(&slices).ok()) {
    for (const grpc::Slice& s : slices) {
      response_bytes->append(reinterpret_cast<const char*>(s.begin()),
                             s.size());
    }
  }
  return status;
}

TEST_F(CoordinatorProcessTest, HostileRequestsOverTheWire) {
  ASSERT_NO_FATAL_FAILURE(StartCoordinator({"--max_message_bytes=1048576"}));
  v1::Model model;
  ASSERT_TRUE(Create("tiny", TinyConfig(1, 8), &model).ok());

  std::string health;
  grpc::Status status = HealthCheck(coordinator_.address(), "", &health);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(health, std::string("\x08\x01", 2));
  status = HealthCheck(coordinator_.address(), "oubli.v1.Oubli", &health);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(health, std::string("\x08\x01", 2));

  v1::Model unknown;
  EXPECT_EQ(GetModel("ghost", &unknown).error_code(),
            grpc::StatusCode::NOT_FOUND);
  v1::DeletionReceipt receipt;
  EXPECT_EQ(Delete("tiny", {}, "", &receipt).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Delete("tiny", {std::string("bad-\xff\xfe", 6)}, "", &receipt)
                .error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  v1::PredictResponse prediction;
  // 2 MiB of features against a 1 MiB limit.
  EXPECT_EQ(PredictF32le("tiny", 4096, std::string(2 << 20, '\0'), &prediction)
                .error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(PredictF32le("tiny", 2, ZeroFeatures(1), &prediction).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);

  // Still serving after all of it.
  EXPECT_TRUE(GetModel("tiny", &model).ok());
  status = HealthCheck(coordinator_.address(), "", &health);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(health, std::string("\x08\x01", 2));
  // And shuts down cleanly on SIGTERM.
  const int wait_status = coordinator_.Stop(SIGTERM);
  EXPECT_TRUE(WIFEXITED(wait_status) && WEXITSTATUS(wait_status) == 0)
      << coordinator_.Log();
}

}  // namespace
}  // namespace oubli
