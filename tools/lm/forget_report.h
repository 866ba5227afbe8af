// The MUSE-style figures of one model state: a forget set, a retained set
// and the never-seen holdout, measured through an LmScorer.
#ifndef OUBLI_TOOLS_LM_FORGET_REPORT_H_
#define OUBLI_TOOLS_LM_FORGET_REPORT_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "tools/lm/forget_metrics.h"
#include "tools/lm/lm_workload.h"

namespace oubli::lm {

struct SetFigures {
  int owners = 0;
  int texts = 0;
  double mean_loss = 0;         // mean over texts of their mean token loss
  double verbatim_rouge_l = 0;  // over the first `verbatim_owners` owners
  double qa_accuracy = 0;       // answer ranked first among 1 + distractors
};

struct Figures {
  SetFigures forget, retained, holdout;
  // Loss attack (and Min-K% Prob), members vs the holdout's texts.
  double mia_auc_forget = 0.5;
  double mia_auc_retained = 0.5;
  double min_k_auc_forget = 0.5;
  double min_k_auc_retained = 0.5;
};

struct MeasureOptions {
  // Each set is cut to its first `max_owners` owners (scoring is cheap);
  // verbatim continuation, a generation per statement, to the first
  // `verbatim_owners`. 0: skip verbatim.
  int max_owners = 30;
  int verbatim_owners = 8;
  int32_t stop_token = -1;  // EOS
};

// `forget` may be empty (its figures stay zero and its AUC 0.5).
absl::StatusOr<Figures> MeasureFigures(
    LmScorer& scorer, const std::vector<const OwnerData*>& forget,
    const std::vector<const OwnerData*>& retained,
    const std::vector<const OwnerData*>& holdout,
    const MeasureOptions& options);

// One line: "loss F/R/H  verbatim ...  qa ...  MIA AUC forget .. retained ..".
std::string FiguresText(const Figures& figures);
// The figures as JSON members (no braces): "forget_loss":..,...
std::string FiguresJson(const Figures& figures);

}  // namespace oubli::lm

#endif  // OUBLI_TOOLS_LM_FORGET_REPORT_H_
