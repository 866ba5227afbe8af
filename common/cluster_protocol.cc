#include "common/cluster_protocol.h"

#include <arpa/inet.h>
#include <openssl/crypto.h>

#include <climits>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status_macros.h"

namespace oubli {

absl::StatusOr<std::string> ReadClusterToken(const std::string& path) {
  OUBLI_ASSIGN_OR_RETURN(std::string bytes, ReadFile(path));
  std::string token(absl::StripAsciiWhitespace(bytes));
  if (token.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cluster token file '", path, "' is empty"));
  }
  return token;
}

bool ClusterTokenMatches(absl::string_view expected,
                         absl::string_view presented) {
  if (expected.empty()) return true;
  if (presented.size() != expected.size()) return false;
  return CRYPTO_memcmp(expected.data(), presented.data(), expected.size()) == 0;
}

absl::StatusOr<std::string> CheckServerAddress(absl::string_view listen_address,
                                               int64_t max_message_bytes) {
  if (max_message_bytes < 1 || max_message_bytes > INT_MAX) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_message_bytes must be 1..", INT_MAX));
  }
  const size_t colon = listen_address.rfind(':');
  if (colon == absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("listen address '", listen_address, "' is not HOST:PORT"));
  }
  return std::string(listen_address.substr(0, colon));
}

bool IsLoopbackHost(absl::string_view host) {
  if (host == "localhost" || host == "[::1]" || host == "::1") return true;
  // Only an address literal: a name like "127.x.example.com" resolves to
  // wherever its owner points it.
  in_addr address;
  return inet_pton(AF_INET, std::string(host).c_str(), &address) == 1 &&
         (ntohl(address.s_addr) >> 24) == 127;
}

}  // namespace oubli
