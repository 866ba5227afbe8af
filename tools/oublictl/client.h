// What oublictl's commands share: the connection to the server (TLS, a
// bearer token, a deadline per call), errors that name the RPC or mark a
// mistake in the command line, JSON output, a progress bar, files named by
// flags, and streaming samples. No flags here: main.cc owns them.
#ifndef OUBLI_TOOLS_OUBLICTL_CLIENT_H_
#define OUBLI_TOOLS_OUBLICTL_CLIENT_H_

#include <grpcpp/grpcpp.h>

#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/tls_files.h"
#include "google/protobuf/message.h"
#include "oubli/v1/oubli.grpc.pb.h"

namespace oubli::oublictl {

class Client {
 public:
  // `tls` not enabled: plaintext. `bearer_token` empty: none is sent.
  Client(const std::string& server, const TlsDialFiles& tls,
         std::string bearer_token, absl::Duration timeout);

  oubli::v1::Oubli::Stub& stub() { return *stub_; }

  // A context with the per-call timeout (none if `deadline` is false) and
  // the bearer token, if any.
  std::unique_ptr<grpc::ClientContext> Context(bool deadline = true) const;

 private:
  std::unique_ptr<oubli::v1::Oubli::Stub> stub_;
  const std::string bearer_token_;
  const absl::Duration timeout_;
};

// The gRPC status as an absl::Status (same code) whose message names the
// RPC and the code.
absl::Status RpcStatus(const grpc::Status& status, absl::string_view rpc);

// A mistake in the command line (exit 2), as opposed to a command that ran
// and failed (exit 1).
absl::Status UsageError(absl::string_view message);
bool IsUsageError(const absl::Status& status);
// `value`, or a usage error when the flag --`name` was not given.
absl::StatusOr<std::string> RequireFlag(const std::string& value,
                                        absl::string_view name);

// One JSON object per line, proto field names, zeros printed.
void PrintJson(const google::protobuf::Message& message);
// A one-line progress bar on stderr, redrawn in place.
void ProgressBar(absl::string_view label, double fraction,
                 absl::string_view detail);
// The file a flag names; errors name the flag.
absl::StatusOr<std::string> ReadWholeFile(const std::string& path,
                                          absl::string_view flag);

// GetModel: what a command checks before it streams (a wrong id fails fast).
absl::StatusOr<oubli::v1::Model> GetModel(Client& client,
                                          const std::string& model);
// Streams `count` samples to `model`, `batch` per message, fill(i, out)
// writing the i-th, then prints what the server stored (as JSON when
// `json`).
absl::Status StreamSamples(
    Client& client, const std::string& model, size_t count, int batch,
    bool json, const std::function<void(size_t, oubli::v1::Sample*)>& fill);

}  // namespace oubli::oublictl

#endif  // OUBLI_TOOLS_OUBLICTL_CLIENT_H_
