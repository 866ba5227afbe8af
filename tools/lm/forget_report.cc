#include "tools/lm/forget_report.h"

#include <algorithm>

#include "absl/strings/str_format.h"
#include "common/status_macros.h"

namespace oubli::lm {
namespace {

struct Measured {
  SetFigures figures;
  std::vector<double> loss_scores;   // -mean loss per text: higher = member
  std::vector<double> min_k_scores;
};

absl::StatusOr<Measured> MeasureSet(LmScorer& scorer,
                                    const std::vector<const OwnerData*>& set,
                                    const MeasureOptions& options) {
  Measured m;
  const size_t owners =
      std::min(set.size(), static_cast<size_t>(std::max(options.max_owners, 0)));
  std::vector<ScoredText> texts;
  std::vector<RankedQuestion> questions;
  std::vector<Continuation> continuations;
  for (size_t i = 0; i < owners; ++i) {
    texts.insert(texts.end(), set[i]->texts.begin(), set[i]->texts.end());
    questions.insert(questions.end(), set[i]->questions.begin(),
                     set[i]->questions.end());
    if (static_cast<int>(i) < options.verbatim_owners) {
      continuations.insert(continuations.end(), set[i]->continuations.begin(),
                           set[i]->continuations.end());
    }
  }
  m.figures.owners = static_cast<int>(owners);
  m.figures.texts = static_cast<int>(texts.size());
  if (texts.empty()) return m;
  OUBLI_ASSIGN_OR_RETURN(std::vector<SampleScore> scores,
                         ScoreTexts(scorer, texts));
  double loss = 0;
  for (const SampleScore& s : scores) {
    loss += s.mean_loss;
    m.loss_scores.push_back(-s.mean_loss);
    m.min_k_scores.push_back(s.min_k_log_prob);
  }
  m.figures.mean_loss = loss / static_cast<double>(scores.size());
  OUBLI_ASSIGN_OR_RETURN(m.figures.qa_accuracy,
                         KnowledgeAccuracy(scorer, questions));
  OUBLI_ASSIGN_OR_RETURN(
      m.figures.verbatim_rouge_l,
      VerbatimRougeL(scorer, continuations, options.stop_token));
  return m;
}

}  // namespace

absl::StatusOr<Figures> MeasureFigures(
    LmScorer& scorer, const std::vector<const OwnerData*>& forget,
    const std::vector<const OwnerData*>& retained,
    const std::vector<const OwnerData*>& holdout,
    const MeasureOptions& options) {
  OUBLI_ASSIGN_OR_RETURN(Measured f, MeasureSet(scorer, forget, options));
  OUBLI_ASSIGN_OR_RETURN(Measured r, MeasureSet(scorer, retained, options));
  OUBLI_ASSIGN_OR_RETURN(Measured h, MeasureSet(scorer, holdout, options));
  Figures figures;
  figures.forget = f.figures;
  figures.retained = r.figures;
  figures.holdout = h.figures;
  figures.mia_auc_forget = MembershipAuc(f.loss_scores, h.loss_scores);
  figures.mia_auc_retained = MembershipAuc(r.loss_scores, h.loss_scores);
  figures.min_k_auc_forget = MembershipAuc(f.min_k_scores, h.min_k_scores);
  figures.min_k_auc_retained = MembershipAuc(r.min_k_scores, h.min_k_scores);
  return figures;
}

std::string FiguresText(const Figures& f) {
  return absl::StrFormat(
      "loss forget %.3f retained %.3f holdout %.3f | verbatim ROUGE-L "
      "%.3f/%.3f/%.3f | QA %.3f/%.3f/%.3f | MIA AUC forget %.3f retained "
      "%.3f (Min-K %.3f/%.3f)",
      f.forget.mean_loss, f.retained.mean_loss, f.holdout.mean_loss,
      f.forget.verbatim_rouge_l, f.retained.verbatim_rouge_l,
      f.holdout.verbatim_rouge_l, f.forget.qa_accuracy,
      f.retained.qa_accuracy, f.holdout.qa_accuracy, f.mia_auc_forget,
      f.mia_auc_retained, f.min_k_auc_forget, f.min_k_auc_retained);
}

std::string FiguresJson(const Figures& f) {
  std::string out;
  for (const auto& [name, set] :
       {std::pair<const char*, const SetFigures*>{"forget", &f.forget},
        {"retained", &f.retained},
        {"holdout", &f.holdout}}) {
    absl::StrAppendFormat(
        &out,
        "\"%s_owners\":%d,\"%s_texts\":%d,\"%s_loss\":%.4f,"
        "\"%s_verbatim_rouge_l\":%.4f,\"%s_qa_accuracy\":%.4f,",
        name, set->owners, name, set->texts, name, set->mean_loss, name,
        set->verbatim_rouge_l, name, set->qa_accuracy);
  }
  absl::StrAppendFormat(
      &out,
      "\"mia_auc_forget\":%.4f,\"mia_auc_retained\":%.4f,"
      "\"min_k_auc_forget\":%.4f,\"min_k_auc_retained\":%.4f",
      f.mia_auc_forget, f.mia_auc_retained, f.min_k_auc_forget,
      f.min_k_auc_retained);
  return out;
}

}  // namespace oubli::lm
