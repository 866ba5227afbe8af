#include "tools/lm/forget_study.h"

#include <algorithm>
#include <filesystem>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/file_util.h"
#include "common/hash.h"
#include "common/status_macros.h"
#include "worker/ml/determinism.h"
#include "worker/ml/s3t_trainer.h"

namespace oubli::lm {
namespace {

namespace fs = std::filesystem;

// The model the public base is scored through: created, never trained, so
// with serving.base_fallback it answers from the base alone.
constexpr char kBaseModel[] = "lm-base";
// A deletion's retraining and purge, watched to RESTORED.
constexpr absl::Duration kRestoreTimeout = absl::Hours(1);

double Seconds(absl::Duration d) { return absl::ToDoubleSeconds(d); }

std::vector<const OwnerData*> Pointers(const std::vector<OwnerData>& owners) {
  std::vector<const OwnerData*> out;
  for (const OwnerData& o : owners) out.push_back(&o);
  return out;
}

std::string SummaryJson(const std::string& prefix, const TrainCost& s) {
  return absl::StrFormat(
      "\"%s_positions\":%lld,\"%s_sample_visits\":%lld,\"%s_seconds\":%.3f",
      prefix, static_cast<long long>(s.positions), prefix,
      static_cast<long long>(s.sample_visits), prefix, Seconds(s.elapsed));
}

class Study {
 public:
  Study(const StudyOptions& options, LmService& service,
        const std::function<void(const StudyRecord&)>& sink,
        StudySummary* summary)
      : options_(options),
        service_(service),
        sink_(sink),
        summary_(*summary) {}

  absl::Status Run() {
    OUBLI_RETURN_IF_ERROR(Data());
    OUBLI_RETURN_IF_ERROR(CheckSizes());
    OUBLI_RETURN_IF_ERROR(Pretrain());
    OUBLI_RETURN_IF_ERROR(BaseFigures());
    OUBLI_RETURN_IF_ERROR(Train());
    for (int k : options_.forget_sizes) OUBLI_RETURN_IF_ERROR(Forget(k));
    if (options_.rounds > 0) OUBLI_RETURN_IF_ERROR(Rounds());
    return absl::OkStatus();
  }

 private:
  std::string Path(const std::string& name) const {
    return (fs::path(options_.work_dir) / name).string();
  }

  void Emit(std::string step, std::vector<std::string> lines,
            std::string json) {
    sink_({std::move(step), std::move(lines), std::move(json)});
  }

  absl::Status Data() {
    const absl::Time start = absl::Now();
    OUBLI_ASSIGN_OR_RETURN(workload_, BuildWorkload(options_.workload));
    const absl::Duration elapsed = absl::Now() - start;
    // The tokenizer is an artefact of the run: trained again, it must come
    // out the same, or the demo's token ids would depend on the machine.
    OUBLI_ASSIGN_OR_RETURN(
        std::string again,
        TrainTokenizer(CorpusLines(GenerateProfiles(options_.workload.profiles)
                                       .public_set),
                       options_.workload.vocab_size));
    const std::string& model = workload_.tokenizer->model();
    const bool same = again == model;
    OUBLI_RETURN_IF_ERROR(WriteFileAtomically(Path("tokenizer.model"), model));
    int64_t user_texts = 0;
    for (const OwnerData& o : workload_.users) user_texts += o.samples.size();
    // Users in a seeded order: the first k are the k forgotten.
    order_ = Pointers(workload_.users);
    const std::vector<int64_t> permutation = ml::SeededPermutation(
        static_cast<int64_t>(order_.size()),
        DeriveSeed(options_.workload.profiles.seed, "lm-forget-order", {}));
    std::vector<const OwnerData*> shuffled;
    for (int64_t i : permutation) shuffled.push_back(order_[i]);
    order_ = std::move(shuffled);
    const std::vector<int32_t>& first = workload_.users.front().texts.front().tokens;
    OUBLI_ASSIGN_OR_RETURN(std::string example,
                           workload_.tokenizer->Decode(first));
    Emit("data",
         {absl::StrFormat("profiles: %d public, %d users (%lld texts), %d "
                          "holdout; e.g. \"%s\"",
                          workload_.public_set.size(), workload_.users.size(),
                          static_cast<long long>(user_texts),
                          workload_.holdout.size(),
                          example),
          absl::StrFormat("SentencePiece BPE, %d pieces, trained on the "
                          "public corpus in %.2f s; trained twice: %s; "
                          "longest text %d tokens",
                          workload_.tokenizer->vocab_size(), Seconds(elapsed),
                          same ? "identical bytes" : "DIFFERENT bytes",
                          workload_.longest_text),
          absl::StrCat("tokenizer ", Path("tokenizer.model"), " sha256 ",
                       Sha256Hex(model))},
         absl::StrFormat(
             "\"public_profiles\":%d,\"user_profiles\":%d,"
             "\"holdout_profiles\":%d,\"user_texts\":%lld,\"vocab\":%d,"
             "\"tokenizer_sha256\":\"%s\",\"tokenizer_deterministic\":%s,"
             "\"longest_text\":%d",
             workload_.public_set.size(), workload_.users.size(),
             workload_.holdout.size(), static_cast<long long>(user_texts),
             workload_.tokenizer->vocab_size(), Sha256Hex(model),
             same ? "true" : "false", workload_.longest_text));
    return absl::OkStatus();
  }

