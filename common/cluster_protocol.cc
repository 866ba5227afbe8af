#include "common/cluster_protocol.h"

#include <openssl/crypto.h>

#include "absl/strings/ascii.h"
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

}  // namespace oubli
