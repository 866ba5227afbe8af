#include "tests/testing/test_pki.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

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

}  // namespace oubli::testing_util
