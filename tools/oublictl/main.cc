// oublictl: command-line client of the oubli gRPC API (oubli.v1.Oubli).
//
//   oublictl [--server=HOST:PORT] [--json] [--timeout_s=60]
//            [--tls_ca=CA.pem [--tls_cert=C.pem --tls_key=K.pem]
//             [--tls_server_name=NAME]] [--token_file=FILE] COMMAND [flags]
//
//   create  --model M [--config FILE]        FILE: key=value lines as written
//                                            by ConfigToText (common/config.h)
//   ingest  --model M (--fashion_mnist DIR [--split train --offset N
//                      --limit N --samples_per_owner N] | --csv FILE |
//                      --jsonl FILE --tokenizer MODEL.model)
//   train   --model M [--wait]
//   delete  --model M (--sample ID[,ID...] [ID...] | --owner O)
//           [--idempotency_key K]
//   status  --deletion MODEL/del-N [--watch]  (alias: receipt)
//   predict --model M --fashion_mnist DIR [--split test] [--limit N]
//   score   --model M (IDS... | --tokens_file FILE) [--tokenizer MODEL.model]
//                       log-likelihood of token sequences ("1,2,3" each)
//   generate --model M (--prompt_tokens 1,2,3 | --prompt TEXT --tokenizer
//            MODEL.model) [--max_tokens N] [--temperature T] [--seed S]
//            [--stop_tokens 2,...]
//   model   --model M
//   models  every model, with a status summary (ListModels)
//   deletions --model M [--pending | --stage S,...] [--owner O]
//           [--since T] [--until T] [--max N]   newest first (ListDeletions)
//   delete-model --model M [--wait]   a whole model, until PURGED with --wait
//   verify  --model M
//   audit   --model M --public_key KEY [--save FILE | --ledger_file FILE]
//                       check the signed deletion ledger (ExportLedger)
//   retire-worker NAME [--cluster_token_file FILE]
//                       a chunk holder gone for good with its disk: its
//                       chunks count as destroyed (RetireWorker)
//
// Human-readable output by default; --json prints one JSON object per line.
// Every RPC has a deadline of --timeout_s seconds except train --wait's
// polling loop as a whole and status --watch. `oublictl COMMAND --help`
// prints that command's synopsis, flags and an example.
// Exit codes: 0 ok; 1 the command failed (an RPC, its gRPC status on
// stderr, or reading its input); 2 usage
// (missing or unknown command, an unknown flag, a flag that does not apply
// to the command, a flag's missing or malformed value, a bad argument).
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "common/cluster_protocol.h"
#include "common/config.h"
#include "common/grpc_security.h"
#include "common/signing_key.h"
#include "common/status_macros.h"
#include "coordinator/api_config.h"
#include "coordinator/deletion_ledger.h"
#include "coordinator/request_validation.h"
#include "oubli/v1/oubli.grpc.pb.h"
#include "storage/datasets.h"
#include "tools/oublictl/client.h"
#include "tools/oublictl/language_model_commands.h"

ABSL_FLAG(std::string, server, "127.0.0.1:50051", "oubli server HOST:PORT");
ABSL_FLAG(bool, json, false, "print one JSON object per line");
ABSL_FLAG(std::string, cluster_token_file, "",
          "file with the coordinator's cluster token, which retire-worker "
          "must present when the coordinator has one and no access policy "
          "(with a policy: the admin role)");
ABSL_FLAG(int, timeout_s, 60, "deadline of each RPC, seconds");
ABSL_FLAG(std::string, tls_ca, "",
          "PEM CA the server's certificate must chain to; enables TLS");
ABSL_FLAG(std::string, tls_cert, "",
          "PEM client certificate to present (with --tls_key)");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert");
ABSL_FLAG(std::string, tls_server_name, "",
          "name the server's certificate must carry; default: the host of "
          "--server");
ABSL_FLAG(std::string, token_file, "",
          "file holding a bearer token, sent as 'authorization: Bearer'");
ABSL_FLAG(std::string, model, "", "model id");
ABSL_FLAG(std::string, config, "", "create: key=value config file");
ABSL_FLAG(std::string, fashion_mnist, "",
          "Fashion-MNIST directory (e.g. /usr/share/datasets/fashion-mnist)");
ABSL_FLAG(std::string, split, "",
          "Fashion-MNIST split: train (ingest "
          "default) or test (predict default)");
ABSL_FLAG(int64_t, offset, 0, "first Fashion-MNIST index to load");
ABSL_FLAG(int64_t, limit, -1, "max samples to load, -1 = all");
ABSL_FLAG(int, samples_per_owner, 20, "synthetic owners: samples per owner");
ABSL_FLAG(std::string, csv, "", "ingest: CSV file (label,owner,f1..fn)");
ABSL_FLAG(std::string, jsonl, "",
          "ingest: JSON lines of text samples, each {\"id\", \"owner\", "
          "\"text\" or \"prompt\" and \"answer\", optional \"label\" and "
          "\"deletion_risk\"}, tokenized with --tokenizer");
ABSL_FLAG(std::string, tokenizer, "",
          "SentencePiece model (.model) of a decoder: ingest --jsonl and "
          "generate --prompt tokenize with it (a sequence starts with its "
          "BOS id, a text or an answer ends with its EOS id, each when it "
          "has one), score and generate print text with it");
ABSL_FLAG(std::string, tokens_file, "",
          "score: token sequences, one per line (ids separated by commas or "
          "blanks; # comments)");
ABSL_FLAG(std::vector<std::string>, prompt_tokens, {},
          "generate: the prompt's token ids");
ABSL_FLAG(std::string, prompt, "",
          "generate: the prompt as text (with --tokenizer)");
ABSL_FLAG(int, max_tokens, 16, "generate: new tokens, 1..1024");
ABSL_FLAG(double, temperature, 0,
          "generate: 0 greedy; above 0 sampled with --seed");
ABSL_FLAG(uint64_t, seed, 0, "generate: seed of sampling");
ABSL_FLAG(std::vector<std::string>, stop_tokens, {},
          "generate: stop after one of these ids (default with --tokenizer: "
          "its end-of-sequence id)");
ABSL_FLAG(int, batch, 1000, "ingest: samples per streamed message");
ABSL_FLAG(bool, wait, false,
          "train: wait for the job to finish; delete-model: until PURGED");
ABSL_FLAG(std::vector<std::string>, sample, {}, "delete: sample ids");
ABSL_FLAG(std::string, owner, "", "delete: forget every sample of this owner");
ABSL_FLAG(std::string, idempotency_key, "", "delete: idempotency key");
ABSL_FLAG(std::string, deletion, "", "status: deletion id MODEL/del-N");
ABSL_FLAG(std::vector<std::string>, stage, {},
          "deletions: only these stages (accepted, forgotten, purged, "
          "restored)");
ABSL_FLAG(bool, pending, false, "deletions: only those short of RESTORED");
ABSL_FLAG(std::string, since, "",
          "deletions: accepted at or after this RFC 3339 time");
ABSL_FLAG(std::string, until, "",
          "deletions: accepted before this RFC 3339 time");
ABSL_FLAG(int, max, 50, "deletions: at most this many (0: all)");
ABSL_FLAG(std::string, public_key, "",
          "audit: PEM Ed25519 public key the ledger must be signed with "
          "(the coordinator's DATA_DIR/ledger-key.pem.pub)");