  absl::Status CheckSizes() {
    int most = options_.rounds * options_.owners_per_round;
    for (int k : options_.forget_sizes) most = std::max(most, k);
    if (most >= static_cast<int>(order_.size())) {
      return absl::FailedPreconditionError(absl::StrCat(
          "forgetting ", most, " owners needs more than ", order_.size(),
          " users (some must be retained)"));
    }
    // Retained: the users no removal of this study touches, the same for
    // every figure.
    retained_.assign(order_.begin() + most, order_.end());
    holdout_ = Pointers(workload_.holdout);
    return absl::OkStatus();
  }

  absl::Status Pretrain() {
    config_ = LmModelConfig(options_.model, workload_.tokenizer->vocab_size());
    if (workload_.longest_text > config_.backbone.decoder.context_length) {
      return absl::FailedPreconditionError(absl::StrCat(
          "texts of ", workload_.longest_text, " tokens exceed the context ",
          config_.backbone.decoder.context_length));
    }
    // Retraining runs when the study calls Train, so the FORGOTTEN figures
    // are of the cut model and a retraining's cost is measured alone.
    config_.retrain.mode = RetrainMode::kBatched;
    config_.retrain.window = absl::Hours(24);
    config_.retrain.max_batch = 1 << 30;
    ml::TrainStats stats;
    OUBLI_RETURN_IF_ERROR(PretrainLmBaseToFile(workload_.public_set,
                                               options_.pretrain,
                                               Path("base.safetensors"),
                                               &config_, &stats));
    Emit("pretrain",
         {absl::StrFormat("%s", config_.base.provenance),
          absl::StrFormat("%.1f s, %lld tokens (%.0f tokens/s), last batch "
                          "loss %.3f; threads %s",
                          Seconds(stats.elapsed),
                          static_cast<long long>(stats.tokens),
                          stats.tokens / Seconds(stats.elapsed),
                          stats.last_loss, ml::DescribeThreads()),
          absl::StrCat("base ", config_.base.source, " sha256 ",
                       config_.base.sha256)},
         absl::StrFormat("\"pretrain_epochs\":%d,\"pretrain_seconds\":%.3f,"
                         "\"pretrain_tokens\":%lld,\"pretrain_last_loss\":%.4f,"
                         "\"base_sha256\":\"%s\"",
                         options_.pretrain.epochs, Seconds(stats.elapsed),
                         static_cast<long long>(stats.tokens), stats.last_loss,
                         config_.base.sha256));
    return absl::OkStatus();
  }

