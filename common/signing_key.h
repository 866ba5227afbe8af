// Ed25519 signatures (OpenSSL) for what oubli vouches for in writing: the
// deletion ledger's entries. The private key stays in a PEM file of the
// coordinator; auditors get the public key and check offline.
#ifndef OUBLI_COMMON_SIGNING_KEY_H_
#define OUBLI_COMMON_SIGNING_KEY_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace oubli {

class SigningKey {
 public:
  // The PKCS#8 PEM Ed25519 key in `path`; when the file does not exist,
  // a new key is generated and written there (mode 0600) and its public
  // key beside it as PATH.pub (PEM). InvalidArgument: the file holds no
  // Ed25519 private key; other codes: I/O failures naming the path.
  static absl::StatusOr<std::unique_ptr<SigningKey>> LoadOrCreate(
      const std::string& path);
  ~SigningKey();
  SigningKey(const SigningKey&) = delete;
  SigningKey& operator=(const SigningKey&) = delete;

  // 64-byte Ed25519 signature of `message`.
  std::string Sign(absl::string_view message) const;
  // SubjectPublicKeyInfo PEM of the public key.
  const std::string& public_key_pem() const { return public_key_pem_; }
  // Hex SHA-256 of the DER public key, first 16 hex digits: names the key
  // in what it signs.
  const std::string& key_id() const { return key_id_; }

 private:
  struct Key;
  SigningKey() = default;
  std::unique_ptr<Key> key_;
  std::string public_key_pem_;
  std::string key_id_;
};

// A public key to check signatures with.
class VerifyingKey {
 public:
  // InvalidArgument: not a PEM Ed25519 public key.
  static absl::StatusOr<std::unique_ptr<VerifyingKey>> FromPem(
      absl::string_view pem);
  ~VerifyingKey();
  VerifyingKey(const VerifyingKey&) = delete;
  VerifyingKey& operator=(const VerifyingKey&) = delete;

  bool Verify(absl::string_view message, absl::string_view signature) const;
  const std::string& key_id() const { return key_id_; }

 private:
  struct Key;
  VerifyingKey() = default;
  std::unique_ptr<Key> key_;
  std::string key_id_;
};

}  // namespace oubli

#endif  // OUBLI_COMMON_SIGNING_KEY_H_
