#include "tests/testing/test_pki.h"

#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace oubli::testing_util {
namespace {

EVP_PKEY* NewKey() { return EVP_EC_gen("P-256"); }

bool AddExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX context;
  X509V3_set_ctx_nodb(&context);
  X509V3_set_ctx(&context, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* extension =
      X509V3_EXT_conf_nid(nullptr, &context, nid, value.c_str());
  if (extension == nullptr) return false;
  const bool added = X509_add_ext(cert, extension, -1) == 1;
  X509_EXTENSION_free(extension);
  return added;
}

absl::Status WritePem(const std::string& path, X509* cert, EVP_PKEY* key) {
  FILE* file = std::fopen(path.c_str(), "w");
  if (file == nullptr) return absl::InternalError("cannot write " + path);
  const bool ok = cert != nullptr
                      ? PEM_write_X509(file, cert) == 1
                      : PEM_write_PrivateKey(file, key, nullptr, nullptr, 0,
                                             nullptr, nullptr) == 1;
  std::fclose(file);
  return ok ? absl::OkStatus() : absl::InternalError("cannot write " + path);
}

// A certificate for `key` named `common_name`, signed by `issuer_key`
// (`issuer` null: self-signed).
X509* NewCertificate(EVP_PKEY* key, const std::string& common_name,
                     X509* issuer, EVP_PKEY* issuer_key, long serial,
                     absl::Duration not_before, absl::Duration not_after) {
  X509* cert = X509_new();
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), serial);
  X509_gmtime_adj(X509_getm_notBefore(cert), absl::ToInt64Seconds(not_before));
  X509_gmtime_adj(X509_getm_notAfter(cert), absl::ToInt64Seconds(not_after));
  X509_set_pubkey(cert, key);
  X509_NAME* name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(
      name, "CN", MBSTRING_ASC,
      reinterpret_cast<const unsigned char*>(common_name.c_str()), -1, -1, 0);
  X509_set_issuer_name(
      cert, issuer != nullptr ? X509_get_subject_name(issuer) : name);
  return cert;
}

}  // namespace

struct TestCa::Keys {
  EVP_PKEY* key = nullptr;
  X509* cert = nullptr;
  long next_serial = 2;
  ~Keys() {
    X509_free(cert);
    EVP_PKEY_free(key);
  }
};

TestCa::~TestCa() = default;

absl::StatusOr<std::unique_ptr<TestCa>> TestCa::Create(
    const std::filesystem::path& dir, const std::string& name) {
  std::unique_ptr<TestCa> ca(new TestCa());
  ca->dir_ = dir;
  ca->keys_ = std::make_unique<Keys>();
  Keys& keys = *ca->keys_;
  keys.key = NewKey();
  if (keys.key == nullptr) return absl::InternalError("EC key generation");
  keys.cert = NewCertificate(keys.key, name, nullptr, keys.key, 1,
                             -absl::Hours(1), absl::Hours(24 * 30));
  if (!AddExtension(keys.cert, keys.cert, NID_basic_constraints,
                    "critical,CA:TRUE") ||
      !AddExtension(keys.cert, keys.cert, NID_key_usage,
                    "critical,keyCertSign,cRLSign") ||
      !AddExtension(keys.cert, keys.cert, NID_subject_key_identifier, "hash") ||
      X509_sign(keys.cert, keys.key, EVP_sha256()) == 0) {
    return absl::InternalError("signing the CA certificate");
  }
  ca->cert_path_ = (dir / (name + "-ca.pem")).string();
  if (absl::Status s = WritePem(ca->cert_path_, keys.cert, nullptr); !s.ok()) {
    return s;
  }
  return ca;
}

absl::StatusOr<PemPair> TestCa::Issue(const std::string& stem,
                                      const std::string& common_name,
                                      const std::vector<std::string>& dns_names,
                                      absl::Duration not_before,
                                      absl::Duration not_after) {
  EVP_PKEY* key = NewKey();
  if (key == nullptr) return absl::InternalError("EC key generation");
  X509* cert = NewCertificate(key, common_name, keys_->cert, keys_->key,
                              keys_->next_serial++, not_before, not_after);
  std::vector<std::string> names;
  for (const std::string& dns : dns_names) names.push_back("DNS:" + dns);
  names.push_back("IP:127.0.0.1");
  const bool signed_ok =
      AddExtension(cert, keys_->cert, NID_basic_constraints, "CA:FALSE") &&
      AddExtension(cert, keys_->cert, NID_ext_key_usage,
                   "serverAuth,clientAuth") &&
      AddExtension(cert, keys_->cert, NID_subject_alt_name,
                   absl::StrJoin(names, ",")) &&
      AddExtension(cert, keys_->cert, NID_authority_key_identifier, "keyid") &&
      X509_sign(cert, keys_->key, EVP_sha256()) != 0;
  PemPair pair;
  pair.cert = (dir_ / (stem + ".pem")).string();
  pair.key = (dir_ / (stem + ".key")).string();
  absl::Status status = signed_ok ? WritePem(pair.cert, cert, nullptr)
                                  : absl::InternalError("signing " + stem);
  if (status.ok()) status = WritePem(pair.key, nullptr, key);
  X509_free(cert);
  EVP_PKEY_free(key);
  if (!status.ok()) return status;
  return pair;
}

std::string HttpsGet(int port, const std::string& ca, const PemPair* client,
                     const std::string& server_name,
                     bool reset_after_handshake) {
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
  SSL_set1_host(ssl, server_name.c_str());
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

}  // namespace oubli::testing_util
