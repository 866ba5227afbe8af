// The public API's transport security and access control end to end: an
// in-process coordinator serving TLS with a client CA, an access policy,
// a token file and an audit log; clients with and without certificates and
// tokens. One test per refusal path, plus reloads of certificates and
// policy without a restart.
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/grpc_security.h"
#include "common/hash.h"
#include "coordinator/access_policy.h"
#include "coordinator/audit_log.h"
#include "coordinator/grpc_service.h"
#include "google/protobuf/descriptor.h"
#include "oubli/v1/oubli.grpc.pb.h"
#include "tests/testing/server_process.h"
#include "tests/testing/service_client.h"
#include "tests/testing/test_pki.h"

namespace oubli::coordinator {
namespace {

namespace v1 = ::oubli::v1;
using ::testing::HasSubstr;
using ::testing::Not;
using testing_util::PemPair;
using testing_util::TestCa;
using testing_util::TinyConfig;
using testing_util::TinySamples;

constexpr char kReaderToken[] = "reader-token-0123456789";
constexpr char kTeamToken[] = "team-a-token-0123456789";
constexpr char kEraserToken[] = "eraser-token-0123456789";

void WriteFile(const std::filesystem::path& path, const std::string& text) {
  const std::filesystem::path temporary = path.string() + ".tmp";
  {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    out << text;
  }
  std::filesystem::rename(temporary, path);  // readers see old or new
}

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream contents;
  contents << in.rdbuf();
  return contents.str();
}

std::string PolicyText(bool reader_may_erase) {
  return absl::StrCat(R"(
principal { name: "alice" roles: "admin" roles: "writer" roles: "eraser"
            roles: "reader" roles: "auditor" }
principal { name: "reader-bot" roles: "reader" )",
                      reader_may_erase ? "roles: \"eraser\" " : "", R"(}
principal { name: "eraser-bot" roles: "eraser" }
principal { name: "team-a" roles: "admin" roles: "writer" roles: "reader"
            models: "team-a-*" }
)");
}

std::string TokensText() {
  return absl::StrCat("# name sha256\n", "reader-bot ", Sha256Hex(kReaderToken),
                      "\n", "team-a ", Sha256Hex(kTeamToken), "\n",
                      "eraser-bot ", Sha256Hex(kEraserToken), "\n");
}

class ApiSecurityTest : public testing_util::ServiceClientTest {
 protected:
  void SetUp() override {
    root_ = std::filesystem::temp_directory_path() /
            ("oubli-security-test-" + std::to_string(::getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(root_);
    std::filesystem::create_directories(root_);
    auto ca = TestCa::Create(root_, "trusted");
    ASSERT_TRUE(ca.ok()) << ca.status();
    ca_ = *std::move(ca);
    auto rogue = TestCa::Create(root_, "rogue");
    ASSERT_TRUE(rogue.ok()) << rogue.status();
    rogue_ = *std::move(rogue);
    auto server = ca_->Issue("coordinator", "oubli-coordinator",
                             {"oubli-coordinator", "localhost"});
    ASSERT_TRUE(server.ok()) << server.status();
    server_cert_ = *server;
    auto alice = ca_->Issue("alice", "alice", {});
    ASSERT_TRUE(alice.ok()) << alice.status();
    alice_ = *alice;
    WriteFile(root_ / "policy.textproto", PolicyText(false));
    WriteFile(root_ / "tokens", TokensText());
    ASSERT_NO_FATAL_FAILURE(StartServer());
  }
  void TearDown() override {
    stub_.reset();
    server_.reset();
    std::filesystem::remove_all(root_);
  }

  CoordinatorServer::Options ServerOptions() const {
    CoordinatorServer::Options options;
    options.listen_address = "127.0.0.1:0";
    options.data_dir = (root_ / "models").string();
    options.tls.cert = server_cert_.cert;
    options.tls.key = server_cert_.key;
    options.tls.client_ca = ca_->cert_path();
    options.policy_file = (root_ / "policy.textproto").string();
    options.token_file = (root_ / "tokens").string();
    options.audit_log = (root_ / "audit.log").string();
    return options;
  }

  void StartServer() {
    auto server = CoordinatorServer::Start(ServerOptions());
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    address_ = absl::StrCat("127.0.0.1:", server_->port());
  }

  // A TLS client trusting `ca` (default: the server's CA), presenting
  // `certificate` and `token` when given.
  std::unique_ptr<v1::Oubli::Stub> Client(const PemPair* certificate,
                                          const char* token,
                                          const std::string& ca = "") {
    TlsDialFiles files;
    files.ca = ca.empty() ? ca_->cert_path() : ca;
    if (certificate != nullptr) {
      files.cert = certificate->cert;
      files.key = certificate->key;
    }
    grpc::ChannelArguments arguments;
    std::shared_ptr<grpc::ChannelCredentials> credentials =
        ChannelCredentialsFor(files, &arguments);
    if (token != nullptr) {
      credentials = grpc::CompositeChannelCredentials(
          credentials, grpc::AccessTokenCredentials(token));
    }
    return testing_util::NewStub(address_, credentials, arguments);
  }

  grpc::Status ListModels(v1::Oubli::Stub* stub,
                          v1::ListModelsResponse* response) {
    grpc::ClientContext context;
    context.set_deadline(testing_util::Deadline(10));
    return stub->ListModels(&context, v1::ListModelsRequest(), response);
  }

  std::filesystem::path root_;
  std::unique_ptr<TestCa> ca_;
  std::unique_ptr<TestCa> rogue_;
  PemPair server_cert_;
  PemPair alice_;
  std::unique_ptr<CoordinatorServer> server_;
  std::string address_;
};

TEST_F(ApiSecurityTest, PlaintextClientIsRefusedAndNothingIsProcessed) {
  stub_ = testing_util::NewStub(address_);
  v1::Model model;
  EXPECT_EQ(Create("m", TinyConfig(), &model).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  stub_ = Client(&alice_, nullptr);
  v1::ListModelsResponse models;
  ASSERT_TRUE(ListModels(stub_.get(), &models).ok());
  EXPECT_EQ(models.models_size(), 0);
}

TEST_F(ApiSecurityTest, ClientRefusesAServerItsCaDidNotSign) {
  auto stub = Client(&alice_, nullptr, rogue_->cert_path());
  v1::ListModelsResponse models;
  EXPECT_EQ(ListModels(stub.get(), &models).error_code(),
            grpc::StatusCode::UNAVAILABLE);
}

TEST_F(ApiSecurityTest, CertificateOfAnotherCaIsRefused) {
  auto forged = rogue_->Issue("forged-alice", "alice", {});
  ASSERT_TRUE(forged.ok()) << forged.status();
  auto stub = Client(&*forged, nullptr);
  v1::ListModelsResponse models;
  EXPECT_EQ(ListModels(stub.get(), &models).error_code(),
            grpc::StatusCode::UNAVAILABLE);
}

TEST_F(ApiSecurityTest, ExpiredCertificateIsRefused) {
  auto expired = ca_->Issue("expired-alice", "alice", {}, -absl::Hours(48),
                            -absl::Hours(24));
  ASSERT_TRUE(expired.ok()) << expired.status();
  auto stub = Client(&*expired, nullptr);
  v1::ListModelsResponse models;
  EXPECT_EQ(ListModels(stub.get(), &models).error_code(),
            grpc::StatusCode::UNAVAILABLE);
}

TEST_F(ApiSecurityTest, CallWithoutCredentialIsUnauthenticated) {
  auto stub = Client(nullptr, nullptr);
  v1::ListModelsResponse models;
  grpc::Status status = ListModels(stub.get(), &models);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(status.error_message(), HasSubstr("bearer token"));
}

TEST_F(ApiSecurityTest, UnknownTokenIsUnauthenticated) {
  auto stub = Client(nullptr, "not-a-token");
  v1::ListModelsResponse models;
  grpc::Status status = ListModels(stub.get(), &models);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(status.error_message(), HasSubstr("not recognised"));
}

TEST_F(ApiSecurityTest, CertificateNoPrincipalNamesIsDenied) {
  auto mallory = ca_->Issue("mallory", "mallory", {});
  ASSERT_TRUE(mallory.ok()) << mallory.status();
  auto stub = Client(&*mallory, nullptr);
  v1::ListModelsResponse models;
  grpc::Status status = ListModels(stub.get(), &models);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(status.error_message(), HasSubstr("mallory"));
}

TEST_F(ApiSecurityTest, MissingRoleIsNamed) {
  stub_ = Client(&alice_, nullptr);
  ASSERT_NO_FATAL_FAILURE(CreateTrainedModel("m"));
  stub_ = Client(nullptr, kReaderToken);
  v1::DeletionReceipt receipt;
  grpc::Status status = Delete("m", {"sample-1000"}, "", &receipt);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(status.error_message(),
              HasSubstr("DeleteSamples needs role eraser"));
  EXPECT_THAT(status.error_message(), HasSubstr("'reader-bot' has reader"));
  // What the role allows still works.
  v1::Model model;
  EXPECT_TRUE(GetModel("m", &model).ok());
  v1::PredictResponse prediction;
  EXPECT_TRUE(Predict("m", 1,
                      std::vector<float>(testing_util::kTinyWidth, 0.5f),
                      &prediction)
                  .ok());
  // Nothing was deleted.
  EXPECT_EQ(model.active_samples(), 60);
  // Score and Generate are the reader's too: they reach the engine, which
  // says this image model is not a language model.
  v1::ScoreRequest score;
  score.set_model_id("m");
  v1::TokenSequence* sequence = score.add_sequences();
  sequence->add_tokens(1);
  sequence->add_tokens(2);
  v1::ScoreResponse scored;
  status = Call(&v1::Oubli::Stub::Score, score, &scored);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(),
              HasSubstr("needs a causal language model"));
  v1::GenerateRequest generate;
  generate.set_model_id("m");
  generate.add_prompt(1);
  generate.set_max_tokens(1);
  v1::GenerateResponse generated;
  status = Call(&v1::Oubli::Stub::Generate, generate, &generated);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(),
              HasSubstr("needs a causal language model"));
  // The eraser may delete, but not read predictions, scores or generations.
  stub_ = Client(nullptr, kEraserToken);
  EXPECT_TRUE(Delete("m", {"sample-1000"}, "", &receipt).ok());
  EXPECT_EQ(Predict("m", 1, std::vector<float>(testing_util::kTinyWidth, 0.5f),
                    &prediction)
                .error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  status = Call(&v1::Oubli::Stub::Score, score, &scored);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(status.error_message(), HasSubstr("Score needs role reader"));
  status = Call(&v1::Oubli::Stub::Generate, generate, &generated);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(status.error_message(), HasSubstr("Generate needs role reader"));
}

TEST_F(ApiSecurityTest, ModelScopeLimitsEveryCall) {
  stub_ = Client(nullptr, kTeamToken);
  v1::Model model;
  ASSERT_TRUE(Create("team-a-1", TinyConfig(), &model).ok());
  grpc::Status status = Create("team-b-1", TinyConfig(), &model);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(status.error_message(), HasSubstr("for model 'team-b-1'"));
  stub_ = Client(&alice_, nullptr);
  ASSERT_TRUE(Create("team-b-1", TinyConfig(), &model).ok());

  stub_ = Client(nullptr, kTeamToken);
  v1::ListModelsResponse models;
  ASSERT_TRUE(ListModels(stub_.get(), &models).ok());
  ASSERT_EQ(models.models_size(), 1);
  EXPECT_EQ(models.models(0).model_id(), "team-a-1");
  // The ingest stream names its model in its first message.
  v1::IngestSamplesResponse ingested;
  EXPECT_EQ(Ingest("team-b-1", {TinySamples(5)}, &ingested).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(Ingest("team-a-1", {TinySamples(5)}, &ingested).ok());
  EXPECT_EQ(GetModel("team-b-1", &model).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  // A malformed id is refused before it reaches the audit log.
  std::string hostile;
  for (int i = 0; i < 50000; ++i) hostile += "\xc3\xa9";  // é: valid UTF-8
  EXPECT_EQ(GetModel(hostile, &model).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_LT(std::filesystem::file_size(root_ / "audit.log"), 10000u);
  // Cluster-wide calls need a principal without a model list.
  v1::RetiredWorker retired;
  v1::RetireWorkerRequest retire;
  retire.set_name("w");
  status = Call(&v1::Oubli::Stub::RetireWorker, retire, &retired);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(status.error_message(), HasSubstr("for every model"));

  stub_ = Client(&alice_, nullptr);
  ASSERT_TRUE(GetModel("team-b-1", &model).ok());
  EXPECT_EQ(model.active_samples(), 0);  // the refused stream stored nothing
}

TEST_F(ApiSecurityTest, RefusalsAreCountedByCode) {
  server_.reset();
  CoordinatorServer::Options options = ServerOptions();
  options.metrics_listen_address = "127.0.0.1:0";
  auto server = CoordinatorServer::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  server_ = *std::move(server);
  address_ = absl::StrCat("127.0.0.1:", server_->port());
  stub_ = Client(nullptr, kReaderToken);
  v1::DeletionReceipt receipt;
  ASSERT_EQ(Delete("m", {"sample-1000"}, "", &receipt).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  stub_ = Client(nullptr, nullptr);
  v1::ListModelsResponse models;
  ASSERT_EQ(ListModels(stub_.get(), &models).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  const std::string metrics =
      testing_util::HttpGet(server_->metrics_address(), "/metrics");
  EXPECT_EQ(testing_util::MetricValue(
                metrics,
                "oubli_grpc_server_handled_total{code=\"PERMISSION_DENIED\","
                "method=\"DeleteSamples\"}"),
            1);
  EXPECT_EQ(testing_util::MetricValue(
                metrics,
                "oubli_grpc_server_handled_total{code=\"UNAUTHENTICATED\","
                "method=\"ListModels\"}"),
            1);
}

TEST_F(ApiSecurityTest, AuditLogHasMutatingAndRefusedCallsWithoutPayloads) {
  stub_ = Client(&alice_, nullptr);
  ASSERT_NO_FATAL_FAILURE(CreateTrainedModel("m"));
  v1::DeletionReceipt receipt;
  ASSERT_TRUE(Delete("m", {"sample-1007"}, "", &receipt).ok());
  v1::Model model;
  ASSERT_TRUE(GetModel("m", &model).ok());  // not mutating: not audited
  stub_ = Client(nullptr, kReaderToken);
  ASSERT_EQ(Delete("m", {"sample-1008"}, "", &receipt).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  stub_ = Client(nullptr, "wrong");
  ASSERT_EQ(GetModel("m", &model).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);

  const std::string log = ReadFile(root_ / "audit.log");
  EXPECT_THAT(log, HasSubstr(R"("caller":"alice")"));
  EXPECT_THAT(log,
              HasSubstr(R"("rpc":"CreateModel","model_id":"m","code":"OK")"));
  EXPECT_THAT(log,
              HasSubstr(R"("rpc":"IngestSamples","model_id":"m","code":"OK")"));
  EXPECT_THAT(log,
              HasSubstr(R"("rpc":"DeleteSamples","model_id":"m","code":"OK")"));
  EXPECT_THAT(log, HasSubstr(R"("caller":"reader-bot")"));
  EXPECT_THAT(
      log,
      HasSubstr(
          R"("rpc":"DeleteSamples","model_id":"m","code":"PERMISSION_DENIED")"));
  EXPECT_THAT(
      log,
      HasSubstr(R"("rpc":"GetModel","model_id":"m","code":"UNAUTHENTICATED")"));
  EXPECT_THAT(log,
              Not(HasSubstr(R"("rpc":"GetModel","model_id":"m","code":"OK")")));
  EXPECT_THAT(log, Not(HasSubstr("sample-10")));  // never sample ids
  EXPECT_THAT(log, Not(HasSubstr("owner-")));
}

TEST_F(ApiSecurityTest, PolicyChangeAppliesWithoutRestart) {
  stub_ = Client(&alice_, nullptr);
  ASSERT_NO_FATAL_FAILURE(CreateTrainedModel("m"));
  stub_ = Client(nullptr, kReaderToken);
  v1::DeletionReceipt receipt;
  ASSERT_EQ(Delete("m", {"sample-1000"}, "", &receipt).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  WriteFile(root_ / "policy.textproto", PolicyText(/*reader_may_erase=*/true));
  grpc::Status status;
  for (int attempt = 0; attempt < 200; ++attempt) {  // hang guard: 20 s
    status = Delete("m", {"sample-1000"}, "", &receipt);
    if (status.error_code() != grpc::StatusCode::PERMISSION_DENIED) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(status.ok()) << status.error_message();
  // A policy that no longer parses keeps the last good one.
  WriteFile(root_ / "policy.textproto", "principal { name: ");
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  v1::Model model;
  EXPECT_TRUE(GetModel("m", &model).ok());
}

TEST_F(ApiSecurityTest, RotatedServerCertificateIsServedWithoutRestart) {
  auto next_ca = TestCa::Create(root_, "next");
  ASSERT_TRUE(next_ca.ok()) << next_ca.status();
  auto next = (*next_ca)->Issue("coordinator-next", "oubli-coordinator",
                                {"oubli-coordinator", "localhost"});
  ASSERT_TRUE(next.ok()) << next.status();
  // A client trusting only the next CA cannot connect yet.
  auto before = Client(&alice_, nullptr, (*next_ca)->cert_path());
  v1::ListModelsResponse models;
  ASSERT_EQ(ListModels(before.get(), &models).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  // cert-manager replaces the files in place.
  WriteFile(server_cert_.key, ReadFile(next->key));
  WriteFile(server_cert_.cert, ReadFile(next->cert));
  grpc::Status status;
  for (int attempt = 0; attempt < 120; ++attempt) {  // hang guard: 60 s
    auto stub = Client(&alice_, nullptr, (*next_ca)->cert_path());
    status = ListModels(stub.get(), &models);
    if (status.ok()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  EXPECT_TRUE(status.ok()) << status.error_message();
}

TEST_F(ApiSecurityTest, RotatedClientCaAppliesWithoutRestart) {
  // The server trusts callers by a CA bundle of its own file; a caller of
  // a second CA is refused until the bundle names that CA too.
  server_.reset();
  const std::filesystem::path bundle = root_ / "client-ca.pem";
  WriteFile(bundle, ReadFile(ca_->cert_path()));
  CoordinatorServer::Options options = ServerOptions();
  options.tls.client_ca = bundle.string();
  auto started = CoordinatorServer::Start(options);
  ASSERT_TRUE(started.ok()) << started.status();
  server_ = *std::move(started);
  address_ = absl::StrCat("127.0.0.1:", server_->port());
  auto newcomer = rogue_->Issue("alice-next", "alice", {});
  ASSERT_TRUE(newcomer.ok()) << newcomer.status();
  v1::ListModelsResponse models;
  ASSERT_EQ(ListModels(Client(&*newcomer, nullptr).get(), &models).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  ASSERT_TRUE(ListModels(Client(&alice_, nullptr).get(), &models).ok());
  // The bundle is replaced in place, as cert-manager does.
  WriteFile(bundle, ReadFile(ca_->cert_path()) + ReadFile(rogue_->cert_path()));
  grpc::Status status;
  for (int attempt = 0; attempt < 120; ++attempt) {  // hang guard: 60 s
    status = ListModels(Client(&*newcomer, nullptr).get(), &models);
    if (status.ok()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  EXPECT_TRUE(status.ok()) << status.error_message();
  // The first CA's callers still get in.
  EXPECT_TRUE(ListModels(Client(&alice_, nullptr).get(), &models).ok());
}

TEST_F(ApiSecurityTest, BadFilesFailTheStartNamingTheFlag) {
  server_.reset();
  CoordinatorServer::Options options = ServerOptions();
  options.tls.key = alice_.key;  // another certificate's key
  auto started = CoordinatorServer::Start(options);
  ASSERT_FALSE(started.ok());
  EXPECT_THAT(started.status().message(), HasSubstr("--tls_key"));

  options = ServerOptions();
  auto expired = ca_->Issue("expired-server", "oubli-coordinator",
                            {"localhost"}, -absl::Hours(48), -absl::Hours(1));
  ASSERT_TRUE(expired.ok());
  options.tls.cert = expired->cert;
  options.tls.key = expired->key;
  started = CoordinatorServer::Start(options);
  ASSERT_FALSE(started.ok());
  EXPECT_THAT(started.status().message(), HasSubstr("expired"));

  options = ServerOptions();
  options.tls.client_ca = (root_ / "tokens").string();  // not PEM
  started = CoordinatorServer::Start(options);
  ASSERT_FALSE(started.ok());
  EXPECT_THAT(started.status().message(), HasSubstr("--tls_client_ca"));

  options = ServerOptions();
  options.workers.tls.server_name.clear();  // nothing to tell workers by
  started = CoordinatorServer::Start(options);
  ASSERT_FALSE(started.ok());
  EXPECT_THAT(started.status().message(), HasSubstr("--tls_worker_name"));
  // A shared token is no substitute under TLS (plaintext loopback only).
  options.workers.cluster_token = "shared-secret";
  started = CoordinatorServer::Start(options);
  ASSERT_FALSE(started.ok());
  EXPECT_THAT(started.status().message(),
              HasSubstr("a cluster token does not replace it"));

  options = ServerOptions();
  options.policy_file.clear();
  started = CoordinatorServer::Start(options);
  ASSERT_FALSE(started.ok());
  EXPECT_THAT(started.status().message(),
              HasSubstr("token file needs a policy"));

  WriteFile(root_ / "bad-policy", "principal { name: \"x\" roles: \"root\" }");
  options = ServerOptions();
  options.policy_file = (root_ / "bad-policy").string();
  started = CoordinatorServer::Start(options);
  ASSERT_FALSE(started.ok());
  EXPECT_THAT(started.status().message(), HasSubstr("unknown role 'root'"));
}

TEST(AccessPolicyTest, EveryRpcOfThePublicApiHasARule) {
  const google::protobuf::ServiceDescriptor* service =
      google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(
          "oubli.v1.Oubli");
  ASSERT_NE(service, nullptr);
  for (int i = 0; i < service->method_count(); ++i) {
    EXPECT_NE(AccessOf(service->method(i)->name()), nullptr)
        << service->method(i)->name() << " has no access rule";
  }
  EXPECT_EQ(static_cast<int>(AllRpcAccess().size()), service->method_count());
}

TEST(AccessPolicyTest, ParseRefusesMalformedFilesPrecisely) {
  struct Case {
    std::string policy;
    std::string tokens;
    std::string error;
  };
  const std::string digest = Sha256Hex("t");
  for (const Case& c : std::vector<Case>{
           {"principal { name: ", "", "policy: line 1"},
           {"principal { roles: \"reader\" }", "", "principal 1 has no name"},
           {"principal { name: \"a\" }", "", "has no roles"},
           {"principal { name: \"a\" roles: \"root\" }", "", "unknown role"},
           {"principal { name: \"a\" roles: \"reader\" models: \"a*b\" }", "",
            "must be a model id or a prefix ending in '*'"},
           {"principal { name: \"a\" roles: \"reader\" } "
            "principal { name: \"a\" roles: \"admin\" }",
            "", "appears twice"},
           {"", "a b c", "tokens: line 1"},
           {"", "a 1234", "tokens: line 1"},
           {"", absl::StrCat("a ", digest, "\nb ", digest), "tokens: line 2"},
       }) {
    absl::StatusOr<AccessPolicy> policy =
        AccessPolicy::Parse(c.policy, c.tokens);
    ASSERT_FALSE(policy.ok()) << c.policy << " / " << c.tokens;
    EXPECT_EQ(policy.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(policy.status().message(), HasSubstr(c.error));
  }
}

TEST(AccessPolicyTest, TokenNamesAPrincipalAndCertificatesNeedOne) {
  auto policy = AccessPolicy::Parse(
      "principal { name: \"bot\" roles: \"reader\" models: \"m1\" }",
      absl::StrCat("bot ", Sha256Hex("secret"), "\nghost ", Sha256Hex("other"),
                   "\n"));
  ASSERT_TRUE(policy.ok()) << policy.status();
  CallCredentials token;
  token.bearer_token = "secret";
  token.certificate_names = {"ignored-when-a-token-is-given"};
  EXPECT_EQ(*policy->Authenticate(token), "bot");
  token.bearer_token = "other";  // a token whose name has no principal
  EXPECT_EQ(policy->Authenticate(token).status().code(),
            absl::StatusCode::kPermissionDenied);
  CallCredentials certificate;
  certificate.certificate_names = {"x", "bot"};
  EXPECT_EQ(*policy->Authenticate(certificate), "bot");
  EXPECT_EQ(policy->Authenticate(CallCredentials()).status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_TRUE(policy->Authorize("bot", *AccessOf("Predict"), "m1").ok());
  EXPECT_FALSE(policy->Authorize("bot", *AccessOf("Predict"), "m10").ok());
  EXPECT_FALSE(policy->Authorize("bot", *AccessOf("Verify"), "m1").ok());
}

TEST(AuditLogTest, RotatesBySizeKeepingTheNewestFiles) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() /
      ("oubli-audit-test-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  AuditLog::Options options;
  options.path = (dir / "audit.log").string();
  options.max_bytes = 1024;
  options.keep_files = 2;
  auto log = AuditLog::Open(options);
  ASSERT_TRUE(log.ok()) << log.status();
  for (int i = 0; i < 100; ++i) {
    AuditEntry entry;
    entry.time = absl::FromUnixSeconds(i);
    entry.caller = absl::StrCat("caller-", i);
    entry.rpc = "DeleteSamples";
    entry.model_id = "m";
    (*log)->Record(entry);
  }
  EXPECT_TRUE(std::filesystem::exists(dir / "audit.log.1"));
  EXPECT_TRUE(std::filesystem::exists(dir / "audit.log.2"));
  EXPECT_FALSE(std::filesystem::exists(dir / "audit.log.3"));
  const std::string newest = ReadFile(dir / "audit.log");
  EXPECT_THAT(newest, HasSubstr("\"caller-99\""));
  EXPECT_LE(newest.size(), 1024u);
  EXPECT_THAT(AuditEntryJson(AuditEntry{absl::UnixEpoch(), "a\"b\n", "", "r",
                                        "", absl::StatusCode::kOk}),
              HasSubstr(R"("caller":"a\"b\u000a")"));
  // A field is cut at 256 bytes: no caller makes lines arbitrarily long.
  EXPECT_THAT(AuditEntryJson(AuditEntry{absl::UnixEpoch(),
                                        std::string(10000, 'x'), "", "r", "",
                                        absl::StatusCode::kOk}),
              HasSubstr(std::string(256, 'x') + "...\""));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace oubli::coordinator
