// Throwaway certificate authorities for TLS tests: a CA and the leaf
// certificates a test needs (valid, expired, from another CA), written as
// PEM files. EC P-256 keys, so making them is fast. Also an HTTPS client
// for /metrics.
#ifndef OUBLI_TESTS_TESTING_TEST_PKI_H_
#define OUBLI_TESTS_TESTING_TEST_PKI_H_

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace oubli::testing_util {

struct PemPair {
  std::string cert;  // path of the PEM certificate
  std::string key;   // path of its PEM private key
};

class TestCa {
 public:
  // A self-signed CA named `name`, its certificate in DIR/NAME-ca.pem.
  static absl::StatusOr<std::unique_ptr<TestCa>> Create(
      const std::filesystem::path& dir, const std::string& name);
  ~TestCa();

  const std::string& cert_path() const { return cert_path_; }

  // A leaf certificate with subject CN `common_name` and subject
  // alternative names `dns_names` (plus IP 127.0.0.1), for both server and
  // client use, valid from `not_before` to `not_after` relative to now:
  // DIR/STEM.pem and DIR/STEM.key.
  absl::StatusOr<PemPair> Issue(const std::string& stem,
                                const std::string& common_name,
                                const std::vector<std::string>& dns_names,
                                absl::Duration not_before = -absl::Hours(1),
                                absl::Duration not_after = absl::Hours(24));

 private:
  struct Keys;
  TestCa() = default;
  std::filesystem::path dir_;
  std::string cert_path_;
  std::unique_ptr<Keys> keys_;
};

// Body of GET /metrics over TLS to 127.0.0.1:`port` (headers included),
// trusting `ca` and checking the server's certificate for `server_name`;
// presents `client` when given. With `reset_after_handshake`, resets the
// connection right after the handshake instead. "" on any failure.
std::string HttpsGet(int port, const std::string& ca,
                     const PemPair* client = nullptr,
                     const std::string& server_name = "localhost",
                     bool reset_after_handshake = false);

}  // namespace oubli::testing_util

#endif  // OUBLI_TESTS_TESTING_TEST_PKI_H_
