#include "coordinator/access_policy.h"

#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>
#include <sys/stat.h>

#include <cstdio>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/file_util.h"
#include "common/hash.h"
#include "oubli/config/access_policy.pb.h"

namespace oubli::coordinator {
namespace {

constexpr Role kAllRoles[] = {Role::kAdmin, Role::kWriter, Role::kEraser,
                              Role::kReader, Role::kAuditor};

std::optional<Role> RoleNamed(absl::string_view name) {
  for (Role role : kAllRoles) {
    if (RoleName(role) == name) return role;
  }
  return std::nullopt;
}

// Collects the first text-format error with its position.
class FirstError final : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, int column, const std::string& message) override {
    if (error.empty()) {
      error = absl::StrCat("line ", line + 1, " column ", column + 1, ": ",
                           message);
    }
  }
  std::string error;
};

bool IsHexDigest(absl::string_view text) {
  if (text.size() != 64) return false;
  for (char c : text) {
    if (!absl::ascii_isxdigit(c)) return false;
  }
  return true;
}

std::string RoleList(const std::vector<Role>& roles) {
  return absl::StrJoin(roles, ", ", [](std::string* out, Role role) {
    absl::StrAppend(out, RoleName(role));
  });
}

}  // namespace

absl::string_view RoleName(Role role) {
  switch (role) {
    case Role::kAdmin:
      return "admin";
    case Role::kWriter:
      return "writer";
    case Role::kEraser:
      return "eraser";
    case Role::kReader:
      return "reader";
    case Role::kAuditor:
      return "auditor";
  }
  return "?";
}

const std::vector<RpcAccess>& AllRpcAccess() {
  using R = Role;
  static const std::vector<RpcAccess>* const table = new std::vector<RpcAccess>{
      {"CreateModel", {R::kAdmin}, /*mutating=*/true},
      {"DeleteModel", {R::kAdmin}, /*mutating=*/true},
      {"IngestSamples", {R::kWriter}, /*mutating=*/true},
      {"Train", {R::kWriter}, /*mutating=*/true},
      {"GetJob", {R::kWriter, R::kReader}},
      {"DeleteSamples", {R::kEraser}, /*mutating=*/true},
      {"ForgetOwner", {R::kEraser}, /*mutating=*/true},
      {"GetDeletion", {R::kReader, R::kEraser, R::kAuditor}},
      {"WatchDeletion", {R::kReader, R::kEraser, R::kAuditor}},
      {"ListDeletions", {R::kReader, R::kEraser, R::kAuditor}},
      {"Predict", {R::kReader}},
      {"Score", {R::kReader}},
      {"Generate", {R::kReader}},
      {"GetModel", {R::kReader, R::kAuditor}},
      {"ListModels", {R::kReader, R::kAuditor}},
      {"Verify", {R::kAuditor}},
      {"ExportLedger", {R::kAuditor}},
      {"RetireWorker", {R::kAdmin}, /*mutating=*/true, /*per_model=*/false},
  };
  return *table;
}

const RpcAccess* AccessOf(absl::string_view rpc) {
  for (const RpcAccess& access : AllRpcAccess()) {
    if (access.rpc == rpc) return &access;
  }
  return nullptr;
}

