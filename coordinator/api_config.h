// The model config as the public API carries it (oubli.v1.ModelConfig) and
// as the domain holds it (ModelConfig). Torch- and server-free, so the
// command-line client links it without the engine.
#ifndef OUBLI_COORDINATOR_API_CONFIG_H_
#define OUBLI_COORDINATOR_API_CONFIG_H_

#include "absl/status/statusor.h"
#include "common/config.h"
#include "oubli/v1/oubli.pb.h"

namespace oubli::coordinator {

// Proto config -> domain config: unset fields keep the ModelConfig defaults.
// InvalidArgument naming the field for unknown enum values, an unknown LoRA
// target (naming the accepted ones) and a `decoder` message on another
// backbone; ranges are checked by ValidateConfig.
absl::StatusOr<ModelConfig> ConfigFromProto(const oubli::v1::ModelConfig& in);
// Every field set; `decoder` only for a decoder.
// ConfigFromProto(ConfigToProto(c)) == c.
oubli::v1::ModelConfig ConfigToProto(const ModelConfig& config);

}  // namespace oubli::coordinator

#endif  // OUBLI_COORDINATOR_API_CONFIG_H_