  // The base alone: it saw the public profiles and no user. Scored through
  // a model that is created and never trained: with base_fallback the
  // service answers from the base.
  absl::Status BaseFigures() {
    OUBLI_RETURN_IF_ERROR(service_.CreateModel(kBaseModel, config_));
    std::unique_ptr<LmScorer> scorer = service_.Scorer(kBaseModel);
    const std::vector<const OwnerData*> public_set =
        Pointers(workload_.public_set);
    OUBLI_ASSIGN_OR_RETURN(
        Figures f, MeasureFigures(*scorer, public_set, order_, holdout_,
                                  Measure()));
    Emit("base",
         {absl::StrFormat("public (members of the base) vs holdout: MIA AUC "
                          "%.3f, loss %.3f vs %.3f, QA %.3f vs %.3f",
                          f.mia_auc_forget, f.forget.mean_loss,
                          f.holdout.mean_loss, f.forget.qa_accuracy,
                          f.holdout.qa_accuracy),
          absl::StrFormat("users (not yet trained) vs holdout: MIA AUC %.3f, "
                          "QA %.3f",
                          f.mia_auc_retained, f.retained.qa_accuracy)},
         absl::StrFormat("\"public_mia_auc\":%.4f,\"users_mia_auc\":%.4f,"
                         "\"public_qa_accuracy\":%.4f,\"users_qa_accuracy\":"
                         "%.4f,\"holdout_qa_accuracy\":%.4f",
                         f.mia_auc_forget, f.mia_auc_retained,
                         f.forget.qa_accuracy, f.retained.qa_accuracy,
                         f.holdout.qa_accuracy));
    return absl::OkStatus();
  }

  MeasureOptions Measure() const {
    MeasureOptions m = options_.measure;
    m.stop_token = workload_.tokenizer->eos_id();
    return m;
  }

  // CreateModel, IngestSamples of every user's samples, Train.
  absl::StatusOr<TrainCost> CreateAndTrain(const std::string& model_id,
                                           absl::Duration* ingest_time) {
    OUBLI_RETURN_IF_ERROR(service_.CreateModel(model_id, config_));
    const absl::Time start = absl::Now();
    OUBLI_RETURN_IF_ERROR(service_.Ingest(model_id, samples_));
    *ingest_time = absl::Now() - start;
    return service_.Train(model_id);
  }

  absl::Status Train() {
    for (const OwnerData& o : workload_.users) {
      samples_.insert(samples_.end(), o.samples.begin(), o.samples.end());
    }
    const std::string model_id = NextModelId();
    absl::Duration ingest_time;
    OUBLI_ASSIGN_OR_RETURN(full_, CreateAndTrain(model_id, &ingest_time));
    summary_.full_train_sample_visits = full_.sample_visits;
    summary_.full_train_seconds = Seconds(full_.elapsed);
    OUBLI_ASSIGN_OR_RETURN(fingerprint_, service_.Fingerprint(model_id));
    trained_ = model_id;
    Emit("train",
         {absl::StrFormat("through the public API: %s", service_.Describe()),
          absl::StrFormat("model %s: ingested %d token samples of %d owners "
                          "in %.2f s",
                          model_id, samples_.size(), workload_.users.size(),
                          Seconds(ingest_time)),
          absl::StrFormat("S3T S=%d L=%d B=%d, %d epochs per position, LoRA "
                          "r=%d on q,v,o,gate,up,down: %lld positions, %lld "
                          "sample-visits in %.1f s",
                          config_.shards, config_.slices, config_.sequences,
                          config_.train.epochs_per_position,
                          config_.backbone.lora.rank,
                          static_cast<long long>(full_.positions),
                          static_cast<long long>(full_.sample_visits),
                          Seconds(full_.elapsed)),
          absl::StrCat("model fingerprint ", fingerprint_)},
         absl::StrFormat("\"samples\":%d,\"ingest_seconds\":%.3f,%s,"
                         "\"shards\":%d,\"slices\":%d,\"sequences\":%d,"
                         "\"epochs\":%d,\"dim\":%d,\"layers\":%d",
                         samples_.size(), Seconds(ingest_time),
                         SummaryJson("train", full_), config_.shards,
                         config_.slices, config_.sequences,
                         config_.train.epochs_per_position,
                         config_.backbone.decoder.dim,
                         config_.backbone.decoder.layers));
    return absl::OkStatus();
  }

