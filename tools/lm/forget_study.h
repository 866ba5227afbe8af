// The language-model forgetting study behind `oubli-demo --lm` and
// `oubli-bench forget` (issue 11, section 4), through the public API of a
// running service (LmService: a coordinator and workers over gRPC):
//   data      profiles, the SentencePiece tokenizer (trained twice: same
//             bytes?), written to work_dir/tokenizer.model
//   pretrain  the public base, here, into work_dir/base.safetensors and its
//             SHA-256 (public data only: no user's, nothing to forget)
//   base      MUSE figures of the base alone (public members vs holdout),
//             scored by a model that serves its base (base_fallback)
//   train     CreateModel naming the base, IngestSamples of every user's
//             statements and QA pairs (owner = person), Train
//   forget    for each removal size k (1, 10, 100 owners, nested sets), on
//             a model of its own trained like the first (same fingerprint):
//             figures BEFORE, ForgetOwner of the k owners watched to
//             FORGOTTEN, figures FORGOTTEN (cut prefixes, nothing
//             retrained: the retrain policy never makes them due), Train
//             (its cost against the full training) and WatchDeletion to
//             RESTORED, figures RESTORED, Verify
//   round     `rounds` sequential deletions of `owners_per_round` owners on
//             one more such model, the figures after each, Verify after
//             the last
// Figures come from Score and greedy Generate. Each step reports a
// StudyRecord as it completes.
#ifndef OUBLI_TOOLS_LM_FORGET_STUDY_H_
#define OUBLI_TOOLS_LM_FORGET_STUDY_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "tools/lm/forget_report.h"
#include "tools/lm/lm_service.h"
#include "tools/lm/lm_workload.h"

namespace oubli::lm {

// The defaults run in a few minutes on 2 cores: 120 users are enough to
// forget 100 and keep 20.
struct StudyOptions {
  WorkloadOptions workload = {
      .profiles = {.seed = 1, .public_profiles = 120, .user_profiles = 120,
                   .holdout_profiles = 60},
      .vocab_size = 1024};
  LmModelOptions model;
  PretrainOptions pretrain;
  MeasureOptions measure = {.max_owners = 20, .verbatim_owners = 5};
  std::vector<int> forget_sizes = {1, 10, 100};
  int rounds = 10;
  int owners_per_round = 1;
  std::string work_dir;  // must exist; the study writes below it
};

struct StudyRecord {
  std::string step;  // "data", "pretrain", "base", "train", "forget", "round"
  std::vector<std::string> lines;  // for people
  std::string json;  // JSON object members, no braces, for scripts
};

// The figures a summary table needs.
struct SizeResult {
  int owners = 0;
  Figures before, forgotten, restored;
  int64_t retrain_sample_visits = 0;
  double retrain_seconds = 0;
  double max_time_to_forgotten_ms = 0;
  bool verify_match = false;
};

struct StudySummary {
  int64_t full_train_sample_visits = 0;
  double full_train_seconds = 0;
  std::vector<SizeResult> sizes;
  int rounds = 0;
  int round_forgotten_owners = 0;
  Figures after_rounds;
  int64_t rounds_retrain_sample_visits = 0;  // all rounds together
  double rounds_retrain_seconds = 0;
  bool rounds_verify_match = false;
};

// Runs on `service`, where it creates the models "lm-base", "lm-1",
// "lm-2", ... (the service should hold no models of these ids).
// FailedPrecondition: a removal size or the rounds need more users than
// the workload has (the retained set must stay non-empty); Internal: a
// model trained again from the same samples differs; other errors of the
// steps and the service's calls as they are. `summary` may be null.
absl::Status RunForgetStudy(const StudyOptions& options, LmService& service,
                            const std::function<void(const StudyRecord&)>& sink,
                            StudySummary* summary);

// The six properties of MUSE as a table of `summary`'s figures, one line
// per row, for people.
std::vector<std::string> SummaryTable(const StudySummary& summary);

}  // namespace oubli::lm

#endif  // OUBLI_TOOLS_LM_FORGET_STUDY_H_
