// Whether a valid sample (common/types.h ValidateSample) fits a model's
// inputs: its kind of data, size and label. Ingest rejects a sample that
// does not, per sample, with the reason this gives.
#ifndef OUBLI_COORDINATOR_SAMPLE_FIT_H_
#define OUBLI_COORDINATOR_SAMPLE_FIT_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "common/config.h"
#include "common/types.h"

namespace oubli::coordinator {

// InvalidArgument with a reason naming what does not fit (the message
// starts lowercase, to follow "sample 'ID' "):
//  - image models: token samples, a feature count other than InputSize(),
//    a label outside [0, num_classes);
//  - decoders: feature samples, no tokens, more tokens than the context, a
//    token outside the vocabulary; causal language models: fewer than 2
//    tokens or prompt_tokens leaving no token to learn; classifying
//    decoders: a label outside [0, num_classes).
absl::Status CheckSampleFits(const Sample& sample,
                             const BackboneConfig& backbone,
                             absl::string_view model_id);

}  // namespace oubli::coordinator

#endif  // OUBLI_COORDINATOR_SAMPLE_FIT_H_