  std::string NextModelId() { return absl::StrCat("lm-", ++models_); }

  // A trained model of its own for an experiment: the one Train made,
  // then new ones trained again from the same samples, which must come out
  // bitwise the same (their fingerprint) for the figures to compare.
  // `line` says which.
  absl::StatusOr<std::string> TrainedModel(std::string* line) {
    if (!trained_.empty()) {
      *line = absl::StrCat("model ", trained_, " (trained above)");
      return std::exchange(trained_, std::string());
    }
    const std::string model_id = NextModelId();
    absl::Duration ingest_time;
    OUBLI_ASSIGN_OR_RETURN(TrainCost cost,
                           CreateAndTrain(model_id, &ingest_time));
    OUBLI_ASSIGN_OR_RETURN(std::string fingerprint,
                           service_.Fingerprint(model_id));
    if (fingerprint != fingerprint_) {
      return absl::InternalError(absl::StrCat(
          "model ", model_id, " trained from the same samples has fingerprint ",
          fingerprint, ", not ", fingerprint_));
    }
    *line = absl::StrFormat(
        "model %s: created, ingested and trained again (%.1f s): same "
        "fingerprint",
        model_id, Seconds(cost.elapsed));
    return model_id;
  }

  struct Deleted {
    int requests = 0;
    absl::Duration total;          // all ForgetOwner calls
    absl::Duration max_forgotten;  // longest ACCEPTED -> FORGOTTEN
    std::vector<int> shards;       // affected, distinct
    std::vector<std::string> deletion_ids;
    absl::Time started;
    TrainCost trained_before;  // the model's training before the first call
  };

  absl::StatusOr<Deleted> ForgetOwners(const std::string& model_id,
                                       size_t begin, size_t end) {
    Deleted d;
    OUBLI_ASSIGN_OR_RETURN(d.trained_before, service_.TrainedSoFar(model_id));
    const absl::Time start = absl::Now();
    d.started = start;
    for (size_t i = begin; i < end; ++i) {
      OUBLI_ASSIGN_OR_RETURN(ForgetReceipt receipt,
                             service_.ForgetOwner(model_id, order_[i]->owner));
      ++d.requests;
      d.max_forgotten = std::max(d.max_forgotten, receipt.to_forgotten);
      d.deletion_ids.push_back(receipt.deletion_id);
      for (int shard : receipt.affected_shards) {
        if (std::find(d.shards.begin(), d.shards.end(), shard) ==
            d.shards.end()) {
          d.shards.push_back(shard);
        }
      }
    }
    d.total = absl::Now() - start;
    std::sort(d.shards.begin(), d.shards.end());
    return d;
  }

  // Train retrains the cut prefixes (the batch window never makes them due
  // on its own, but a shard left serving nothing is retrained at once);
  // then every deletion is watched to RESTORED. The cost is everything the
  // model trained from the first ForgetOwner to the last RESTORED, so the
  // retraining the service began by itself counts too.
  absl::StatusOr<TrainCost> Retrain(const std::string& model_id,
                                    const Deleted& deleted) {
    OUBLI_RETURN_IF_ERROR(service_.Train(model_id).status());
    for (const std::string& id : deleted.deletion_ids) {
      OUBLI_RETURN_IF_ERROR(service_.WaitForRestored(id, kRestoreTimeout));
    }
    OUBLI_ASSIGN_OR_RETURN(TrainCost after, service_.TrainedSoFar(model_id));
    TrainCost retrain;
    retrain.positions = after.positions - deleted.trained_before.positions;
    retrain.sample_visits =
        after.sample_visits - deleted.trained_before.sample_visits;
    retrain.elapsed = absl::Now() - deleted.started;
    return retrain;
  }