ABSL_FLAG(std::string, save, "",
          "audit: also write the exported ledger to this file");
ABSL_FLAG(std::string, ledger_file, "",
          "audit: check a ledger saved with --save, offline (no server)");
ABSL_FLAG(bool, watch, false, "status: stream stage changes until RESTORED");

namespace {

namespace v1 = ::oubli::v1;

using oubli::oublictl::Client;
using oubli::oublictl::GetModel;
using oubli::oublictl::IsUsageError;
using oubli::oublictl::PrintJson;
using oubli::oublictl::ProgressBar;
using oubli::oublictl::ReadWholeFile;
using oubli::oublictl::RequireFlag;
using oubli::oublictl::RpcStatus;
using oubli::oublictl::UsageError;

bool Json() { return absl::GetFlag(FLAGS_json); }

std::string FormatTimestamp(const google::protobuf::Timestamp& t) {
  const absl::Time time =
      absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
  return absl::FormatTime("%Y-%m-%d %H:%M:%E3S UTC", time, absl::UTCTimeZone());
}

void PrintReceipt(const v1::DeletionReceipt& r) {
  if (Json()) return PrintJson(r);
  std::printf("deletion %s  model %s  stage %s\n",
              r.deletion_id().empty() ? "(none)" : r.deletion_id().c_str(),
              r.model_id().c_str(), v1::DeletionStage_Name(r.stage()).c_str());
  if (!r.owner().empty()) std::printf("  owner        %s\n", r.owner().c_str());
  std::printf("  resolved     %d ids\n", r.resolved_ids_size());
  if (r.unknown_ids_size() > 0) {
    std::printf("  unknown      %s\n",
                absl::StrJoin(r.unknown_ids(), ", ").c_str());
  }
  for (const auto& a : r.already_deleted()) {
    std::printf("  already      %s (by %s)\n", a.sample_id().c_str(),
                a.deletion_id().c_str());
  }
  for (const auto& a : r.affected()) {
    std::printf("  cut          shard %d slice %d sequence %d: %d -> %d\n",
                a.shard(), a.slice(), a.sequence(), a.valid_length_before(),
                a.valid_length_after());
  }
  const std::pair<const char*, const google::protobuf::Timestamp*> stages[] = {
      {"ACCEPTED", r.has_accepted_at() ? &r.accepted_at() : nullptr},
      {"FORGOTTEN", r.has_forgotten_at() ? &r.forgotten_at() : nullptr},
      {"PURGED", r.has_purged_at() ? &r.purged_at() : nullptr},
      {"RESTORED", r.has_restored_at() ? &r.restored_at() : nullptr}};
  for (const auto& [name, time] : stages) {
    std::printf("  %-12s %s\n", name,
                time ? FormatTimestamp(*time).c_str() : "-");
  }
  std::printf("  fingerprint  before    %s\n", r.fingerprint_before().c_str());
  std::printf("               forgotten %s\n",
              r.fingerprint_forgotten().c_str());
  std::printf("               restored  %s\n",
              r.fingerprint_restored().c_str());
  if (!r.note().empty()) std::printf("  note         %s\n", r.note().c_str());
  std::fflush(stdout);
}

void PrintJob(const v1::Job& job) {
  if (Json()) return PrintJson(job);
  std::printf("%s  model %s  %s  %d/%d prefixes%s%s\n", job.job_id().c_str(),
              job.model_id().c_str(), v1::Job::State_Name(job.state()).c_str(),
              job.trained_prefixes(), job.total_prefixes(),
              job.error().empty() ? "" : "  error: ", job.error().c_str());
}

void PrintModel(const v1::Model& m) {
  if (Json()) return PrintJson(m);
  const v1::ModelConfig& c = m.config();
  std::printf("model %s  (%s)\n", m.model_id().c_str(),
              m.worker_placement().c_str());
  if (c.backbone() == v1::BACKBONE_KIND_DECODER) {
    const v1::DecoderConfig& d = c.decoder();
    const bool lm = d.objective() == v1::DECODER_OBJECTIVE_CAUSAL_LM;
    std::printf(
        "  S=%d L=%d B=%d  decoder %s %s%s  vocabulary %d  context %d  "
        "dim %d x %d layers  LoRA on %s  seed %llu\n",
        c.shards(), c.slices(), c.sequences(),
        d.layout() == v1::DECODER_LAYOUT_GPT2 ? "gpt2" : "llama",
        lm ? "language model" : "classifier",
        lm ? "" : absl::StrCat(" (", c.num_classes(), " classes)").c_str(),
        d.vocab_size(), d.context_length(), d.dim(), d.layers(),
        absl::StrJoin(d.lora_targets(), ",").c_str(),
        static_cast<unsigned long long>(c.seed()));
  } else {
    std::printf("  S=%d L=%d B=%d  input %dx%dx%d  classes %d  seed %llu\n",
                c.shards(), c.slices(), c.sequences(), c.input_channels(),
                c.input_height(), c.input_width(), c.num_classes(),
                static_cast<unsigned long long>(c.seed()));
  }
  const v1::PlacementConfig& placement = c.placement();
  std::string risk;
  if (placement.risk_slices() > 0) {
    const int k = placement.risk_shards();
    risk = absl::StrFormat(
        ", risk: deletion_risk >= %g in the last %d slice(s) of %s, "
        "declared share of deletions %g",
        placement.risk_threshold(), placement.risk_slices(),
        k == 0   ? std::string("every shard")
        : k == 1 ? std::string("shard 0")
                 : absl::StrFormat("shards 0..%d", k - 1),
        placement.risk_deletion_share());
  }
  std::printf("  placement %s%s  slice imbalance %.2f (largest / mean)\n",
              placement.by() == v1::PLACEMENT_SAMPLE ? "sample" : "owner",
              risk.c_str(), m.slice_imbalance());
  std::printf("  config fingerprint %s\n", m.config_fingerprint().c_str());
  std::printf("  model fingerprint  %s\n", m.fingerprint().c_str());
  std::printf(
      "  active samples %lld  missing prefixes %d  pending deletions "
      "%d  trained %s\n",
      static_cast<long long>(m.active_samples()), m.missing_prefixes(),
      m.pending_deletions(), m.training_requested() ? "yes" : "no");
  for (const auto& shard : m.shards()) {
    std::vector<std::string> lengths;
    for (const auto& s : shard.sequences()) {
      lengths.push_back(absl::StrCat(s.valid_length()));
    }
    std::printf(
        "  shard %d: %lld samples (per slice %s), valid lengths [%s], "
        "serving %s\n",
        shard.served().shard(),
        static_cast<long long>(shard.served().samples()),
        absl::StrJoin(shard.slice_samples(), "/").c_str(),
        absl::StrJoin(lengths, ",").c_str(),
        shard.served().served()
            ? absl::StrCat("sequence ", shard.served().sequence(), " prefix [",
                           absl::StrJoin(shard.served().prefix(), ","), "]")
                  .c_str()
            : "nothing");
  }
  for (const auto& w : m.workers()) {
    std::printf("  worker %s %s at %s: %s, %d busy, %lld positions trained%s\n",
                w.worker_id().c_str(), w.name().c_str(), w.address().c_str(),
                w.alive() ? "alive" : "DEAD", w.busy(),
                static_cast<long long>(w.positions_trained()),
                // Empty: a coordinator of an older release.
                w.environment_matches() || w.environment().empty()
                    ? ""
                    : absl::StrCat(", OTHER numeric environment (gets no "
                                   "work): ",
                                   w.environment())
                          .c_str());
  }
  for (const auto& r : m.retired_workers()) {
    std::printf(
        "  worker %s retired at %s (chunks count as destroyed)\n",
        r.name().c_str(),
        absl::FormatTime(absl::FromUnixSeconds(r.retired_at().seconds()))
            .c_str());
  }
  std::fflush(stdout);
}

absl::StatusOr<std::vector<oubli::Sample>> LoadFashionMnist(
    const std::string& default_split) {
  const std::string split = absl::GetFlag(FLAGS_split).empty()
                                ? default_split
                                : absl::GetFlag(FLAGS_split);
  return oubli::storage::LoadFashionMnist(
      absl::GetFlag(FLAGS_fashion_mnist), split, absl::GetFlag(FLAGS_offset),
      absl::GetFlag(FLAGS_limit), absl::GetFlag(FLAGS_samples_per_owner));
}

// ------------------------------------------------------------- commands

absl::Status Create(Client& client) {
  OUBLI_ASSIGN_OR_RETURN(const std::string model,
                         RequireFlag(absl::GetFlag(FLAGS_model), "model"));
  v1::CreateModelRequest request;
  request.set_model_id(model);
  if (const std::string path = absl::GetFlag(FLAGS_config); !path.empty()) {
    std::ifstream in(path);
    if (!in)
      return absl::FailedPreconditionError(
          absl::StrCat("cannot read --config ", path));
    std::stringstream text;
    text << in.rdbuf();
    auto config = oubli::ParseConfig(text.str());
    OUBLI_RETURN_IF_ERROR(config.status());
    *request.mutable_config() = oubli::coordinator::ConfigToProto(*config);
    // A file that names no placement leaves it to the server: the default
    // for a new model, the model's own for one that exists.
    const std::string whole = "\n" + text.str();
    if (whole.find("\nplacement") == std::string::npos) {
      request.mutable_config()->clear_placement();
    }
  }
  v1::Model response;
  OUBLI_RETURN_IF_ERROR(RpcStatus(
      client.stub().CreateModel(client.Context().get(), request, &response),
      "CreateModel"));
  PrintModel(response);
  return absl::OkStatus();
}

absl::Status Ingest(Client& client) {
  OUBLI_ASSIGN_OR_RETURN(const std::string model,
                         RequireFlag(absl::GetFlag(FLAGS_model), "model"));
  const int sources = !absl::GetFlag(FLAGS_csv).empty() +
                      !absl::GetFlag(FLAGS_fashion_mnist).empty() +
                      !absl::GetFlag(FLAGS_jsonl).empty();
  if (sources != 1) {
    return UsageError(
        "ingest needs one of --fashion_mnist DIR, --csv FILE and --jsonl "
        "FILE");
  }
  if (!absl::GetFlag(FLAGS_jsonl).empty()) {
    return oubli::oublictl::IngestJsonl(
        client, {.model = model,
                 .jsonl = absl::GetFlag(FLAGS_jsonl),
                 .tokenizer = absl::GetFlag(FLAGS_tokenizer),
                 .batch = absl::GetFlag(FLAGS_batch),
                 .json = Json()});
  }
  std::vector<oubli::Sample> samples;
  if (!absl::GetFlag(FLAGS_csv).empty()) {
    auto loaded = oubli::storage::LoadCsv(absl::GetFlag(FLAGS_csv), "csv-");
    OUBLI_RETURN_IF_ERROR(loaded.status());
    samples = *std::move(loaded);
  } else {
    OUBLI_ASSIGN_OR_RETURN(samples, LoadFashionMnist("train"));
  }
  if (samples.empty())
    return absl::FailedPreconditionError("no samples to ingest");
  OUBLI_RETURN_IF_ERROR(GetModel(client, model).status());
  return oubli::oublictl::StreamSamples(
      client, model, samples.size(), absl::GetFlag(FLAGS_batch), Json(),
      [&](size_t i, v1::Sample* s) {
        s->set_id(samples[i].id);
        s->set_owner(samples[i].owner);
        s->set_label(samples[i].label);
        s->set_features(samples[i].features);
        s->set_feature_type(samples[i].feature_type == oubli::FeatureType::kF32
                                ? v1::FEATURE_TYPE_F32
                                : v1::FEATURE_TYPE_U8);
      });
}

absl::Status Train(Client& client) {
  v1::TrainRequest request;
  OUBLI_ASSIGN_OR_RETURN(const std::string model,
                         RequireFlag(absl::GetFlag(FLAGS_model), "model"));
  request.set_model_id(model);
  v1::Job job;
  OUBLI_RETURN_IF_ERROR(RpcStatus(
      client.stub().Train(client.Context().get(), request, &job), "Train"));
  if (absl::GetFlag(FLAGS_wait)) {
    while (job.state() == v1::Job::PENDING || job.state() == v1::Job::RUNNING) {
      ProgressBar("train", job.progress(),
                  absl::StrCat(job.trained_prefixes(), "/",
                               job.total_prefixes(), " prefixes"));
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
      v1::GetJobRequest get;
      get.set_job_id(job.job_id());
      OUBLI_RETURN_IF_ERROR(RpcStatus(
          client.stub().GetJob(client.Context().get(), get, &job), "GetJob"));
    }
    ProgressBar("train", job.progress(),
                absl::StrCat(job.trained_prefixes(), "/", job.total_prefixes(),
                             " prefixes"));
    std::fprintf(stderr, "\n");
  }
  PrintJob(job);
  if (job.state() == v1::Job::FAILED)
    return absl::FailedPreconditionError(job.error());
  return absl::OkStatus();
}

absl::Status Delete(Client& client, const std::vector<std::string>& extra_ids) {
  OUBLI_ASSIGN_OR_RETURN(const std::string model,
                         RequireFlag(absl::GetFlag(FLAGS_model), "model"));
  std::vector<std::string> ids = absl::GetFlag(FLAGS_sample);
  ids.insert(ids.end(), extra_ids.begin(), extra_ids.end());
  const std::string owner = absl::GetFlag(FLAGS_owner);
  if (ids.empty() == owner.empty()) {
    return UsageError("delete needs either --sample ID... or --owner O");
  }
  v1::DeletionReceipt receipt;
  if (!owner.empty()) {
    v1::ForgetOwnerRequest request;
    request.set_model_id(model);
    request.set_owner(owner);
    request.set_idempotency_key(absl::GetFlag(FLAGS_idempotency_key));
    OUBLI_RETURN_IF_ERROR(RpcStatus(
        client.stub().ForgetOwner(client.Context().get(), request, &receipt),
        "ForgetOwner"));
  } else {
    v1::DeleteSamplesRequest request;
    request.set_model_id(model);
    for (const std::string& id : ids) request.add_sample_ids(id);
    request.set_idempotency_key(absl::GetFlag(FLAGS_idempotency_key));
    OUBLI_RETURN_IF_ERROR(RpcStatus(
        client.stub().DeleteSamples(client.Context().get(), request, &receipt),
        "DeleteSamples"));
  }
  PrintReceipt(receipt);
  return absl::OkStatus();
}

absl::Status Status(Client& client) {
  OUBLI_ASSIGN_OR_RETURN(
      const std::string deletion,
      RequireFlag(absl::GetFlag(FLAGS_deletion), "deletion"));
  if (!absl::GetFlag(FLAGS_watch)) {
    v1::GetDeletionRequest request;
    request.set_deletion_id(deletion);
    v1::DeletionReceipt receipt;
    OUBLI_RETURN_IF_ERROR(RpcStatus(
        client.stub().GetDeletion(client.Context().get(), request, &receipt),
        "GetDeletion"));
    PrintReceipt(receipt);
    return absl::OkStatus();
  }
  v1::WatchDeletionRequest request;
  request.set_deletion_id(deletion);
  auto context = client.Context(/*deadline=*/false);
  auto reader = client.stub().WatchDeletion(context.get(), request);
  v1::DeletionReceipt receipt;
  while (reader->Read(&receipt)) PrintReceipt(receipt);
  OUBLI_RETURN_IF_ERROR(RpcStatus(reader->Finish(), "WatchDeletion"));
  return absl::OkStatus();
}

absl::Status Predict(Client& client) {
  OUBLI_ASSIGN_OR_RETURN(const std::string model,
                         RequireFlag(absl::GetFlag(FLAGS_model), "model"));
  OUBLI_RETURN_IF_ERROR(
      RequireFlag(absl::GetFlag(FLAGS_fashion_mnist), "fashion_mnist")
          .status());
  OUBLI_ASSIGN_OR_RETURN(const std::vector<oubli::Sample> samples,
                         LoadFashionMnist("test"));
  if (samples.empty())
    return absl::FailedPreconditionError("no samples to predict");
  constexpr size_t kRowsPerRequest = oubli::coordinator::kMaxPredictRows;
  int64_t correct = 0;
  std::string fingerprint;
  // Shard answers by who computed them (worker name; "" = coordinator).
  std::map<std::string, int64_t> answered_by;
  int64_t from_base = 0;  // rows the base model answered (no shard served)
  for (size_t start = 0; start < samples.size(); start += kRowsPerRequest) {
    const size_t end = std::min(samples.size(), start + kRowsPerRequest);
    v1::PredictRequest request;
    request.set_model_id(model);
    request.set_rows(static_cast<int32_t>(end - start));
    std::vector<float> row;
    for (size_t i = start; i < end; ++i) {
      row.resize(samples[i].NumFeatures());
      oubli::DecodeFeatures(samples[i], row.data());
      request.mutable_features()->Add(row.begin(), row.end());
    }
    v1::PredictResponse response;
    OUBLI_RETURN_IF_ERROR(RpcStatus(
        client.stub().Predict(client.Context().get(), request, &response),
        "Predict"));
    for (size_t i = start; i < end; ++i) {
      correct += response.predicted_classes(static_cast<int>(i - start)) ==
                 samples[i].label;
    }
    fingerprint = response.fingerprint();
    from_base += response.from_base() ? response.rows() : 0;
    for (const v1::ServedShard& shard : response.served()) {
      if (shard.served()) ++answered_by[shard.served_by()];
    }
    if (Json()) PrintJson(response);
  }
  const double accuracy = static_cast<double>(correct) / samples.size();
  if (Json()) {
    std::printf(
        "{\"rows\":%zu,\"correct\":%lld,\"accuracy\":%.6f,"
        "\"fingerprint\":\"%s\"}\n",
        samples.size(), static_cast<long long>(correct), accuracy,
        fingerprint.c_str());
  } else {
    std::printf("predicted %zu rows  accuracy %.4f  model fingerprint %s\n",
                samples.size(), accuracy, fingerprint.c_str());
    if (from_base > 0) {
      std::printf(
          "  %lld rows answered by the public base model: no shard served "
          "(base_fallback)\n",
          static_cast<long long>(from_base));
    }
    std::vector<std::string> parts;
    for (const auto& [who, count] : answered_by) {
      parts.push_back(
          absl::StrCat(who.empty() ? "coordinator" : who, " ", count));
    }
    std::printf("shard answers by  %s\n", absl::StrJoin(parts, ", ").c_str());
  }
  return absl::OkStatus();
}

absl::Status Model(Client& client) {
  OUBLI_ASSIGN_OR_RETURN(const std::string model,
                         RequireFlag(absl::GetFlag(FLAGS_model), "model"));
  OUBLI_ASSIGN_OR_RETURN(const v1::Model response, GetModel(client, model));
  PrintModel(response);
  return absl::OkStatus();
}

absl::Status Models(Client& client) {
  v1::ListModelsRequest request;
  v1::ListModelsResponse response;
  OUBLI_RETURN_IF_ERROR(RpcStatus(
      client.stub().ListModels(client.Context().get(), request, &response),
      "ListModels"));
  if (Json()) {
    for (const v1::ModelSummary& m : response.models()) PrintJson(m);
    return absl::OkStatus();
  }
  std::printf("%-24s %10s %8s %8s %9s  %s\n", "MODEL", "SAMPLES", "SERVED",
              "FULL", "PENDING", "OLDEST PENDING");
  for (const v1::ModelSummary& m : response.models()) {
    std::printf(
        "%-24s %10lld %4d/%-3d %4d/%-3d %9d  %s\n", m.model_id().c_str(),
        static_cast<long long>(m.active_samples()), m.shards_served(),
        m.shards(), m.shards_full_length(), m.shards(), m.pending_deletions(),
        m.has_oldest_pending_accepted_at()
            ? absl::FormatTime(absl::FromUnixSeconds(
                                   m.oldest_pending_accepted_at().seconds()))
                  .c_str()
            : "-");
  }
  if (response.models().empty()) std::printf("(no models)\n");
  return absl::OkStatus();
}

absl::Status Deletions(Client& client) {
  OUBLI_ASSIGN_OR_RETURN(const std::string model,
                         RequireFlag(absl::GetFlag(FLAGS_model), "model"));
  v1::ListDeletionsRequest request;
  request.set_model_id(model);
  std::vector<std::string> stages = absl::GetFlag(FLAGS_stage);
  if (absl::GetFlag(FLAGS_pending)) {
    if (!stages.empty()) {
      return UsageError(
          "--pending and --stage exclude each other");
    }
    stages = {"accepted", "forgotten", "purged"};
  }
  for (const std::string& name : stages) {
    v1::DeletionStage stage;
    if (!v1::DeletionStage_Parse(absl::AsciiStrToUpper(name), &stage) ||
        stage == v1::DELETION_STAGE_UNSPECIFIED) {
      return UsageError(
          absl::StrCat("--stage: unknown stage '", name,
                       "' (accepted, forgotten, purged, restored)"));
    }
    request.add_stages(stage);
  }
  request.set_owner(absl::GetFlag(FLAGS_owner));
  auto set_time = [](const std::string& text, const char* flag,
                     google::protobuf::Timestamp* out) -> absl::Status {
    if (text.empty()) return absl::OkStatus();
    absl::Time time;
    std::string error;
    if (!absl::ParseTime(absl::RFC3339_full, text, &time, &error)) {
      return UsageError(absl::StrCat(
          "--", flag, ": '", text, "' is not an RFC 3339 time (", error, ")"));
    }
    const int64_t nanos = absl::ToUnixNanos(time);
    out->set_seconds(nanos / 1000000000);
    out->set_nanos(static_cast<int32_t>(nanos % 1000000000));
    return absl::OkStatus();
  };
  if (const std::string since = absl::GetFlag(FLAGS_since); !since.empty()) {
    OUBLI_RETURN_IF_ERROR(
        set_time(since, "since", request.mutable_accepted_after()));
  }
  if (const std::string until = absl::GetFlag(FLAGS_until); !until.empty()) {
    OUBLI_RETURN_IF_ERROR(
        set_time(until, "until", request.mutable_accepted_before()));
  }
  const int max = absl::GetFlag(FLAGS_max);
  if (max < 0) return UsageError("--max: must be >= 0");
  int shown = 0;
  if (!Json()) {
    std::printf("%-28s %-10s %-27s %8s  %s\n", "DELETION", "STAGE", "ACCEPTED",
                "SAMPLES", "REQUEST");
  }
  while (true) {
    request.set_page_size(max == 0 ? 1000 : std::min(1000, max - shown));
    v1::ListDeletionsResponse response;
    OUBLI_RETURN_IF_ERROR(
        RpcStatus(client.stub().ListDeletions(client.Context().get(), request,
                                              &response),
                  "ListDeletions"));
    for (const v1::DeletionReceipt& r : response.deletions()) {
      ++shown;
      if (Json()) {
        PrintJson(r);
        continue;
      }
      std::printf(
          "%-28s %-10s %-27s %8d  %s\n", r.deletion_id().c_str(),
          v1::DeletionStage_Name(r.stage()).c_str(),
          r.has_accepted_at() ? FormatTimestamp(r.accepted_at()).c_str() : "-",
          r.resolved_count(),
          r.owner().empty() ? "by sample ids"
                            : absl::StrCat("owner ", r.owner()).c_str());
    }
    if (response.next_page_token().empty() || (max != 0 && shown >= max)) {
      if (!Json() && !response.next_page_token().empty()) {
        std::printf("(more: raise --max, or 0 for all)\n");
      }
      break;
    }
    request.set_page_token(response.next_page_token());
  }
  if (!Json() && shown == 0) std::printf("(no deletions match)\n");
  return absl::OkStatus();
}

absl::Status DeleteModel(Client& client) {
  OUBLI_ASSIGN_OR_RETURN(const std::string model,
                         RequireFlag(absl::GetFlag(FLAGS_model), "model"));
  v1::DeleteModelRequest request;
  request.set_model_id(model);
  v1::ModelDeletion deletion;
  std::string last_note;
  while (true) {
    OUBLI_RETURN_IF_ERROR(RpcStatus(
        client.stub().DeleteModel(client.Context().get(), request, &deletion),
        "DeleteModel"));
    if (!absl::GetFlag(FLAGS_wait) || deletion.stage() == v1::PURGED) break;
    // Follow without ever starting a deletion again.
    request.set_status_only(true);
    if (!Json() && deletion.note() != last_note) {
      std::fprintf(stderr, "waiting: %s\n", deletion.note().c_str());
      last_note = deletion.note();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  if (Json()) {
    PrintJson(deletion);
  } else {
    std::printf("model %s: %s (accepted %s%s%s)%s%s\n", model.c_str(),
                v1::DeletionStage_Name(deletion.stage()).c_str(),
                FormatTimestamp(deletion.accepted_at()).c_str(),
                deletion.has_purged_at() ? ", purged " : "",
                deletion.has_purged_at()
                    ? FormatTimestamp(deletion.purged_at()).c_str()
                    : "",
                deletion.note().empty() ? "" : "; ", deletion.note().c_str());
  }
  return absl::OkStatus();
}

absl::Status Verify(Client& client) {
  v1::VerifyRequest request;
  OUBLI_ASSIGN_OR_RETURN(const std::string model,
                         RequireFlag(absl::GetFlag(FLAGS_model), "model"));
  request.set_model_id(model);
  v1::VerifyResponse report;
  OUBLI_RETURN_IF_ERROR(
      RpcStatus(client.stub().Verify(client.Context().get(), request, &report),
                "Verify"));
  if (Json()) {
    PrintJson(report);
  } else {
    std::printf("restored %s  match %s  (%lld ms)\n",
                report.restored() ? "yes" : "no", report.match() ? "yes" : "no",
                static_cast<long long>(report.elapsed_ms()));
    std::printf("  served  %s\n  scratch %s\n",
                report.served_fingerprint().c_str(),
                report.scratch_fingerprint().c_str());
  }
  if (!report.match())
    return absl::FailedPreconditionError("served model does not match");
  return absl::OkStatus();
}

absl::Status SaveLedger(const std::string& path,
                        const std::vector<std::string>& records) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << oubli::coordinator::EncodeLedgerFile(records);
  out.close();
  if (!out) {
    return absl::InternalError(absl::StrCat("--save ", path, ": write failed"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> LoadLedger(const std::string& path) {
  OUBLI_ASSIGN_OR_RETURN(const std::string bytes,
                         ReadWholeFile(path, "ledger_file"));
  return oubli::coordinator::DecodeLedgerFile(bytes);
}

// Checks the model's deletion ledger: signatures, chain, stage order
// (VerifyLedger); online, also that the service's receipts agree with it.
absl::Status Audit(Client& client) {
  OUBLI_ASSIGN_OR_RETURN(const std::string model,
                         RequireFlag(absl::GetFlag(FLAGS_model), "model"));
  OUBLI_ASSIGN_OR_RETURN(
      const std::string key_path,
      RequireFlag(absl::GetFlag(FLAGS_public_key), "public_key"));
  OUBLI_ASSIGN_OR_RETURN(const std::string key_pem,
                         ReadWholeFile(key_path, "public_key"));
  absl::StatusOr<std::unique_ptr<oubli::VerifyingKey>> key =
      oubli::VerifyingKey::FromPem(key_pem);
  if (!key.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--public_key ", key_path, ": ", key.status().message()));
  }
  const std::string offline = absl::GetFlag(FLAGS_ledger_file);
  // One export, whole: every entry up to the head the server reported.
  auto export_ledger = [&]() -> absl::StatusOr<std::vector<std::string>> {
    v1::ExportLedgerRequest request;
    request.set_model_id(model);
    std::unique_ptr<grpc::ClientContext> context = client.Context();
    std::unique_ptr<grpc::ClientReader<v1::ExportLedgerResponse>> reader =
        client.stub().ExportLedger(context.get(), request);
    std::vector<std::string> exported;
    int64_t head = -1;
    v1::ExportLedgerResponse page;
    while (reader->Read(&page)) {
      if (head < 0) head = page.head_sequence();
      for (const v1::LedgerRecord& record : page.records()) {
        exported.push_back(record.SerializeAsString());
      }
    }
    OUBLI_RETURN_IF_ERROR(RpcStatus(reader->Finish(), "ExportLedger"));
    if (static_cast<int64_t>(exported.size()) != std::max<int64_t>(head, 0)) {
      return absl::DataLossError(absl::StrCat(
          "ExportLedger sent ", exported.size(), " entries of ", head));
    }
    return exported;
  };
  auto verify = [&](const std::vector<std::string>& records)
      -> absl::StatusOr<oubli::coordinator::LedgerSummary> {
    absl::StatusOr<oubli::coordinator::LedgerSummary> summary =
        oubli::coordinator::VerifyLedger(model, records, **key);
    if (!summary.ok()) {
      return absl::DataLossError(
          absl::StrCat("ledger of model '", model,
                       "' FAILED: ", summary.status().message()));
    }
    return summary;
  };
  auto receipt_stage = [&](const std::string& id) -> absl::StatusOr<int> {
    v1::GetDeletionRequest request;
    request.set_deletion_id(absl::StrCat(model, "/", id));
    v1::DeletionReceipt receipt;
    OUBLI_RETURN_IF_ERROR(RpcStatus(
        client.stub().GetDeletion(client.Context().get(), request, &receipt),
        "GetDeletion"));
    return static_cast<int>(receipt.stage());
  };
  auto stage_name = [](int stage) {
    return v1::DeletionStage_Name(static_cast<v1::DeletionStage>(stage));
  };

  std::vector<std::string> records;
  if (!offline.empty()) {
    OUBLI_ASSIGN_OR_RETURN(records, LoadLedger(offline));
  } else {
    OUBLI_ASSIGN_OR_RETURN(records, export_ledger());
  }
  OUBLI_ASSIGN_OR_RETURN(oubli::coordinator::LedgerSummary summary,
                         verify(records));
  // Online, the receipts must agree with the ledger. Deletions move on
  // while we look, so each claim is checked in the order that makes it
  // hold on a healthy server: the ledger never signs more than the service
  // reports (ledger read first, then receipts), and a PURGED or RESTORED
  // receipt, durable only with its ledger entry, is in the ledger (receipts
  // first, then a second export).
  int64_t receipts_checked = 0;
  std::vector<std::string> disagreements;
  if (offline.empty()) {
    std::map<std::string, int> reported;
    bool behind = false;
    for (const auto& [id, stages] : summary.stages) {
      OUBLI_ASSIGN_OR_RETURN(reported[id], receipt_stage(id));
      ++receipts_checked;
      behind = behind || reported[id] < stages.back();
    }
    if (behind) {
      // A stage is made durable (and ledgered) just before the service
      // reports it: look again, before the second export.
      absl::SleepFor(absl::Seconds(1));
      for (const auto& [id, stages] : summary.stages) {
        if (reported[id] < stages.back()) {
          OUBLI_ASSIGN_OR_RETURN(reported[id], receipt_stage(id));
        }
      }
    }
    OUBLI_ASSIGN_OR_RETURN(records, export_ledger());
    OUBLI_ASSIGN_OR_RETURN(oubli::coordinator::LedgerSummary later,
                           verify(records));
    for (const auto& [id, stages] : summary.stages) {
      const int stage = reported[id];
      auto in_later = later.stages.find(id);
      const int ledgered_later =
          in_later == later.stages.end() ? 0 : in_later->second.back();
      if (stage < stages.back() ||
          (stage >= v1::PURGED && ledgered_later < stage)) {
        disagreements.push_back(absl::StrCat(
            id, ": receipt says ", stage_name(stage), ", ledger reaches ",
            stage_name(stage < stages.back() ? stages.back()
                                             : ledgered_later)));
      }
    }
    summary = std::move(later);
  }
  if (const std::string save = absl::GetFlag(FLAGS_save); !save.empty()) {
    OUBLI_RETURN_IF_ERROR(SaveLedger(save, records));
  }
  int64_t at_stage[5] = {0, 0, 0, 0, 0};
  for (const auto& [id, stages] : summary.stages) ++at_stage[stages.back()];
  if (Json()) {
    std::printf(
        "{\"model_id\":\"%s\",\"entries\":%lld,\"deletions\":%zu,"
        "\"accepted\":%lld,\"forgotten\":%lld,\"purged\":%lld,"
        "\"restored\":%lld,\"head\":\"%s\",\"receipts_checked\":%lld,"
        "\"disagreements\":%zu}\n",
        model.c_str(), static_cast<long long>(summary.entries),
        summary.stages.size(), static_cast<long long>(at_stage[1]),
        static_cast<long long>(at_stage[2]),
        static_cast<long long>(at_stage[3]),
        static_cast<long long>(at_stage[4]), summary.head_hash_hex.c_str(),
        static_cast<long long>(receipts_checked), disagreements.size());
  } else {
    std::printf(
        "ledger of %s: %lld entries signed by key %s, chain intact\n"
        "  %zu deletions; last stage ACCEPTED %lld, FORGOTTEN %lld, PURGED "
        "%lld, RESTORED %lld\n  head %s\n",
        model.c_str(), static_cast<long long>(summary.entries),
        (*key)->key_id().c_str(), summary.stages.size(),
        static_cast<long long>(at_stage[1]),
        static_cast<long long>(at_stage[2]),
        static_cast<long long>(at_stage[3]),
        static_cast<long long>(at_stage[4]),
        summary.head_hash_hex.empty() ? "(empty)"
                                      : summary.head_hash_hex.c_str());
    if (offline.empty()) {
      std::printf(
          "  receipts agree: %lld of %lld\n",
          static_cast<long long>(receipts_checked -
                                 static_cast<int64_t>(disagreements.size())),
          static_cast<long long>(receipts_checked));
    }
  }
  for (const std::string& d : disagreements) {
    std::fprintf(stderr, "oublictl: %s\n", d.c_str());
  }
  if (!disagreements.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        disagreements.size(), " receipt(s) disagree with the ledger"));
  }
  return absl::OkStatus();
}

absl::Status RetireWorker(Client& client,
                          const std::vector<std::string>& rest) {
  v1::RetireWorkerRequest request;
  request.set_name(rest[0]);
  std::unique_ptr<grpc::ClientContext> context = client.Context();
  if (const std::string path = absl::GetFlag(FLAGS_cluster_token_file);
      !path.empty()) {
    OUBLI_ASSIGN_OR_RETURN(const std::string token,
                           oubli::ReadClusterToken(path));
    context->AddMetadata(oubli::kClusterTokenMetadata, token);
  }
  v1::RetiredWorker retired;
  OUBLI_RETURN_IF_ERROR(
      RpcStatus(client.stub().RetireWorker(context.get(), request, &retired),
                "RetireWorker"));
  if (Json()) {
    PrintJson(retired);
  } else {
    std::printf(
        "worker %s retired at %s: its chunks count as destroyed, and it "
        "cannot register again under this name\n",
        retired.name().c_str(),
        absl::FormatTime(absl::FromUnixSeconds(retired.retired_at().seconds()))
            .c_str());
  }
  return absl::OkStatus();
}

}  // namespace

namespace {

// Per-command help and the flags each command takes (besides --server,
// --json and --timeout_s, which every command takes).
struct CommandHelp {
  const char* name;
  const char* synopsis;
  std::vector<const char*> flags;
  const char* example;
};

const std::vector<CommandHelp>& Commands() {
  static const auto* const kCommands = new std::vector<CommandHelp>{
      {"create",
       "create --model M [--config FILE]: create a model",
       {"model", "config"},
       "oublictl create --model fm --config model.conf"},
      {"ingest",
       "ingest --model M (--fashion_mnist DIR | --csv FILE | --jsonl FILE "
       "--tokenizer MODEL.model): stream samples (JSON lines of text are "
       "tokenized and checked whole before any is sent)",
       {"model", "fashion_mnist", "split", "offset", "limit",
        "samples_per_owner", "csv", "jsonl", "tokenizer", "batch"},
       "oublictl ingest --model fm --fashion_mnist "
       "/usr/share/datasets/fashion-mnist --limit 20000"},
      {"train",
       "train --model M [--wait]: train every missing prefix",
       {"model", "wait"},
       "oublictl train --model fm --wait"},
      {"delete",
       "delete --model M (--sample ID[,ID...] [ID...] | --owner O): delete "
       "samples or forget an owner; the receipt comes once FORGOTTEN",
       {"model", "sample", "owner", "idempotency_key"},
       "oublictl delete --model fm --owner owner-3"},
      {"status",
       "status --deletion MODEL/del-N [--watch]: a receipt",
       {"deletion", "watch"},
       "oublictl status --deletion fm/del-000000000001 --watch"},
      {"receipt",
       "receipt: the same as status",
       {"deletion", "watch"},
       "oublictl receipt --deletion fm/del-000000000001"},
      {"predict",
       "predict --model M --fashion_mnist DIR: accuracy on a split",
       {"model", "fashion_mnist", "split", "offset", "limit",
        "samples_per_owner"},
       "oublictl predict --model fm --fashion_mnist "
       "/usr/share/datasets/fashion-mnist"},
      {"score",
       "score --model M (IDS... | --tokens_file FILE) [--tokenizer "
       "MODEL.model]: log-likelihood of each token of token sequences under a "
       "causal language model",
       {"model", "tokens_file", "tokenizer"},
       "oublictl score --model lm 1,15,8,3 1,15,9"},
      {"generate",
       "generate --model M (--prompt_tokens 1,2,3 | --prompt TEXT --tokenizer "
       "MODEL.model) [--max_tokens N] [--temperature T --seed S] "
       "[--stop_tokens 2,...]: continue a prompt, greedy or sampled",
       {"model", "prompt_tokens", "prompt", "tokenizer", "max_tokens",
        "temperature", "seed", "stop_tokens"},
       "oublictl generate --model lm --tokenizer lm.model --prompt "
       "'where was alice born?' --max_tokens 20"},
      {"model",
       "model --model M: config, shards, workers",
       {"model"},
       "oublictl model --model fm"},
      {"models",
       "models: every model with samples, shards served and pending "
       "deletions",
       {},
       "oublictl models"},
      {"deletions",
       "deletions --model M [--pending | --stage S,...] [--owner O] [--since "
       "T] [--until T] [--max N]: a model's deletions, newest first",
       {"model", "pending", "stage", "owner", "since", "until", "max"},
       "oublictl deletions --model fm --pending"},
      {"delete-model",
       "delete-model --model M [--wait]: delete a whole model (samples, "
       "checkpoints, worker copies)",
       {"model", "wait"},
       "oublictl delete-model --model old-model --wait"},
      {"verify",
       "verify --model M: retrain from scratch and compare bit for bit",
       {"model"},
       "oublictl verify --model fm"},
      {"audit",
       "audit --model M --public_key KEY [--save FILE | --ledger_file FILE]: "
       "check the signed deletion ledger",
       {"model", "public_key", "save", "ledger_file"},
       "oublictl audit --model fm --public_key data/ledger-key.pem.pub"},
      {"retire-worker",
       "retire-worker NAME: a chunk holder gone for good with its disk",
       {"cluster_token_file"},
       "oublictl retire-worker worker-2 --tls_ca .oubli/cluster/tls/ca.crt "
       "--token_file .oubli/cluster/operator.token"},
  };
  return *kCommands;
}

const CommandHelp* FindCommand(absl::string_view name) {
  for (const CommandHelp& command : Commands()) {
    if (name == command.name) return &command;
  }
  return nullptr;
}

void PrintFlag(const char* name) {
  const absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
  if (flag == nullptr) return;
  const std::string default_value = flag->DefaultValue();
  std::printf("  --%-20s %s%s\n", name, flag->Help().c_str(),
              default_value.empty() || default_value == "\"\""
                  ? ""
                  : absl::StrCat(" (default ", default_value, ")").c_str());
}

// Flags every command takes: where and how to connect, output format.
constexpr const char* kConnectionFlags[] = {
    "server",   "json",    "timeout_s",       "tls_ca",
    "tls_cert", "tls_key", "tls_server_name", "token_file"};

void PrintCommandHelp(const CommandHelp& command) {
  std::printf("usage: oublictl [--server=HOST:PORT] [--json] %s\n",
              command.synopsis);
  std::printf("flags:\n");
  for (const char* flag : command.flags) PrintFlag(flag);
  for (const char* flag : kConnectionFlags) PrintFlag(flag);
  std::printf("example:\n  %s\n", command.example);
}

// The command line as oublictl reads it, checked before absl parses it:
// absl exits 1 on an unknown flag, a missing or a bad value, which are
// usage errors (exit 2) here, reported with the command they were given to.
struct ScannedArgs {
  std::string command;             // the first positional argument, or ""
  std::vector<std::string> flags;  // each flag's name (--nojson: "json")
  std::string error;               // the first mistake, or ""
};

ScannedArgs ScanArgs(int argc, char** argv) {
  ScannedArgs scanned;
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (arg == "--") break;
    if (arg.size() < 2 || arg[0] != '-') {
      if (scanned.command.empty()) scanned.command = std::string(arg);
      continue;
    }
    arg.remove_prefix(arg[1] == '-' ? 2 : 1);
    const size_t equals = arg.find('=');
    const bool has_value = equals != absl::string_view::npos;
    std::string name(arg.substr(0, equals));
    absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    if (flag == nullptr && !has_value && absl::StartsWith(name, "no")) {
      // --nojson negates a bool flag.
      absl::CommandLineFlag* positive =
          absl::FindCommandLineFlag(name.substr(2));
      if (positive != nullptr && positive->IsOfType<bool>()) {
        scanned.flags.push_back(name.substr(2));
        continue;
      }
    }
    if (flag == nullptr) {
      if (scanned.error.empty()) {
        scanned.error = absl::StrCat("unknown flag --", name);
      }
      continue;
    }
    // absl's flags that read more flags (from a file or the environment)
    // or let unknown ones pass would bypass this scan: absl then exits 1
    // on a mistake in them, without naming the command.
    if (name == "flagfile" || name == "fromenv" || name == "tryfromenv" ||
        name == "undefok") {
      if (scanned.error.empty()) {
        scanned.error = absl::StrCat(
            "--", name, " is not supported: give oublictl its flags on the "
            "command line");
      }
      continue;
    }
    scanned.flags.push_back(name);
    std::string value;
    if (has_value) {
      value = std::string(arg.substr(equals + 1));
    } else if (flag->IsOfType<bool>()) {
      continue;
    } else if (i + 1 < argc) {
      value = argv[++i];  // "--limit -1": the next argument is the value
    } else {
      if (scanned.error.empty()) {
        scanned.error = absl::StrCat("--", name, " needs a value");
      }
      continue;
    }
    // Sets the flag, as absl's parse does again after this scan.
    if (std::string why; !flag->ParseFrom(value, &why) &&
                         scanned.error.empty()) {
      scanned.error = absl::StrCat("--", name, "=", value, ": ", why);
    }
  }
  return scanned;
}

}  // namespace

int main(int argc, char** argv) {
  // `oublictl COMMAND --help`, before absl takes --help for its own
  // listing of every flag of the program.
  const CommandHelp* named = nullptr;
  bool help = false;
  for (int i = 1; i < argc; ++i) {
    const absl::string_view arg = argv[i];
    if (arg == "--") break;
    if (arg == "--help" || arg == "-help" || arg == "-h") help = true;
    if (named == nullptr) named = FindCommand(arg);
  }
  if (help && named != nullptr) {
    PrintCommandHelp(*named);
    return 0;
  }
  if (help) {
    std::printf(
        "usage: oublictl [--server=HOST:PORT] [--json] COMMAND [flags]\n"
        "commands (oublictl COMMAND --help for each):\n");
    for (const CommandHelp& command : Commands()) {
      std::printf("  %s\n", command.synopsis);
    }
    std::printf(
        "exit codes: 0 ok, 1 the command failed (an RPC or its input), "
        "2 usage\n");
    return 0;
  }
  absl::SetProgramUsageMessage(
      "oublictl [--server=HOST:PORT] [--json] COMMAND [flags]; commands: "
      "create ingest train delete status receipt predict score generate "
      "model models deletions delete-model verify audit retire-worker");
  const ScannedArgs scanned = ScanArgs(argc, argv);
  if (!scanned.error.empty()) {
    if (FindCommand(scanned.command) != nullptr) {
      std::fprintf(stderr,
                   "oublictl %s: %s (oublictl %s --help lists its flags)\n",
                   scanned.command.c_str(), scanned.error.c_str(),
                   scanned.command.c_str());
    } else {
      std::fprintf(stderr, "oublictl: %s (oublictl --help lists commands)\n",
                   scanned.error.c_str());
    }
    return 2;
  }
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  if (args.size() < 2) {
    std::fprintf(stderr, "%s\n", absl::ProgramUsageMessage().data());
    return 2;
  }
  const std::string command = args[1];
  const std::vector<std::string> rest(args.begin() + 2, args.end());
  if (const CommandHelp* known = FindCommand(command); known != nullptr) {
    for (const std::string& flag : scanned.flags) {
      if (std::find(std::begin(kConnectionFlags), std::end(kConnectionFlags),
                    flag) != std::end(kConnectionFlags)) {
        continue;
      }
      if (std::find(known->flags.begin(), known->flags.end(), flag) ==
          known->flags.end()) {
        std::fprintf(stderr,
                     "oublictl %s: --%s does not apply to %s (oublictl %s "
                     "--help lists its flags)\n",
                     command.c_str(), flag.c_str(), command.c_str(),
                     command.c_str());
        return 2;
      }
    }
  }
  if (!rest.empty() && command != "delete" && command != "retire-worker" &&
      command != "score") {
    std::fprintf(stderr, "oublictl: unexpected argument '%s'\n",
                 rest[0].c_str());
    return 2;
  }
  if (command == "retire-worker" && rest.size() != 1) {
    std::fprintf(stderr,
                 "oublictl: retire-worker takes one worker name (its --name; "
                 "put -- before a name starting with '-')\n");
    return 2;
  }
  oubli::TlsDialFiles tls;
  tls.ca = absl::GetFlag(FLAGS_tls_ca);
  tls.cert = absl::GetFlag(FLAGS_tls_cert);
  tls.key = absl::GetFlag(FLAGS_tls_key);
  tls.server_name = absl::GetFlag(FLAGS_tls_server_name);
  if (absl::Status s = oubli::CheckTlsDialFiles(tls); !s.ok()) {
    std::fprintf(stderr, "oublictl: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  std::string bearer_token;
  if (const std::string path = absl::GetFlag(FLAGS_token_file); !path.empty()) {
    absl::StatusOr<std::string> token = oubli::ReadClusterToken(path);
    if (!token.ok()) {
      std::fprintf(stderr, "oublictl: --token_file %s: %s\n", path.c_str(),
                   std::string(token.status().message()).c_str());
      return 2;
    }
    bearer_token = *std::move(token);
    const std::string server = absl::GetFlag(FLAGS_server);
    const std::string host = server.substr(0, server.rfind(':'));
    if (!tls.enabled() && !oubli::IsLoopbackHost(host)) {
      std::fprintf(stderr,
                   "oublictl: refusing to send the bearer token in plaintext "
                   "to %s: give --tls_ca\n",
                   server.c_str());
      return 2;
    }
  }
  Client client(absl::GetFlag(FLAGS_server), tls, std::move(bearer_token),
                absl::Seconds(absl::GetFlag(FLAGS_timeout_s)));
  absl::Status status;
  if (command == "create") {
    status = Create(client);
  } else if (command == "ingest") {
    status = Ingest(client);
  } else if (command == "train") {
    status = Train(client);
  } else if (command == "delete") {
    status = Delete(client, rest);
  } else if (command == "status" || command == "receipt") {
    status = Status(client);
  } else if (command == "predict") {
    status = Predict(client);
  } else if (command == "score") {
    status = oubli::oublictl::Score(
        client, {.model = absl::GetFlag(FLAGS_model),
                 .sequences = rest,
                 .tokens_file = absl::GetFlag(FLAGS_tokens_file),
                 .tokenizer = absl::GetFlag(FLAGS_tokenizer),
                 .json = Json()});
  } else if (command == "generate") {
    status = oubli::oublictl::Generate(
        client, {.model = absl::GetFlag(FLAGS_model),
                 .prompt_tokens = absl::GetFlag(FLAGS_prompt_tokens),
                 .prompt = absl::GetFlag(FLAGS_prompt),
                 .tokenizer = absl::GetFlag(FLAGS_tokenizer),
                 .max_tokens = absl::GetFlag(FLAGS_max_tokens),
                 .temperature = absl::GetFlag(FLAGS_temperature),
                 .seed = absl::GetFlag(FLAGS_seed),
                 .stop_tokens = absl::GetFlag(FLAGS_stop_tokens),
                 .json = Json()});
  } else if (command == "model") {
    status = Model(client);
  } else if (command == "models") {
    status = Models(client);
  } else if (command == "deletions") {
    status = Deletions(client);
  } else if (command == "delete-model") {
    status = DeleteModel(client);
  } else if (command == "verify") {
    status = Verify(client);
  } else if (command == "audit") {
    status = Audit(client);
  } else if (command == "retire-worker") {
    status = RetireWorker(client, rest);
  } else {
    std::fprintf(stderr, "oublictl: unknown command '%s'\n", command.c_str());
    return 2;
  }
  if (!status.ok()) {
    std::fprintf(stderr, "oublictl: %s\n",
                 std::string(status.message()).c_str());
    return IsUsageError(status) ? 2 : 1;
  }
  return 0;
}
