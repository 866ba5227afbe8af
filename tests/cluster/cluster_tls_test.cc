// The real binaries with TLS on: the coordinator serves TLS with an access
// policy, workers and coordinator authenticate each other with mutual TLS,
// and every stranger (plaintext, no certificate, a certificate without the
// cluster name) is refused on both ports. Also the start-up refusals of an
// unprotected non-loopback listen. Expired certificates, and /metrics asking
// scrapers for a certificate.
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/cluster_protocol.h"
#include "common/grpc_security.h"
#include "common/hash.h"
#include "oubli/cluster/cluster.grpc.pb.h"
#include "oubli/v1/oubli.grpc.pb.h"
#include "tests/testing/cluster_test.h"
#include "tests/testing/server_process.h"
#include "tests/testing/test_pki.h"
#include "worker/ml/determinism.h"

namespace oubli {
namespace {

namespace v1 = ::oubli::v1;
using ::testing::HasSubstr;
using testing_util::Deadline;
using testing_util::PemPair;
using testing_util::TestCa;
using testing_util::TinyConfig;
using testing_util::TinySamples;

class ClusterTlsTest : public testing_util::ClusterTest {
 protected:
  void SetUp() override {
    auto ca = TestCa::Create(dir_.path(), "cluster");
    ASSERT_TRUE(ca.ok()) << ca.status();
    ca_ = *std::move(ca);
    auto issue = [&](const std::string& name, std::vector<std::string> dns,
                     PemPair* out) {
      auto pair = ca_->Issue(name, name, dns);
      ASSERT_TRUE(pair.ok()) << pair.status();
      *out = *pair;
    };
    ASSERT_NO_FATAL_FAILURE(issue("oubli-coordinator",
                                  {"oubli-coordinator", "localhost"},
                                  &coordinator_cert_));
    ASSERT_NO_FATAL_FAILURE(
        issue("oubli-worker", {"oubli-worker"}, &worker_cert_));
    ASSERT_NO_FATAL_FAILURE(issue("alice", {}, &alice_));
    ASSERT_NO_FATAL_FAILURE(issue("stranger", {"stranger"}, &stranger_));
    policy_ = (dir_.path() / "policy").string();
    std::ofstream(policy_) << R"(principal { name: "alice" roles: "admin"
      roles: "writer" roles: "eraser" roles: "reader" roles: "auditor" })";
  }

  // The coordinator with TLS, the access policy and a long worker timeout.
  void StartTlsCoordinator() {
    std::vector<std::string> flags = TlsFlags(coordinator_cert_);
    flags.push_back(absl::StrCat("--policy_file=", policy_));
    flags.push_back("--worker_timeout=60s");
    ASSERT_NO_FATAL_FAILURE(StartCoordinator(flags));
  }

  std::vector<std::string> TlsFlags(const PemPair& identity) const {
    return {absl::StrCat("--tls_cert=", identity.cert),
            absl::StrCat("--tls_key=", identity.key),
            absl::StrCat("--tls_client_ca=", ca_->cert_path())};
  }

  std::shared_ptr<grpc::Channel> Channel(const std::string& address,
                                         const PemPair* identity,
                                         const std::string& server_name) {
    TlsDialFiles files;
    files.ca = ca_->cert_path();
    if (identity != nullptr) {
      files.cert = identity->cert;
      files.key = identity->key;
    }
    files.server_name = server_name;
    grpc::ChannelArguments arguments;
    auto credentials = ChannelCredentialsFor(files, &arguments);
    return grpc::CreateCustomChannel(address, credentials, arguments);
  }

  grpc::StatusCode Register(std::shared_ptr<grpc::Channel> channel) {
    auto membership = cluster::Membership::NewStub(channel);
    grpc::ClientContext context;
    context.set_deadline(Deadline(30));
    cluster::RegisterRequest request;
    request.set_address("127.0.0.1:1");
    request.set_environment(ml::NumericEnvironment());
    request.set_protocol_version(kClusterProtocolVersion);
    cluster::RegisterResponse response;
    return membership->Register(&context, request, &response).error_code();
  }