  std::string CostLine(const Deleted& d, const TrainCost& retrain) const {
    return absl::StrFormat(
        "cost: %d ForgetOwner calls in %.3f s (longest to FORGOTTEN %.1f "
        "ms), shards %s; retrain %lld positions, %lld sample-visits, %.1f s to "
        "RESTORED "
        "= %.1f%% of the full training's sample-visits (%.1f%% of its time)",
        d.requests, Seconds(d.total),
        absl::ToDoubleMilliseconds(d.max_forgotten),
        absl::StrJoin(d.shards, ","), static_cast<long long>(retrain.positions),
        static_cast<long long>(retrain.sample_visits), Seconds(retrain.elapsed),
        100.0 * retrain.sample_visits /
            std::max<int64_t>(full_.sample_visits, 1),
        100.0 * Seconds(retrain.elapsed) /
            std::max(Seconds(full_.elapsed), 1e-9));
  }

  std::string CostJson(const Deleted& d, const TrainCost& retrain) const {
    return absl::StrFormat(
        "\"requests\":%d,\"forget_calls_seconds\":%.4f,"
        "\"max_time_to_forgotten_ms\":%.3f,\"affected_shards\":%d,%s,%s",
        d.requests, Seconds(d.total),
        absl::ToDoubleMilliseconds(d.max_forgotten), d.shards.size(),
        SummaryJson("retrain", retrain), SummaryJson("full_train", full_));
  }

  absl::StatusOr<std::string> VerifyLine(const std::string& model_id,
                                         std::string* json, bool* match) {
    OUBLI_ASSIGN_OR_RETURN(VerifyResult v, service_.Verify(model_id));
    *match = v.match;
    *json = absl::StrFormat(
        "\"verify_match\":%s,\"verify_restored\":%s,\"verify_seconds\":%.3f",
        v.match ? "true" : "false", v.restored ? "true" : "false",
        Seconds(v.elapsed));
    return absl::StrFormat(
        "Verify: retrained from scratch on the retained data, bitwise match "
        "%s (restored %s, %.1f s); fingerprint %s",
        v.match ? "YES" : "NO", v.restored ? "yes" : "no", Seconds(v.elapsed),
        v.served_fingerprint);
  }

  absl::Status Forget(int k) {
    std::string model_line;
    OUBLI_ASSIGN_OR_RETURN(std::string model_id,
                           TrainedModel(&model_line));
    std::unique_ptr<LmScorer> scorer = service_.Scorer(model_id);
    const std::vector<const OwnerData*> forget(order_.begin(),
                                               order_.begin() + k);
    const MeasureOptions measure = Measure();
    OUBLI_ASSIGN_OR_RETURN(
        Figures before, MeasureFigures(*scorer, forget, retained_, holdout_,
                                       measure));
    OUBLI_ASSIGN_OR_RETURN(Deleted deleted, ForgetOwners(model_id, 0, k));
    OUBLI_ASSIGN_OR_RETURN(
        Figures forgotten, MeasureFigures(*scorer, forget, retained_, holdout_,
                                          measure));
    OUBLI_ASSIGN_OR_RETURN(TrainCost retrain, Retrain(model_id, deleted));
    OUBLI_ASSIGN_OR_RETURN(
        Figures restored, MeasureFigures(*scorer, forget, retained_, holdout_,
                                         measure));
    std::string verify_json;
    bool match = false;
    OUBLI_ASSIGN_OR_RETURN(std::string verify,
                           VerifyLine(model_id, &verify_json, &match));
    summary_.sizes.push_back({k, before, forgotten, restored,
                              retrain.sample_visits, Seconds(retrain.elapsed),
                              absl::ToDoubleMilliseconds(deleted.max_forgotten),
                              match});
    Emit("forget",
         {absl::StrFormat("forget %d owner(s) (%s%s) of %s", k,
                          forget.front()->owner, k > 1 ? " ..." : "",
                          model_line),
          "  BEFORE    " + FiguresText(before),
          "  FORGOTTEN " + FiguresText(forgotten),
          "  RESTORED  " + FiguresText(restored),
          "  " + CostLine(deleted, retrain), "  " + verify},
         absl::StrCat("\"forget_owners\":", k, ",\"model\":\"", model_id,
                      "\",", Prefixed("before_", before), ",",
                      Prefixed("forgotten_", forgotten), ",",
                      Prefixed("restored_", restored), ",",
                      CostJson(deleted, retrain), ",", verify_json));
    return absl::OkStatus();
  }

