#include "common/tls_files.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/file_util.h"

namespace oubli {
namespace {

struct BioDeleter {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct X509Deleter {
  void operator()(X509* cert) const { X509_free(cert); }
};
struct KeyDeleter {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
using UniqueBio = std::unique_ptr<BIO, BioDeleter>;
using UniqueX509 = std::unique_ptr<X509, X509Deleter>;
using UniqueKey = std::unique_ptr<EVP_PKEY, KeyDeleter>;

absl::Status FlagError(absl::string_view flag, absl::string_view path,
                       absl::string_view what) {
  ERR_clear_error();
  return absl::InvalidArgumentError(
      absl::StrCat("--", flag, " ", path, ": ", what));
}

absl::Status ReadPem(absl::string_view flag, const std::string& path,
                     std::string* pem) {
  absl::StatusOr<std::string> read = ReadFile(path);
  if (!read.ok()) return FlagError(flag, path, "cannot read the file");
  *pem = *std::move(read);
  if (pem->find("-----BEGIN ") == std::string::npos) {
    return FlagError(flag, path, "not a PEM file");
  }
  return absl::OkStatus();
}

// The certificates of a PEM bundle, in file order; an error names the flag.
absl::Status ReadCertificates(absl::string_view flag, const std::string& path,
                              std::vector<UniqueX509>* certificates) {
  std::string pem;
  if (absl::Status s = ReadPem(flag, path, &pem); !s.ok()) return s;
  UniqueBio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  while (X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    certificates->emplace_back(cert);
  }
  ERR_clear_error();  // the read that ended the loop
  if (certificates->empty()) {
    return FlagError(flag, path, "holds no PEM certificate");
  }
  return absl::OkStatus();
}

absl::Status CheckValidNow(absl::string_view flag, const std::string& path,
                           X509* cert) {
  if (X509_cmp_current_time(X509_get0_notBefore(cert)) > 0) {
    return FlagError(flag, path, "the certificate is not valid yet");
  }
  if (X509_cmp_current_time(X509_get0_notAfter(cert)) < 0) {
    return FlagError(flag, path, "the certificate has expired");
  }
  return absl::OkStatus();
}

absl::Status CheckIdentity(absl::string_view cert_flag,
                           const std::string& cert_path,
                           absl::string_view key_flag,
                           const std::string& key_path) {
  if (cert_path.empty() != key_path.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--", cert_flag, " and --", key_flag, " must be given together"));
  }
  if (cert_path.empty()) return absl::OkStatus();
  std::vector<UniqueX509> chain;
  if (absl::Status s = ReadCertificates(cert_flag, cert_path, &chain);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckValidNow(cert_flag, cert_path, chain[0].get());
      !s.ok()) {
    return s;
  }
  std::string pem;
  if (absl::Status s = ReadPem(key_flag, key_path, &pem); !s.ok()) return s;
  UniqueBio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  UniqueKey key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (key == nullptr) {
    return FlagError(key_flag, key_path,
                     "holds no PEM private key (or it is encrypted)");
  }
  if (X509_check_private_key(chain[0].get(), key.get()) != 1) {
    return FlagError(
        key_flag, key_path,
        absl::StrCat("is not the key of the certificate in ", cert_path));
  }
  return absl::OkStatus();
}

absl::Status CheckCaBundle(absl::string_view flag, const std::string& path) {
  if (path.empty()) return absl::OkStatus();
  std::vector<UniqueX509> certificates;
  return ReadCertificates(flag, path, &certificates);
}

}  // namespace

absl::Status CheckTlsServerFiles(const TlsServerFiles& files) {
  if (!files.enabled()) {
    if (!files.key.empty() || !files.client_ca.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--tls_key and --", files.client_ca_flag, " need --tls_cert"));
    }
    return absl::OkStatus();
  }
  if (files.key.empty()) {
    return absl::InvalidArgumentError("--tls_cert needs --tls_key");
  }
  if (absl::Status s =
          CheckIdentity("tls_cert", files.cert, "tls_key", files.key);
      !s.ok()) {
    return s;
  }
  return CheckCaBundle(files.client_ca_flag, files.client_ca);
}

absl::Status CheckTlsDialFiles(const TlsDialFiles& files, const char* ca_flag) {
  if (!files.enabled()) {
    if (!files.cert.empty() || !files.key.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "a client certificate needs --", ca_flag, " (the servers' CA)"));
    }
    return absl::OkStatus();
  }
  if (absl::Status s = CheckCaBundle(ca_flag, files.ca); !s.ok()) return s;
  return CheckIdentity("tls_cert", files.cert, "tls_key", files.key);
}

}  // namespace oubli
