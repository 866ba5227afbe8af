#include "common/signing_key.h"

#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/hash.h"

namespace oubli {
namespace {

struct PkeyDeleter {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
using UniquePkey = std::unique_ptr<EVP_PKEY, PkeyDeleter>;

std::string BioText(BIO* bio) {
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<size_t>(size));
}

std::string PublicPem(EVP_PKEY* key) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PUBKEY(bio, key);
  std::string pem = BioText(bio);
  BIO_free(bio);
  return pem;
}

std::string KeyId(EVP_PKEY* key) {
  unsigned char* der = nullptr;
  const int size = i2d_PUBKEY(key, &der);
  std::string id =
      Sha256Hex(absl::string_view(reinterpret_cast<const char*>(der),
                                  static_cast<size_t>(std::max(size, 0))))
          .substr(0, 16);
  OPENSSL_free(der);
  return id;
}

}  // namespace

struct SigningKey::Key {
  UniquePkey pkey;
};
struct VerifyingKey::Key {
  UniquePkey pkey;
};

SigningKey::~SigningKey() = default;
VerifyingKey::~VerifyingKey() = default;

absl::StatusOr<std::unique_ptr<SigningKey>> SigningKey::LoadOrCreate(
    const std::string& path) {
  std::unique_ptr<SigningKey> signing(new SigningKey());
  signing->key_ = std::make_unique<Key>();
  std::error_code error;
  if (std::filesystem::exists(path, error)) {
    absl::StatusOr<std::string> pem = ReadFile(path);
    if (!pem.ok()) return pem.status();
    BIO* bio = BIO_new_mem_buf(pem->data(), static_cast<int>(pem->size()));
    signing->key_->pkey.reset(
        PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr));
    BIO_free(bio);
    ERR_clear_error();
    if (signing->key_->pkey == nullptr ||
        EVP_PKEY_get_id(signing->key_->pkey.get()) != EVP_PKEY_ED25519) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": not a PEM Ed25519 private key"));
    }
  } else {
    signing->key_->pkey.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
    if (signing->key_->pkey == nullptr) {
      return absl::InternalError("cannot generate an Ed25519 key");
    }
    BIO* bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(bio, signing->key_->pkey.get(), nullptr, nullptr,
                             0, nullptr, nullptr);
    const std::string pem = BioText(bio);
    BIO_free(bio);
    // 0600 from the start: the key never exists readable by others.
    const std::string temporary = path + ".tmp";
    const int fd = ::open(temporary.c_str(),
                          O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
      return absl::ErrnoToStatus(errno, absl::StrCat("create ", temporary));
    }
    const bool written = ::write(fd, pem.data(), pem.size()) ==
                             static_cast<ssize_t>(pem.size()) &&
                         ::fsync(fd) == 0;
    ::close(fd);
    if (!written || ::rename(temporary.c_str(), path.c_str()) != 0) {
      return absl::ErrnoToStatus(errno, absl::StrCat("write ", path));
    }
    if (absl::Status s = WriteFileAtomically(
            path + ".pub", PublicPem(signing->key_->pkey.get()));
        !s.ok()) {
      return s;
    }
  }
  signing->public_key_pem_ = PublicPem(signing->key_->pkey.get());
  signing->key_id_ = KeyId(signing->key_->pkey.get());
  return signing;
}

std::string SigningKey::Sign(absl::string_view message) const {
  std::string signature(64, '\0');
  size_t size = signature.size();
  EVP_MD_CTX* context = EVP_MD_CTX_new();
  EVP_DigestSignInit(context, nullptr, nullptr, nullptr, key_->pkey.get());
  EVP_DigestSign(context, reinterpret_cast<unsigned char*>(signature.data()),
                 &size, reinterpret_cast<const unsigned char*>(message.data()),
                 message.size());
  EVP_MD_CTX_free(context);
  signature.resize(size);
  return signature;
}

absl::StatusOr<std::unique_ptr<VerifyingKey>> VerifyingKey::FromPem(
    absl::string_view pem) {
  std::unique_ptr<VerifyingKey> verifying(new VerifyingKey());
  verifying->key_ = std::make_unique<Key>();
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  verifying->key_->pkey.reset(
      PEM_read_bio_PUBKEY(bio, nullptr, nullptr, nullptr));
  BIO_free(bio);
  ERR_clear_error();
  if (verifying->key_->pkey == nullptr ||
      EVP_PKEY_get_id(verifying->key_->pkey.get()) != EVP_PKEY_ED25519) {
    return absl::InvalidArgumentError("not a PEM Ed25519 public key");
  }
  verifying->key_id_ = KeyId(verifying->key_->pkey.get());
  return verifying;
}

bool VerifyingKey::Verify(absl::string_view message,
                          absl::string_view signature) const {
  EVP_MD_CTX* context = EVP_MD_CTX_new();
  const bool ok =
      EVP_DigestVerifyInit(context, nullptr, nullptr, nullptr,
                           key_->pkey.get()) == 1 &&
      EVP_DigestVerify(context,
                       reinterpret_cast<const unsigned char*>(signature.data()),
                       signature.size(),
                       reinterpret_cast<const unsigned char*>(message.data()),
                       message.size()) == 1;
  EVP_MD_CTX_free(context);
  ERR_clear_error();
  return ok;
}

}  // namespace oubli