  absl::Status Rounds() {
    std::string model_line;
    OUBLI_ASSIGN_OR_RETURN(std::string model_id,
                           TrainedModel(&model_line));
    std::unique_ptr<LmScorer> scorer = service_.Scorer(model_id);
    const int n = options_.owners_per_round;
    for (int round = 1; round <= options_.rounds; ++round) {
      OUBLI_ASSIGN_OR_RETURN(
          Deleted deleted,
          ForgetOwners(model_id, static_cast<size_t>((round - 1) * n),
                       static_cast<size_t>(round * n)));
      OUBLI_ASSIGN_OR_RETURN(TrainCost retrain, Retrain(model_id, deleted));
      summary_.rounds_retrain_sample_visits += retrain.sample_visits;
      summary_.rounds_retrain_seconds += Seconds(retrain.elapsed);
      const std::vector<const OwnerData*> forgotten(
          order_.begin(), order_.begin() + round * n);
      OUBLI_ASSIGN_OR_RETURN(
          Figures f, MeasureFigures(*scorer, forgotten, retained_, holdout_,
                                    Measure()));
      std::vector<std::string> lines;
      if (round == 1) lines.push_back(model_line);
      lines.push_back(absl::StrFormat(
          "round %d: %d owner(s) forgotten so far | %s", round, round * n,
          FiguresText(f)));
      lines.push_back("  " + CostLine(deleted, retrain));
      std::string json = absl::StrCat(
          "\"round\":", round, ",\"forgotten_owners\":", round * n, ",",
          Prefixed("", f), ",", CostJson(deleted, retrain));
      if (round == options_.rounds) {
        summary_.rounds = round;
        summary_.round_forgotten_owners = round * n;
        summary_.after_rounds = f;
        std::string verify_json;
        OUBLI_ASSIGN_OR_RETURN(
            std::string verify,
            VerifyLine(model_id, &verify_json, &summary_.rounds_verify_match));
        lines.push_back("  " + verify);
        absl::StrAppend(&json, ",", verify_json);
      }
      Emit("round", std::move(lines), std::move(json));
    }
    return absl::OkStatus();
  }

  // FiguresJson with every key prefixed.
  static std::string Prefixed(const std::string& prefix, const Figures& f) {
    std::string json = FiguresJson(f);
    if (prefix.empty()) return json;
    std::string out;
    for (size_t i = 0; i < json.size(); ++i) {
      out += json[i];
      // A key's opening quote: first, or after a comma (no value holds one).
      if (json[i] == '"' && (i == 0 || json[i - 1] == ',')) out += prefix;
    }
    return out;
  }