absl::StatusOr<AccessPolicy> AccessPolicy::Parse(
    absl::string_view policy_text, absl::string_view tokens_text) {
  config::AccessPolicy proto;
  google::protobuf::TextFormat::Parser parser;
  FirstError errors;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(std::string(policy_text), &proto)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "policy: ", errors.error.empty() ? "does not parse" : errors.error));
  }
  AccessPolicy policy;
  for (int i = 0; i < proto.principal_size(); ++i) {
    const config::Principal& in = proto.principal(i);
    const std::string where =
        absl::StrCat("policy: principal ", i + 1, " ('", in.name(), "')");
    if (in.name().empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("policy: principal ", i + 1, " has no name"));
    }
    if (in.roles().empty()) {
      return absl::InvalidArgumentError(absl::StrCat(where, " has no roles"));
    }
    Grant grant;
    for (const std::string& name : in.roles()) {
      std::optional<Role> role = RoleNamed(name);
      if (!role.has_value()) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": unknown role '", name,
                         "' (known: admin, writer, eraser, reader, auditor)"));
      }
      grant.roles.push_back(*role);
    }
    for (const std::string& pattern : in.models()) {
      const size_t star = pattern.find('*');
      if (pattern.empty() ||
          (star != std::string::npos && star + 1 != pattern.size())) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": model pattern '", pattern,
                         "' must be a model id or a prefix ending in '*'"));
      }
      grant.models.push_back(pattern);
    }
    if (!policy.principals_.emplace(in.name(), std::move(grant)).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": the name appears twice"));
    }
  }
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(tokens_text, '\n')) {
    ++line_number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    std::vector<absl::string_view> fields =
        absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (fields.size() != 2 || !IsHexDigest(fields[1])) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tokens: line ", line_number,
          " is not 'NAME SHA256HEX' (64 hex digits of the token's SHA-256)"));
    }
    if (!policy.token_names_
             .emplace(absl::AsciiStrToLower(fields[1]), std::string(fields[0]))
             .second) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tokens: line ", line_number, " repeats an earlier token"));
    }
  }
  return policy;
}

absl::StatusOr<std::string> AccessPolicy::Authenticate(
    const CallCredentials& credentials) const {
  if (credentials.bearer_token.has_value()) {
    auto it = token_names_.find(Sha256Hex(*credentials.bearer_token));
    if (it == token_names_.end()) {
      return absl::UnauthenticatedError("the bearer token is not recognised");
    }
    if (!principals_.contains(it->second)) {
      return absl::PermissionDeniedError(absl::StrCat(
          "caller '", it->second, "' has no principal in the access policy"));
    }
    return it->second;
  }
  for (const std::string& name : credentials.certificate_names) {
    if (principals_.contains(name)) return name;
  }
  if (credentials.certificate_names.empty()) {
    return absl::UnauthenticatedError(
        "this server needs a client certificate or a bearer token "
        "(metadata 'authorization: Bearer TOKEN')");
  }
  return absl::PermissionDeniedError(
      absl::StrCat("no principal in the access policy names the client "
                   "certificate (",
                   absl::StrJoin(credentials.certificate_names, ", "), ")"));
}

bool AccessPolicy::Covers(const Grant& grant,
                          absl::string_view model_id) const {
  if (grant.models.empty()) return true;
  for (const std::string& pattern : grant.models) {
    if (absl::EndsWith(pattern, "*")
            ? absl::StartsWith(model_id, absl::string_view(pattern).substr(
                                             0, pattern.size() - 1))
            : model_id == pattern) {
      return true;
    }
  }
  return false;
}

bool AccessPolicy::Allows(absl::string_view principal, Role role,
                          absl::string_view model_id) const {
  auto it = principals_.find(principal);
  if (it == principals_.end()) return false;
  const Grant& grant = it->second;
  for (Role held : grant.roles) {
    if (held == role) return Covers(grant, model_id);
  }
  return false;
}

absl::Status AccessPolicy::Authorize(absl::string_view principal,
                                     const RpcAccess& access,
                                     absl::string_view model_id) const {
  auto it = principals_.find(principal);
  if (it == principals_.end()) {
    return absl::PermissionDeniedError(absl::StrCat(
        "caller '", principal, "' has no principal in the access policy"));
  }
  const Grant& grant = it->second;
  bool has_role = false;
  for (Role needed : access.roles) {
    for (Role held : grant.roles) has_role = has_role || held == needed;
  }
  const std::string needs =
      absl::StrCat(access.rpc, " needs role ", RoleList(access.roles));
  if (!has_role) {
    return absl::PermissionDeniedError(absl::StrCat(
        needs, "; caller '", principal, "' has ", RoleList(grant.roles)));
  }
  if (!access.per_model) {
    if (!grant.models.empty()) {
      return absl::PermissionDeniedError(absl::StrCat(
          needs, " for every model; caller '", principal, "' has it for ",
          absl::StrJoin(grant.models, ", "), " only"));
    }
    return absl::OkStatus();
  }
  if (!model_id.empty() && !Covers(grant, model_id)) {
    return absl::PermissionDeniedError(absl::StrCat(
        needs, " for model '", model_id, "'; caller '", principal,
        "' has it for ", absl::StrJoin(grant.models, ", "), " only"));
  }
  return absl::OkStatus();
}

