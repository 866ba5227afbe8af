// The metrics endpoint over HTTPS: served with the certificate it was
// given, refused to plaintext and to clients that do not trust it, with a
// client certificate required when a client CA is set, and a replaced
// certificate served from the next connection on.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "common/metrics_server.h"
#include "tests/testing/server_process.h"
#include "tests/testing/test_pki.h"
#include "tests/testing/test_util.h"

namespace oubli {
namespace {

using ::testing::HasSubstr;
using testing_util::PemPair;
using testing_util::TestCa;

// GET /metrics over TLS to 127.0.0.1:`port`, trusting `ca` and checking
// the name "localhost"; presents `client` when given. "" on any failure.
std::string HttpsGet(int port, const std::string& ca,
                     const PemPair* client = nullptr,
                     bool reset_after_handshake = false) {
  SSL_CTX* context = SSL_CTX_new(TLS_client_method());
  SSL_CTX_load_verify_locations(context, ca.c_str(), nullptr);
  SSL_CTX_set_verify(context, SSL_VERIFY_PEER, nullptr);
  if (client != nullptr) {
    SSL_CTX_use_certificate_chain_file(context, client->cert.c_str());
    SSL_CTX_use_PrivateKey_file(context, client->key.c_str(), SSL_FILETYPE_PEM);
  }
  std::string body;
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address = {};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  SSL* ssl = SSL_new(context);
  SSL_set1_host(ssl, "localhost");
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) ==
          0 &&
      SSL_set_fd(ssl, fd) == 1 && SSL_connect(ssl) == 1 &&
      !reset_after_handshake) {
    const std::string request = "GET /metrics HTTP/1.0\r\n\r\n";
    SSL_write(ssl, request.data(), static_cast<int>(request.size()));
    char buffer[4096];
    int n;
    while ((n = SSL_read(ssl, buffer, sizeof(buffer))) > 0) {
      body.append(buffer, static_cast<size_t>(n));
    }
  }
  if (reset_after_handshake) {
    const linger abort = {1, 0};  // close sends RST
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &abort, sizeof(abort));
  }
  SSL_free(ssl);
  ::close(fd);
  SSL_CTX_free(context);
  ERR_clear_error();
  return body;
}

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
    HttpsGet((*server)->port(), ca_->cert_path(), nullptr,
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
