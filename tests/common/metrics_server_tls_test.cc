// The metrics endpoint over HTTPS: served with the certificate it was
// given, refused to plaintext and to clients that do not trust it, with a
// client certificate required when a client CA is set, and replaced files
// (certificate, client CA) applied from the next connection on.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "common/metrics_server.h"
#include "tests/testing/server_process.h"
#include "tests/testing/test_pki.h"
#include "tests/testing/test_util.h"

namespace oubli {
namespace {

using ::testing::HasSubstr;
using testing_util::HttpsGet;
using testing_util::PemPair;
using testing_util::TestCa;

class MetricsServerTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto ca = TestCa::Create(dir_.path(), "metrics");
    ASSERT_TRUE(ca.ok()) << ca.status();
    ca_ = *std::move(ca);
    auto server = ca_->Issue("server", "oubli-coordinator", {"localhost"});
    ASSERT_TRUE(server.ok()) << server.status();
    server_cert_ = *server;
  }

  testing_util::ScopedTempDir dir_;
  std::unique_ptr<TestCa> ca_;
  PemPair server_cert_;
};

TEST_F(MetricsServerTlsTest, ServesHttpsOnlyToClientsThatTrustIt) {
  TlsServerFiles tls;
  tls.cert = server_cert_.cert;
  tls.key = server_cert_.key;
  auto server = MetricsServer::Start(
      "127.0.0.1:0", [] { return std::string("a 1\n"); }, tls);
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->port();
  EXPECT_THAT(HttpsGet(port, ca_->cert_path()), HasSubstr("\r\n\r\na 1\n"));
  EXPECT_EQ(testing_util::HttpGet((*server)->address(), "/metrics"), "");
  auto other = TestCa::Create(dir_.path(), "other");
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(HttpsGet(port, (*other)->cert_path()), "");

  // Replaced in place: the next connection gets the new certificate.
  auto next = (*other)->Issue("next", "oubli-coordinator", {"localhost"});
  ASSERT_TRUE(next.ok());
  testing_util::WriteWholeFile(server_cert_.key,
                               testing_util::ReadWholeFile(next->key));
  testing_util::WriteWholeFile(server_cert_.cert,
                               testing_util::ReadWholeFile(next->cert));
  EXPECT_THAT(HttpsGet(port, (*other)->cert_path()), HasSubstr("a 1"));
  EXPECT_EQ(HttpsGet(port, ca_->cert_path()), "");
}

// The server must not write to a connection the peer reset: in a process
// that does not ignore SIGPIPE (this test), that write would kill it.
TEST_F(MetricsServerTlsTest, APeerThatResetsDoesNotStopTheServer) {
  TlsServerFiles tls;
  tls.cert = server_cert_.cert;
  tls.key = server_cert_.key;
  auto server = MetricsServer::Start(
      "127.0.0.1:0", [] { return std::string("a 1\n"); }, tls);
  ASSERT_TRUE(server.ok()) << server.status();
  for (int i = 0; i < 5; ++i) {
    HttpsGet((*server)->port(), ca_->cert_path(), nullptr, "localhost",
             /*reset_after_handshake=*/true);
  }
  EXPECT_THAT(HttpsGet((*server)->port(), ca_->cert_path()), HasSubstr("a 1"));
}

TEST_F(MetricsServerTlsTest, AClientCaRequiresAClientCertificate) {
  auto scraper = ca_->Issue("prometheus", "prometheus", {});
  ASSERT_TRUE(scraper.ok());
  TlsServerFiles tls;
  tls.cert = server_cert_.cert;
  tls.key = server_cert_.key;
  tls.client_ca = ca_->cert_path();
  auto server = MetricsServer::Start(
      "127.0.0.1:0", [] { return std::string("a 1\n"); }, tls);
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_EQ(HttpsGet((*server)->port(), ca_->cert_path()), "");
  EXPECT_THAT(HttpsGet((*server)->port(), ca_->cert_path(), &*scraper),
              HasSubstr("a 1"));
}

// Rotation without a restart: a replaced client CA applies from the next
// connection on, and a replacement that does not load (the key of another
// certificate) leaves the previous certificate serving.
TEST_F(MetricsServerTlsTest, RotatedFilesApplyWithoutARestart) {
  // The server notices a change by modification time and size; a
  // different size makes it certain however fast the test runs.
  const auto replace = [](const std::string& path, std::string content) {
    if (content.size() == testing_util::ReadWholeFile(path).size()) {
      content += "\n";
    }
    testing_util::WriteWholeFile(path, content);
  };
  auto other = TestCa::Create(dir_.path(), "other");
  ASSERT_TRUE(other.ok());
  auto scraper = ca_->Issue("prometheus", "prometheus", {});
  ASSERT_TRUE(scraper.ok());
  auto new_scraper = (*other)->Issue("prometheus-2", "prometheus", {});
  ASSERT_TRUE(new_scraper.ok());
  const std::string client_ca = (dir_.path() / "scrapers-ca.pem").string();
  testing_util::WriteWholeFile(client_ca,
                               testing_util::ReadWholeFile(ca_->cert_path()));
  TlsServerFiles tls;
  tls.cert = server_cert_.cert;
  tls.key = server_cert_.key;
  tls.client_ca = client_ca;
  auto server = MetricsServer::Start(
      "127.0.0.1:0", [] { return std::string("a 1\n"); }, tls);
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->port();
  EXPECT_THAT(HttpsGet(port, ca_->cert_path(), &*scraper), HasSubstr("a 1"));
  EXPECT_EQ(HttpsGet(port, ca_->cert_path(), &*new_scraper), "");

  replace(client_ca, testing_util::ReadWholeFile((*other)->cert_path()));
  EXPECT_EQ(HttpsGet(port, ca_->cert_path(), &*scraper), "");
  EXPECT_THAT(HttpsGet(port, ca_->cert_path(), &*new_scraper),
              HasSubstr("a 1"));

  replace(server_cert_.key, testing_util::ReadWholeFile(new_scraper->key));
  EXPECT_THAT(HttpsGet(port, ca_->cert_path(), &*new_scraper),
              HasSubstr("a 1"));
}

TEST_F(MetricsServerTlsTest, BadFilesFailTheStart) {
  TlsServerFiles tls;
  tls.cert = server_cert_.cert;
  tls.key = (dir_.path() / "missing.key").string();
  auto server = MetricsServer::Start(
      "127.0.0.1:0", [] { return std::string(); }, tls);
  ASSERT_FALSE(server.ok());
  EXPECT_THAT(server.status().message(), HasSubstr("--tls_key"));
}

}  // namespace
}  // namespace oubli
