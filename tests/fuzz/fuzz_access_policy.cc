// The access policy and token files (--policy_file, --token_file), and
// decisions on what they accept: the input is the policy, a zero byte,
// then the token file.
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "coordinator/access_policy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t zero = input.find('\0');
  const absl::string_view policy_text = input.substr(0, zero);
  const absl::string_view tokens_text = zero == absl::string_view::npos
                                            ? absl::string_view()
                                            : input.substr(zero + 1);
  auto policy =
      oubli::coordinator::AccessPolicy::Parse(policy_text, tokens_text);
  if (!policy.ok()) return 0;
  oubli::coordinator::CallCredentials credentials;
  credentials.certificate_names = {"alice", "reader",
                                   std::string(policy_text.substr(0, 16))};
  auto principal = policy->Authenticate(credentials);
  credentials.bearer_token = std::string(tokens_text.substr(0, 32));
  (void)policy->Authenticate(credentials);
  if (!principal.ok()) return 0;
  for (const auto& access : oubli::coordinator::AllRpcAccess()) {
    for (absl::string_view model : {"m", "team-a-1"}) {
      // Authorize agrees with Allows: a call on a model passes only if one
      // of its roles is granted for that model.
      bool granted = false;
      for (auto role : access.roles) {
        granted = granted || policy->Allows(*principal, role, model);
      }
      const bool authorized = policy->Authorize(*principal, access, model).ok();
      if (access.per_model && authorized != granted) __builtin_trap();
      if (authorized && !granted) __builtin_trap();
    }
  }
  return 0;
}