  grpc::StatusCode TrainPosition(std::shared_ptr<grpc::Channel> channel) {
    auto worker = cluster::Worker::NewStub(channel);
    grpc::ClientContext context;
    context.set_deadline(Deadline(30));
    cluster::TrainPositionResponse response;
    return worker
        ->TrainPosition(&context, cluster::TrainPositionRequest(), &response)
        .error_code();
  }

  std::unique_ptr<TestCa> ca_;
  PemPair coordinator_cert_;
  PemPair worker_cert_;
  PemPair alice_;
  PemPair stranger_;
  std::string policy_;
};

TEST_F(ClusterTlsTest, MutualTlsWorkersTrainAndStrangersAreRefused) {
  ASSERT_NO_FATAL_FAILURE(StartTlsCoordinator());
  // Registration itself is the mutual-TLS handshake plus the name check.
  ASSERT_NO_FATAL_FAILURE(StartWorker(false, TlsFlags(worker_cert_)));
  stub_ = v1::Oubli::NewStub(
      Channel(coordinator_.address(), &alice_, "oubli-coordinator"));
  // Trained over mutual TLS.
  ASSERT_NO_FATAL_FAILURE(ExpectTinyModelTrainsOnWorkers());

  const std::string coordinator = coordinator_.address();
  const std::string worker = workers_[0]->address();
  // The coordinator's port: plaintext fails the handshake; a certificate
  // of the cluster's CA without the workers' name cannot register.
  EXPECT_EQ(Register(grpc::CreateChannel(coordinator,
                                         grpc::InsecureChannelCredentials())),
            grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(Register(Channel(coordinator, nullptr, "oubli-coordinator")),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(Register(Channel(coordinator, &stranger_, "oubli-coordinator")),
            grpc::StatusCode::UNAUTHENTICATED);
  // The worker's port: no certificate, no connection; a user's certificate
  // is not the coordinator's.
  EXPECT_EQ(TrainPosition(grpc::CreateChannel(
                worker, grpc::InsecureChannelCredentials())),
            grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(TrainPosition(Channel(worker, nullptr, "oubli-worker")),
            grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(TrainPosition(Channel(worker, &alice_, "oubli-worker")),
            grpc::StatusCode::UNAUTHENTICATED);
  // A client checking the worker's certificate for another name refuses it.
  EXPECT_EQ(
      TrainPosition(Channel(worker, &coordinator_cert_, "not-the-worker")),
      grpc::StatusCode::UNAVAILABLE);
}

// cert-manager renews a worker's certificate by replacing its files: the
// worker serves the new one without a restart, and the coordinator keeps
// training on it.
TEST_F(ClusterTlsTest, RotatedWorkerCertificateIsServedWithoutRestart) {
  ASSERT_NO_FATAL_FAILURE(StartTlsCoordinator());
  // The worker's files are its own copies, replaced in place below.
  const std::string cert = (dir_.path() / "worker-serving.crt").string();
  const std::string key = (dir_.path() / "worker-serving.key").string();
  auto copy = [](const std::string& from, const std::string& to) {
    std::ifstream in(from, std::ios::binary);
    std::ofstream(to, std::ios::binary | std::ios::trunc) << in.rdbuf();
  };
  copy(worker_cert_.cert, cert);
  copy(worker_cert_.key, key);
  const PemPair serving{cert, key};
  ASSERT_NO_FATAL_FAILURE(StartWorker(false, TlsFlags(serving)));
  const std::string worker = workers_[0]->address();
  // The renewed certificate also names "oubli-worker-renewed": a client
  // asking for that name tells the two apart.
  auto renewed = ca_->Issue("oubli-worker-renewed", "oubli-worker",
                            {"oubli-worker", "oubli-worker-renewed"});
  ASSERT_TRUE(renewed.ok()) << renewed.status();
  ASSERT_EQ(TrainPosition(Channel(worker, &coordinator_cert_,
                                  "oubli-worker-renewed")),
            grpc::StatusCode::UNAVAILABLE);
  copy(renewed->key, key);
  copy(renewed->cert, cert);
  grpc::StatusCode code = grpc::StatusCode::UNAVAILABLE;
  for (int attempt = 0; attempt < 120; ++attempt) {  // hang guard: 60 s
    code = TrainPosition(
        Channel(worker, &coordinator_cert_, "oubli-worker-renewed"));
    if (code != grpc::StatusCode::UNAVAILABLE) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  // Past the handshake: the empty request itself is refused.
  EXPECT_NE(code, grpc::StatusCode::UNAVAILABLE);
  EXPECT_NE(code, grpc::StatusCode::UNAUTHENTICATED);
  // The coordinator still trains on the worker over mutual TLS.
  stub_ = v1::Oubli::NewStub(
      Channel(coordinator_.address(), &alice_, "oubli-coordinator"));
  ASSERT_NO_FATAL_FAILURE(ExpectTinyModelTrainsOnWorkers());
}

// Certificates of the cluster's CA carrying the right names, but expired:
// refused on both ports, and a worker given one does not start.
TEST_F(ClusterTlsTest, ExpiredCertificatesAreRefused) {
  auto expired_worker =
      ca_->Issue("expired-worker", "oubli-worker", {"oubli-worker"},
                 -absl::Hours(48), -absl::Hours(24));
  ASSERT_TRUE(expired_worker.ok()) << expired_worker.status();
  auto expired_coordinator =
      ca_->Issue("expired-coordinator", "oubli-coordinator",
                 {"oubli-coordinator"}, -absl::Hours(48), -absl::Hours(24));
  ASSERT_TRUE(expired_coordinator.ok()) << expired_coordinator.status();
  std::vector<std::string> flags = TlsFlags(coordinator_cert_);
  flags.push_back(absl::StrCat("--policy_file=", policy_));
  ASSERT_NO_FATAL_FAILURE(StartCoordinator(flags));
  ASSERT_NO_FATAL_FAILURE(StartWorker(false, TlsFlags(worker_cert_)));
  const std::string coordinator = coordinator_.address();
  const std::string worker = workers_[0]->address();

  // Registering as a worker: the handshake fails. (The same call with the
  // valid certificate of that name gets through it.)
  EXPECT_EQ(
      Register(Channel(coordinator, &*expired_worker, "oubli-coordinator")),
      grpc::StatusCode::UNAVAILABLE);
  EXPECT_NE(Register(Channel(coordinator, &worker_cert_, "oubli-coordinator")),
            grpc::StatusCode::UNAVAILABLE);
  // Calling a worker as the coordinator: likewise.
  EXPECT_EQ(
      TrainPosition(Channel(worker, &*expired_coordinator, "oubli-worker")),
      grpc::StatusCode::UNAVAILABLE);
  const grpc::StatusCode valid =
      TrainPosition(Channel(worker, &coordinator_cert_, "oubli-worker"));
  EXPECT_NE(valid, grpc::StatusCode::UNAVAILABLE);
  EXPECT_NE(valid, grpc::StatusCode::UNAUTHENTICATED);

  testing_util::ServerProcess process(OUBLI_WORKER_BIN);
  EXPECT_FALSE(
      process.Start({absl::StrCat("--coordinator=", coordinator),
                     absl::StrCat("--tls_cert=", expired_worker->cert),
                     absl::StrCat("--tls_key=", expired_worker->key),
                     absl::StrCat("--tls_client_ca=", ca_->cert_path())},
                    dir_.path() / "expired-worker.log"));
  EXPECT_THAT(process.Log(), HasSubstr("the certificate has expired"));
}

// --metrics_tls_client_ca: /metrics of both binaries answers only scrapers
// presenting a certificate of that CA.
TEST_F(ClusterTlsTest, MetricsClientCaRequiresAScraperCertificate) {
  std::vector<std::string> flags = TlsFlags(coordinator_cert_);
  flags.push_back(absl::StrCat("--policy_file=", policy_));
  flags.push_back("--metrics_tls");
  flags.push_back(absl::StrCat("--metrics_tls_client_ca=", ca_->cert_path()));
  ASSERT_NO_FATAL_FAILURE(StartCoordinator(flags));
  std::vector<std::string> worker_flags = TlsFlags(worker_cert_);
  worker_flags.push_back("--metrics_listen=127.0.0.1:0");
  worker_flags.push_back("--metrics_tls");
  worker_flags.push_back(
      absl::StrCat("--metrics_tls_client_ca=", ca_->cert_path()));
  ASSERT_NO_FATAL_FAILURE(StartWorker(false, worker_flags));

  const auto port_of = [](const std::string& address) {
    return std::stoi(address.substr(address.rfind(':') + 1));
  };
  std::string address;
  ASSERT_TRUE(coordinator_.WaitForLine("metrics on ", &address));
  const int coordinator_port = port_of(address);
  ASSERT_TRUE(workers_[0]->SawLine("metrics on ", &address));
  const int worker_port = port_of(address);
  const std::string ca = ca_->cert_path();
  EXPECT_EQ(testing_util::HttpsGet(coordinator_port, ca), "");
  EXPECT_THAT(testing_util::HttpsGet(coordinator_port, ca, &alice_),
              HasSubstr("oubli_"));
  EXPECT_EQ(testing_util::HttpsGet(worker_port, ca, nullptr, "oubli-worker"),
            "");
  EXPECT_THAT(testing_util::HttpsGet(worker_port, ca, &alice_, "oubli-worker"),
              HasSubstr("oubli_"));

  // Without --metrics_tls the flag would ask for nothing: refused.
  testing_util::ServerProcess process(OUBLI_COORDINATOR_BIN);
  EXPECT_FALSE(process.Start(
      {absl::StrCat("--data_dir=", (dir_.path() / "refused").string()),
       "--listen=127.0.0.1:0",
       absl::StrCat("--metrics_tls_client_ca=", ca_->cert_path())},
      dir_.path() / "refused.log"));
  EXPECT_THAT(process.Log(), HasSubstr("needs --metrics_tls"));
}

TEST_F(ClusterTlsTest, UnprotectedListenBeyondLoopbackIsRefused) {
  int runs = 0;
  const auto refused = [&](const std::string& binary,
                           std::vector<std::string> flags,
                           const std::string& why) {
    testing_util::ServerProcess process(binary);
    EXPECT_FALSE(process.Start(
        flags, dir_.path() / absl::StrCat("refused-", ++runs, ".log")));
    EXPECT_THAT(process.Log(), HasSubstr(why));
  };
  const std::string data =
      absl::StrCat("--data_dir=", dir_.path().string(), "/refused-data");
  refused(OUBLI_COORDINATOR_BIN, {data, "--listen=0.0.0.0:0"},
          "reaches beyond this machine");
  std::vector<std::string> tls_only = TlsFlags(coordinator_cert_);
  tls_only.push_back(data);
  tls_only.push_back("--listen=0.0.0.0:0");
  refused(OUBLI_COORDINATOR_BIN, tls_only, "--policy_file");
  refused(OUBLI_WORKER_BIN,
          {"--coordinator=127.0.0.1:1", "--listen=0.0.0.0:0",
           "--advertise=127.0.0.1:1"},
          "reaches beyond this machine");
  refused(OUBLI_WORKER_BIN,
          {"--coordinator=127.0.0.1:1",
           absl::StrCat("--tls_cert=", worker_cert_.cert),
           absl::StrCat("--tls_key=", worker_cert_.key)},
          "--tls_cert needs --tls_client_ca");
  refused(OUBLI_COORDINATOR_BIN,
          {data, absl::StrCat("--tls_cert=", coordinator_cert_.cert),
           absl::StrCat("--tls_key=", worker_cert_.key)},
          "is not the key of the certificate");
}

}  // namespace
}  // namespace oubli
