// Who may call which RPC of the public API, for which models: the access
// policy file (proto/oubli/config/access_policy.proto) and the token file
// it names callers from. Pure logic: coordinator/api_guard.h takes the
// credentials off a gRPC call and asks here.
#ifndef OUBLI_COORDINATOR_ACCESS_POLICY_H_
#define OUBLI_COORDINATOR_ACCESS_POLICY_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace oubli::coordinator {

enum class Role { kAdmin, kWriter, kEraser, kReader, kAuditor };
absl::string_view RoleName(Role role);

// What each RPC of oubli.v1.Oubli needs. `mutating` calls are written to
// the audit log; `per_model` calls are checked against the principal's
// models (the others need a principal whose roles cover every model).
struct RpcAccess {
  absl::string_view rpc;    // method name, e.g. "DeleteSamples"
  std::vector<Role> roles;  // any one suffices
  bool mutating = false;
  bool per_model = true;
};
// Every RPC of the public API; nullptr for an unknown name.
const RpcAccess* AccessOf(absl::string_view rpc);
const std::vector<RpcAccess>& AllRpcAccess();

// What a call presents, as the transport saw it.
struct CallCredentials {
  std::optional<std::string> bearer_token;
  std::vector<std::string> certificate_names;  // verified certificates only
};

class AccessPolicy {
 public:
  // `policy_text`: protobuf text format of oubli.config.AccessPolicy.
  // `tokens_text`: lines "NAME SHA256HEX" (the hex SHA-256 of the token;
  // blank lines and '#' comments allowed). InvalidArgument naming the line
  // or principal: a parse error, an unknown role, an empty or repeated
  // name, a model pattern with '*' anywhere but at its end, a malformed or
  // repeated digest.
  static absl::StatusOr<AccessPolicy> Parse(absl::string_view policy_text,
                                            absl::string_view tokens_text);

  // The principal `credentials` identify. A bearer token decides when
  // present; otherwise the first certificate name the policy knows.
  // Unauthenticated: no token and no certificate, or a token the token
  // file lacks. PermissionDenied: a certificate no principal names, or a
  // token whose name has no principal.
  absl::StatusOr<std::string> Authenticate(
      const CallCredentials& credentials) const;

  // Whether `principal` may make `access`'s call on `model_id` (empty:
  // before the model is known, or a cluster-wide call). PermissionDenied
  // naming the roles the call needs and the model otherwise.
  absl::Status Authorize(absl::string_view principal, const RpcAccess& access,
                         absl::string_view model_id) const;

  // Whether `principal` has `role` for `model_id`.
  bool Allows(absl::string_view principal, Role role,
              absl::string_view model_id) const;

 private:
  struct Grant {
    std::vector<Role> roles;
    std::vector<std::string> models;  // empty: all
  };
  bool Covers(const Grant& grant, absl::string_view model_id) const;

  absl::flat_hash_map<std::string, Grant> principals_;
  absl::flat_hash_map<std::string, std::string> token_names_;  // hex -> name
};

// The policy and token files, re-read when either changes (checked at most
// once per `check_interval`), so access can be granted or revoked without
// a restart. A changed file that does not parse keeps the previous policy
// and is reported on stderr.
class AccessPolicyFiles {
 public:
  // InvalidArgument / NotFound naming the file when the first read fails.
  static absl::StatusOr<std::unique_ptr<AccessPolicyFiles>> Open(
      std::string policy_path, std::string tokens_path,
      absl::Duration check_interval = absl::Seconds(1));

  std::shared_ptr<const AccessPolicy> Current();

 private:
  // A file's identity and change times: an edit in place, a rename over
  // it (Kubernetes' Secret updates) or a same-size rewrite all show.
  struct Stamp {
    int64_t mtime_ns = -1;
    int64_t ctime_ns = -1;
    int64_t inode = -1;
    int64_t size = -1;
    bool operator==(const Stamp&) const = default;
  };
  AccessPolicyFiles(std::string policy_path, std::string tokens_path,
                    absl::Duration check_interval);
  static Stamp StampOf(const std::string& path);
  absl::StatusOr<std::shared_ptr<const AccessPolicy>> Load(
      Stamp* policy_stamp, Stamp* tokens_stamp) const;

  const std::string policy_path_;
  const std::string tokens_path_;
  const absl::Duration check_interval_;
  absl::Mutex mu_;
  std::shared_ptr<const AccessPolicy> current_ ABSL_GUARDED_BY(mu_);
  Stamp policy_stamp_ ABSL_GUARDED_BY(mu_);
  Stamp tokens_stamp_ ABSL_GUARDED_BY(mu_);
  absl::Time next_check_ ABSL_GUARDED_BY(mu_);
};

}  // namespace oubli::coordinator

#endif  // OUBLI_COORDINATOR_ACCESS_POLICY_H_