AccessPolicyFiles::Stamp AccessPolicyFiles::StampOf(const std::string& path) {
  struct stat info;
  if (path.empty() || ::stat(path.c_str(), &info) != 0) return Stamp{};
  return Stamp{int64_t{info.st_mtim.tv_sec} * 1000000000 + info.st_mtim.tv_nsec,
               int64_t{info.st_ctim.tv_sec} * 1000000000 + info.st_ctim.tv_nsec,
               static_cast<int64_t>(info.st_ino), int64_t{info.st_size}};
}

AccessPolicyFiles::AccessPolicyFiles(std::string policy_path,
                                     std::string tokens_path,
                                     absl::Duration check_interval)
    : policy_path_(std::move(policy_path)),
      tokens_path_(std::move(tokens_path)),
      check_interval_(check_interval) {}

absl::StatusOr<std::unique_ptr<AccessPolicyFiles>> AccessPolicyFiles::Open(
    std::string policy_path, std::string tokens_path,
    absl::Duration check_interval) {
  std::unique_ptr<AccessPolicyFiles> files(new AccessPolicyFiles(
      std::move(policy_path), std::move(tokens_path), check_interval));
  absl::MutexLock lock(&files->mu_);
  absl::StatusOr<std::shared_ptr<const AccessPolicy>> policy =
      files->Load(&files->policy_stamp_, &files->tokens_stamp_);
  if (!policy.ok()) return policy.status();
  files->current_ = *std::move(policy);
  files->next_check_ = absl::Now() + check_interval;
  return files;
}

absl::StatusOr<std::shared_ptr<const AccessPolicy>> AccessPolicyFiles::Load(
    Stamp* policy_stamp, Stamp* tokens_stamp) const {
  *policy_stamp = StampOf(policy_path_);
  *tokens_stamp = StampOf(tokens_path_);
  absl::StatusOr<std::string> policy_text = ReadFile(policy_path_);
  if (!policy_text.ok()) return policy_text.status();
  std::string tokens_text;
  if (!tokens_path_.empty()) {
    absl::StatusOr<std::string> read = ReadFile(tokens_path_);
    if (!read.ok()) return read.status();
    tokens_text = *std::move(read);
  }
  absl::StatusOr<AccessPolicy> policy =
      AccessPolicy::Parse(*policy_text, tokens_text);
  if (!policy.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        absl::StartsWith(policy.status().message(), "tokens") ? tokens_path_
                                                              : policy_path_,
        ": ", policy.status().message()));
  }
  return std::make_shared<const AccessPolicy>(*std::move(policy));
}

std::shared_ptr<const AccessPolicy> AccessPolicyFiles::Current() {
  absl::MutexLock lock(&mu_);
  const absl::Time now = absl::Now();
  if (now < next_check_) return current_;
  next_check_ = now + check_interval_;
  // Cheap when nothing changed: two stats and no read.
  if (StampOf(policy_path_) == policy_stamp_ &&
      StampOf(tokens_path_) == tokens_stamp_) {
    return current_;
  }
  Stamp policy_stamp;
  Stamp tokens_stamp;
  absl::StatusOr<std::shared_ptr<const AccessPolicy>> reloaded =
      Load(&policy_stamp, &tokens_stamp);
  // Remember the stamps either way: a bad file is reported once, not on
  // every call, and its next change is tried again.
  policy_stamp_ = policy_stamp;
  tokens_stamp_ = tokens_stamp;
  if (!reloaded.ok()) {
    std::fprintf(stderr,
                 "oubli-coordinator: keeping the previous access policy: %s\n",
                 reloaded.status().ToString().c_str());
    return current_;
  }
  current_ = *std::move(reloaded);
  std::fprintf(stderr, "oubli-coordinator: access policy reloaded\n");
  return current_;
}

}  // namespace oubli::coordinator