  const StudyOptions& options_;
  LmService& service_;
  const std::function<void(const StudyRecord&)>& sink_;
  StudySummary& summary_;
  Workload workload_;
  ModelConfig config_;
  std::vector<Sample> samples_;  // every user's, ingested into each model
  int models_ = 0;               // trained models created so far
  std::string trained_;          // trained by Train, no experiment yet
  std::string fingerprint_;      // of every trained model before deletions
  TrainCost full_;
  std::vector<const OwnerData*> order_;     // users, forgotten in this order
  std::vector<const OwnerData*> retained_;  // never forgotten here
  std::vector<const OwnerData*> holdout_;
};

}  // namespace

absl::Status RunForgetStudy(
    const StudyOptions& options, LmService& service,
    const std::function<void(const StudyRecord&)>& sink,
    StudySummary* summary) {
  if (options.work_dir.empty() || !fs::is_directory(options.work_dir)) {
    return absl::InvalidArgumentError("the study needs an existing work_dir");
  }
  StudySummary ignored;
  return Study(options, service, sink,
               summary != nullptr ? summary : &ignored)
      .Run();
}

std::vector<std::string> SummaryTable(const StudySummary& s) {
  std::vector<std::string> out;
  if (s.sizes.empty()) return out;
  // The largest removal carries the most texts: its figures are the
  // least noisy.
  const SizeResult& r = s.sizes.back();
  const Figures &b = r.before, &f = r.forgotten, &a = r.restored;
  out.push_back(absl::StrFormat(
      "forget set: %d owners; holdout: never-seen profiles; exact unlearning "
      "should put AFTER at the holdout's level",
      r.owners));
  out.push_back(absl::StrFormat("%-34s %9s %9s %9s %9s", "property",
                                "holdout", "BEFORE", "FORGOTTEN", "AFTER"));
  auto row = [&](const char* name, double h, double x, double y, double z) {
    out.push_back(
        absl::StrFormat("%-34s %9.3f %9.3f %9.3f %9.3f", name, h, x, y, z));
  };
  row("(1) verbatim ROUGE-L, forget set", b.holdout.verbatim_rouge_l,
      b.forget.verbatim_rouge_l, f.forget.verbatim_rouge_l,
      a.forget.verbatim_rouge_l);
  row("(2) QA accuracy, forget set", b.holdout.qa_accuracy,
      b.forget.qa_accuracy, f.forget.qa_accuracy, a.forget.qa_accuracy);
  row("(3) MIA AUC forget vs holdout", 0.5, b.mia_auc_forget,
      f.mia_auc_forget, a.mia_auc_forget);
  row("    Min-K% AUC forget vs holdout", 0.5, b.min_k_auc_forget,
      f.min_k_auc_forget, a.min_k_auc_forget);
  row("    MIA AUC retained vs holdout", 0.5, b.mia_auc_retained,
      f.mia_auc_retained, a.mia_auc_retained);
  row("(4) utility: loss, retained", b.holdout.mean_loss,
      b.retained.mean_loss, f.retained.mean_loss, a.retained.mean_loss);
  row("    utility: QA accuracy, retained", b.holdout.qa_accuracy,
      b.retained.qa_accuracy, f.retained.qa_accuracy, a.retained.qa_accuracy);
  row("    utility: loss, holdout text", b.holdout.mean_loss,
      b.holdout.mean_loss, f.holdout.mean_loss, a.holdout.mean_loss);
  for (const SizeResult& size : s.sizes) {
    out.push_back(absl::StrFormat(
        "(5) %3d owner(s): FORGOTTEN in <= %.1f ms, retrain %lld "
        "sample-visits (%.1f%% of full), %.1f s; AUC after %.3f; Verify %s",
        size.owners, size.max_time_to_forgotten_ms,
        static_cast<long long>(size.retrain_sample_visits),
        100.0 * size.retrain_sample_visits /
            std::max<int64_t>(s.full_train_sample_visits, 1),
        size.retrain_seconds, size.restored.mia_auc_forget,
        size.verify_match ? "match" : "MISMATCH"));
  }
  if (s.rounds > 0) {
    const Figures& x = s.after_rounds;
    out.push_back(absl::StrFormat(
        "(6) after %d rounds (%d owners): MIA AUC forgotten %.3f, retained "
        "%.3f; QA forgotten %.3f, retained %.3f, holdout %.3f; retrain %.1f "
        "s in all; Verify %s",
        s.rounds, s.round_forgotten_owners, x.mia_auc_forget,
        x.mia_auc_retained, x.forget.qa_accuracy, x.retained.qa_accuracy,
        x.holdout.qa_accuracy, s.rounds_retrain_seconds,
        s.rounds_verify_match ? "match" : "MISMATCH"));
  }
  out.push_back(absl::StrFormat("full training: %lld sample-visits, %.1f s",
                                static_cast<long long>(s.full_train_sample_visits),
                                s.full_train_seconds));
  return out;
}

}  // namespace oubli::lm
