// `oubli-bench soak`: issue 16's stream of deletions, through the public
// gRPC API, against an oubli-coordinator and N oubli-worker processes on
// loopback (started here, from the build next to this binary). The model is
// the service demo's (MLP + LoRA, S=4, L=4, B=2, base pretrained on
// Fashion-MNIST train[0, 10000), owner placement) with BATCHED retraining
// (5 s window, max_batch 8); 20,000 user samples, 20 per owner, are
// ingested and trained. Then for --minutes: one ForgetOwner per second, a
// DeleteSamples of 3 ids every 1.5 s (ids of owners never forgotten), and
// Predict from 4 clients at a steady rate each. After the stream: wait until
// every acknowledged deletion is RESTORED, then Verify.
//
// Output, one JSON object per line:
//   soak_setup    pretraining, ingest and first training times
//   soak_minute   one per minute of the stream (see EmitMinute)
//   soak          the whole stream against issue 16's targets, the restore
//                 rate against the arrival rate, the drain and Verify
//
// How things are observed, all from outside the processes:
//   - deletions: the receipts of the acknowledged requests, then
//     ListDeletions every 2 s (one call for all of them instead of a
//     GetDeletion or WatchDeletion stream per deletion); stage times are
//     the server's timestamps (same machine, same clock);
//   - serving: GetModel every --poll_ms (250); each poll's state holds
//     until the next one;
//   - training: the coordinator's /metrics (positions trained and wasted);
//   - memory: VmRSS of every process from /proc, every second, beside what
//     each worker's /metrics says it holds (slice cache, serving
//     checkpoints) and how long it trained.
// Events are counted in the minute they completed (an acknowledgement in
// the minute its reply arrived, a RESTORED in the minute of restored_at).
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/grpc_status.h"
#include "common/http_scrape.h"
#include "common/status_macros.h"
#include "common/types.h"
#include "coordinator/api_config.h"
#include "oubli/v1/oubli.grpc.pb.h"
#include "storage/datasets.h"
#include "tools/bench/bench.h"
#include "tools/bench/bench_util.h"
#include "tools/bench/child_process.h"
#include "tools/bench/local_cluster.h"
#include "tools/bench/service_client.h"
#include "tools/bench/soak_model.h"

namespace oubli::bench {
namespace {

namespace v1 = ::oubli::v1;

constexpr char kModel[] = "soak";

// Issue 16's targets, for this 2-core machine at the default load.
constexpr double kTargetRestoredP99S = 60;
constexpr double kTargetAllServedShare = 0.8;
constexpr double kTargetLongestUnservedS = 30;
constexpr double kTargetWastedShare = 0.10;
// RSS is flat when each process's RSS at the end of the last minute is at
// most this much above its RSS at the end of the first minute.
constexpr double kRssFlatGrowth = 0.10;
// A steady state needs the first minute left out (the first BATCHED
// windows, caches warming up); restore rate keeps up when the deletions
// RESTORED per minute are at least this share of those acknowledged.
constexpr double kKeepsUpShare = 0.95;

struct SoakFlags {
  std::string dataset_dir = storage::kFashionMnistDir;
  double minutes = 6;
  int workers = 3;
  int64_t samples = 20000;         // user samples, 20 per owner
  int64_t public_samples = 10000;  // base pretraining; 0: seeded base
  int pretrain_epochs = 3;
  int shards = 4;
  int slices = 4;
  int sequences = 2;
  int epochs = 2;
  int64_t window_ms = 5000;
  int max_batch = 8;
  bool base_fallback = false;
  double forget_interval_s = 1.0;  // one ForgetOwner per interval
  double delete_interval_s = 1.5;  // one DeleteSamples per interval
  int delete_ids = 3;              // ids per DeleteSamples
  int predict_clients = 4;
  double predict_rate = 5;  // Predicts/s per client
  int predict_rows = 16;
  int poll_ms = 250;  // GetModel
  int drain_seconds = 900;
  int training_threads = 2;  // the coordinator's, as the demo's
  uint64_t seed = 16;
  std::string work_dir;            // kept when given; else a temp dir, removed
  std::string coordinator_binary;  // default: next to oubli-bench
  std::string worker_binary;
  // Extra flags of the coordinator and of every worker, e.g.
  // --worker_flag=--malloc_arena_max=0 (repeatable).
  std::vector<std::string> coordinator_flags;
  std::vector<std::string> worker_flags;
};

bool ParseFlags(const std::vector<std::string>& args, SoakFlags* f) {
  const FlagSetters setters = {
      {"dataset_dir", NonEmptyFlag(&f->dataset_dir)},
      {"minutes", NumberFlag(&f->minutes)},
      {"workers", NumberFlag(&f->workers)},
      {"samples", NumberFlag(&f->samples)},
      {"public_samples", NumberFlag(&f->public_samples)},
      {"pretrain_epochs", NumberFlag(&f->pretrain_epochs)},
      {"shards", NumberFlag(&f->shards)},
      {"slices", NumberFlag(&f->slices)},
      {"sequences", NumberFlag(&f->sequences)},
      {"epochs", NumberFlag(&f->epochs)},
      {"window_ms", NumberFlag(&f->window_ms)},
      {"max_batch", NumberFlag(&f->max_batch)},
      {"base_fallback", NumberFlag(&f->base_fallback)},
      {"forget_interval_s", NumberFlag(&f->forget_interval_s)},
      {"delete_interval_s", NumberFlag(&f->delete_interval_s)},
      {"delete_ids", NumberFlag(&f->delete_ids)},
      {"predict_clients", NumberFlag(&f->predict_clients)},
      {"predict_rate", NumberFlag(&f->predict_rate)},
      {"predict_rows", NumberFlag(&f->predict_rows)},
      {"poll_ms", NumberFlag(&f->poll_ms)},
      {"drain_seconds", NumberFlag(&f->drain_seconds)},
      {"training_threads", NumberFlag(&f->training_threads)},
      {"seed", NumberFlag(&f->seed)},
      {"work_dir", NonEmptyFlag(&f->work_dir)},
      {"coordinator_binary", NonEmptyFlag(&f->coordinator_binary)},
      {"worker_binary", NonEmptyFlag(&f->worker_binary)},
      {"coordinator_flag",
       [f](const std::string& v) {
         f->coordinator_flags.push_back(v);
         return !v.empty();
       }},
      {"worker_flag",
       [f](const std::string& v) {
         f->worker_flags.push_back(v);
         return !v.empty();
       }},
  };
  if (!ParseKeyValueFlags(args, setters)) return false;
  if (f->minutes <= 0 || f->workers < 0 || f->samples < 1 ||
      f->public_samples < 0 || f->forget_interval_s <= 0 ||
      f->delete_interval_s <= 0 || f->delete_ids < 1 ||
      f->predict_clients < 0 || f->predict_rate <= 0 || f->predict_rows < 1 ||
      f->poll_ms < 10 || f->drain_seconds < 1) {
    std::fprintf(stderr,
                 "oubli-bench soak: minutes, samples, intervals, ids, rates, "
                 "rows and drain_seconds must be positive, poll_ms >= 10\n");
    return false;
  }
  return true;
}

using Clock = std::chrono::steady_clock;

double SecondsBetween(absl::Time from, absl::Time to) {
  return absl::ToDoubleSeconds(to - from);
}

absl::Time FromProto(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

std::string CodeName(grpc::StatusCode code) {
  return absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
}

// "{"A":1,"B":2}" of a map of counts.
template <typename Map>
std::string CountsJson(const Map& counts) {
  std::vector<std::string> parts;
  for (const auto& [key, count] : counts) {
    parts.push_back(absl::StrFormat("\"%s\":%d", JsonEscape(key), count));
  }
  return absl::StrCat("{", absl::StrJoin(parts, ","), "}");
}

// One result line on stdout, flushed: a reader sees each minute as it ends.
void Print(const std::string& line) {
  std::fputs(line.c_str(), stdout);
  std::fflush(stdout);
}

double Share(double part, double whole) { return whole > 0 ? part / whole : 0; }

double Mib(int64_t bytes) { return bytes < 0 ? -1 : bytes / 1048576.0; }

// ------------------------------------------------------------- workload

struct Workload {
  std::vector<v1::Sample> samples;
  std::vector<std::string> forget_owners;                // in stream order
  std::vector<std::vector<std::string>> delete_batches;  // in stream order
  int64_t owners = 0;
  std::vector<std::string> predict_requests;  // f32le rows, one per client
};

v1::Sample ToProto(const Sample& s) {
  v1::Sample out;
  out.set_id(s.id);
  out.set_owner(s.owner);
  out.set_label(s.label);
  out.set_features(s.features);
  out.set_feature_type(s.feature_type == FeatureType::kF32
                           ? v1::FEATURE_TYPE_F32
                           : v1::FEATURE_TYPE_U8);
  return out;
}

// User samples train[public, public + samples) with one owner per 20; the
// stream forgets owners in a seeded order and deletes ids of the other
// owners, each at most once.
absl::StatusOr<Workload> MakeWorkload(const SoakFlags& flags) {
  OUBLI_ASSIGN_OR_RETURN(
      std::vector<Sample> loaded,
      storage::LoadFashionMnist(flags.dataset_dir, "train",
                                flags.public_samples, flags.samples));
  if (static_cast<int64_t>(loaded.size()) < flags.samples) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--samples: only ", loaded.size(), " Fashion-MNIST train samples from ",
        flags.public_samples, " on"));
  }
  Workload w;
  std::vector<std::string> owners;
  std::map<std::string, std::vector<std::string>> ids_by_owner;
  for (const Sample& s : loaded) {
    auto [it, inserted] = ids_by_owner.try_emplace(s.owner);
    if (inserted) owners.push_back(s.owner);
    it->second.push_back(s.id);
    w.samples.push_back(ToProto(s));
  }
  w.owners = static_cast<int64_t>(owners.size());
  const double stream_s = flags.minutes * 60;
  const auto forgets =
      static_cast<size_t>(std::ceil(stream_s / flags.forget_interval_s));
  const auto deletes =
      static_cast<size_t>(std::ceil(stream_s / flags.delete_interval_s));
  std::mt19937_64 rng(flags.seed);
  std::shuffle(owners.begin(), owners.end(), rng);
  if (forgets >= owners.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--samples=", flags.samples, " has ", owners.size(),
        " owners; the stream forgets ", forgets,
        " and needs others for DeleteSamples: raise --samples or lower "
        "--minutes"));
  }
  w.forget_owners.assign(owners.begin(), owners.begin() + forgets);
  std::vector<std::string> pool;
  for (size_t i = forgets; i < owners.size(); ++i) {
    const std::vector<std::string>& ids = ids_by_owner[owners[i]];
    pool.insert(pool.end(), ids.begin(), ids.end());
  }
  if (deletes * flags.delete_ids > pool.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--samples=", flags.samples, " leaves ", pool.size(),
                     " ids outside the forgotten owners; DeleteSamples needs ",
                     deletes * flags.delete_ids));
  }
  std::shuffle(pool.begin(), pool.end(), rng);
  for (size_t d = 0; d < deletes; ++d) {
    w.delete_batches.emplace_back(pool.begin() + d * flags.delete_ids,
                                  pool.begin() + (d + 1) * flags.delete_ids);
  }
  // Predict rows: test images, a different slice per client.
  if (flags.predict_clients > 0) {
    const int64_t rows =
        static_cast<int64_t>(flags.predict_rows) * flags.predict_clients;
    OUBLI_ASSIGN_OR_RETURN(
        std::vector<Sample> test,
        storage::LoadFashionMnist(flags.dataset_dir, "test", 0, rows));
    if (static_cast<int64_t>(test.size()) < rows) {
      return absl::InvalidArgumentError("not enough test images for Predict");
    }
    const int64_t width = test.front().NumFeatures();
    for (int c = 0; c < flags.predict_clients; ++c) {
      std::vector<float> values(flags.predict_rows * width);
      for (int r = 0; r < flags.predict_rows; ++r) {
        DecodeFeatures(test[c * flags.predict_rows + r],
                       values.data() + r * width);
      }
      w.predict_requests.emplace_back(
          reinterpret_cast<const char*>(values.data()),
          values.size() * sizeof(float));
    }
  }
  return w;
}

// ------------------------------------------------------------ processes

// Spawned from the calling thread, which must outlive them (see
// ChildProcess::Start).
absl::StatusOr<Cluster> StartSoakCluster(const SoakFlags& flags,
                                         const std::string& dir) {
  return StartCluster({.dir = dir,
                       .workers = flags.workers,
                       .training_threads = flags.training_threads,
                       .coordinator_binary = flags.coordinator_binary,
                       .worker_binary = flags.worker_binary,
                       .coordinator_flags = flags.coordinator_flags,
                       .worker_flags = flags.worker_flags});
}

// ---------------------------------------------------------------- state

// What happened in one minute of the stream.
struct Minute {
  // Deletion requests answered in this minute.
  int forget_acked = 0;
  int delete_acked = 0;
  int noop = 0;  // answered without a deletion id (nothing left to delete)
  std::map<std::string, int> ack_errors;  // by status code
  std::vector<double> ack_ms;
  // Predicts answered in this minute.
  int64_t predict_ok = 0;
  int64_t predict_from_base = 0;
  std::map<std::string, int64_t> predict_errors;  // by status code
  std::vector<double> predict_ms;                 // successful ones
  // Serving, from the GetModel polls.
  double observed_s = 0;
  double all_served_s = 0;
  double none_served_s = 0;
  double shards_served_s = 0;  // integral of the number served
  int monitor_errors = 0;
  // Unserved stretches that ended in this minute, and those still running
  // at its end (measured to it): the longest.
  double longest_unserved_s = 0;
  int longest_unserved_shard = -1;
  // VmRSS: the last sample in the minute and the largest, by process.
  std::map<std::string, int64_t> rss_end;
  std::map<std::string, int64_t> rss_max;
};

struct TrackedDeletion {
  bool forget_owner = false;
  int shards = 0;  // affected: RESTORED waits until each is complete
  absl::Time accepted_at;
  std::optional<absl::Time> purged_at;
  std::optional<absl::Time> restored_at;
};

// Shared by the stream, predict and monitor threads.
class SoakState {
 public:
  SoakState(absl::Time start, double stream_s)
      : start_(start),
        stream_s_(stream_s),
        minutes_(static_cast<size_t>(std::ceil(stream_s / 60))) {}

  absl::Time start() const { return start_; }
  size_t minutes() const { return minutes_.size(); }
  // Minute index of `t`, clamped to the stream.
  size_t MinuteOf(absl::Time t) const {
    const double s = std::max(0.0, SecondsBetween(start_, t));
    return std::min(minutes_.size() - 1, static_cast<size_t>(s / 60));
  }
  absl::Time MinuteStart(size_t m) const {
    return start_ + absl::Seconds(60.0 * m);
  }
  absl::Time MinuteEnd(size_t m) const {
    return start_ + absl::Seconds(std::min(60.0 * (m + 1), stream_s_));
  }

  void Acked(bool forget_owner, absl::Time sent, absl::Time answered,
             const grpc::Status& status, const v1::DeletionReceipt& receipt) {
    absl::MutexLock lock(&mu_);
    Minute& m = minutes_[MinuteOf(answered)];
    if (!status.ok()) {
      ++m.ack_errors[CodeName(status.error_code())];
      return;
    }
    if (receipt.deletion_id().empty()) {
      ++m.noop;
      return;
    }
    ++(forget_owner ? m.forget_acked : m.delete_acked);
    m.ack_ms.push_back(absl::ToDoubleMilliseconds(answered - sent));
    TrackedDeletion& d = deletions_[receipt.deletion_id()];
    d.forget_owner = forget_owner;
    d.shards = receipt.affected_shards_size();
    d.accepted_at =
        receipt.has_accepted_at() ? FromProto(receipt.accepted_at()) : answered;
  }

  void Predicted(absl::Time sent, absl::Time answered,
                 const grpc::Status& status, bool from_base) {
    absl::MutexLock lock(&mu_);
    Minute& m = minutes_[MinuteOf(answered)];
    if (!status.ok()) {
      ++m.predict_errors[CodeName(status.error_code())];
      return;
    }
    ++m.predict_ok;
    m.predict_from_base += from_base ? 1 : 0;
    m.predict_ms.push_back(absl::ToDoubleMilliseconds(answered - sent));
  }

  // The served state seen by the poll at `now` (nullopt: the poll failed),
  // held since the previous poll.
  void Served(absl::Time now, const std::optional<std::vector<bool>>& served) {
    absl::MutexLock lock(&mu_);
    if (!served.has_value()) {
      ++minutes_[MinuteOf(now)].monitor_errors;
      return;
    }
    if (last_served_.has_value() && last_poll_ < now) {
      const double dt = SecondsBetween(last_poll_, now);
      // The interval's midpoint names its minute.
      Minute& m = minutes_[MinuteOf(last_poll_ + (now - last_poll_) / 2)];
      const int count = static_cast<int>(
          std::count(last_served_->begin(), last_served_->end(), true));
      m.observed_s += dt;
      m.shards_served_s += dt * count;
      if (count == static_cast<int>(last_served_->size())) m.all_served_s += dt;
      if (count == 0) m.none_served_s += dt;
    }
    unserved_since_.resize(served->size());
    for (size_t s = 0; s < served->size(); ++s) {
      if (!(*served)[s] && !unserved_since_[s].has_value()) {
        unserved_since_[s] = now;
      } else if ((*served)[s] && unserved_since_[s].has_value()) {
        NoteStretch(static_cast<int>(s), *unserved_since_[s], now);
        unserved_since_[s].reset();
      }
    }
    last_poll_ = now;
    last_served_ = served;
  }

  void Rss(absl::Time now, const std::string& process, int64_t bytes) {
    absl::MutexLock lock(&mu_);
    Minute& m = minutes_[MinuteOf(now)];
    m.rss_end[process] = bytes;
    m.rss_max[process] = std::max(m.rss_max[process], bytes);
  }

  // From a ListDeletions page: the stage times of deletions we track.
  // Returns whether the id was one of ours.
  bool Observed(const v1::DeletionReceipt& r) {
    absl::MutexLock lock(&mu_);
    auto it = deletions_.find(r.deletion_id());
    if (it == deletions_.end()) return false;
    if (r.has_purged_at()) it->second.purged_at = FromProto(r.purged_at());
    if (r.has_restored_at()) {
      it->second.restored_at = FromProto(r.restored_at());
    }
    return true;
  }

  // Unserved stretches still running at `end` count, measured to it.
  Minute Snapshot(size_t minute) {
    absl::MutexLock lock(&mu_);
    Minute m = minutes_[minute];
    const absl::Time end = MinuteEnd(minute);
    for (size_t s = 0; s < unserved_since_.size(); ++s) {
      if (!unserved_since_[s].has_value() || *unserved_since_[s] >= end) {
        continue;
      }
      const double length = SecondsBetween(*unserved_since_[s], end);
      if (length > m.longest_unserved_s) {
        m.longest_unserved_s = length;
        m.longest_unserved_shard = static_cast<int>(s);
      }
    }
    return m;
  }

  std::vector<TrackedDeletion> Deletions() const {
    absl::MutexLock lock(&mu_);
    std::vector<TrackedDeletion> out;
    out.reserve(deletions_.size());
    for (const auto& [id, d] : deletions_) out.push_back(d);
    return out;
  }

  // The longest unserved stretch of the stream (those still running at
  // its end measured to it), and its shard.
  std::pair<double, int> LongestUnserved() const {
    absl::MutexLock lock(&mu_);
    double longest = longest_unserved_s_;
    int shard = longest_unserved_shard_;
    const absl::Time end = start_ + absl::Seconds(stream_s_);
    for (size_t s = 0; s < unserved_since_.size(); ++s) {
      if (!unserved_since_[s].has_value()) continue;
      const double length = SecondsBetween(*unserved_since_[s], end);
      if (length > longest) {
        longest = length;
        shard = static_cast<int>(s);
      }
    }
    return {longest, shard};
  }

 private:
  void NoteStretch(int shard, absl::Time since, absl::Time until)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const double length = SecondsBetween(since, until);
    Minute& m = minutes_[MinuteOf(until)];
    if (length > m.longest_unserved_s) {
      m.longest_unserved_s = length;
      m.longest_unserved_shard = shard;
    }
    if (length > longest_unserved_s_) {
      longest_unserved_s_ = length;
      longest_unserved_shard_ = shard;
    }
  }

  const absl::Time start_;
  const double stream_s_;
  mutable absl::Mutex mu_;
  std::vector<Minute> minutes_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, TrackedDeletion> deletions_
      ABSL_GUARDED_BY(mu_);
  absl::Time last_poll_ ABSL_GUARDED_BY(mu_);
  std::optional<std::vector<bool>> last_served_ ABSL_GUARDED_BY(mu_);
  std::vector<std::optional<absl::Time>> unserved_since_ ABSL_GUARDED_BY(mu_);
  double longest_unserved_s_ ABSL_GUARDED_BY(mu_) = 0;
  int longest_unserved_shard_ ABSL_GUARDED_BY(mu_) = -1;
};

// ------------------------------------------------------------- clients

// Calls send(k) at start + k * interval for every such time before end;
// a late call does not make the next ones come faster.
void RunSchedule(absl::Time start, absl::Duration interval, absl::Time end,
                 const std::function<void(int64_t)>& send) {
  for (int64_t k = 0;; ++k) {
    const absl::Time due = start + k * interval;
    if (due >= end) return;
    const absl::Time now = absl::Now();
    if (due > now) absl::SleepFor(due - now);
    send(k);
  }
}

void ForgetOwners(v1::Oubli::Stub& stub, const Workload& w,
                  const SoakFlags& flags, absl::Time end, SoakState& state) {
  RunSchedule(state.start(), absl::Seconds(flags.forget_interval_s), end,
              [&](int64_t k) {
                if (k >= static_cast<int64_t>(w.forget_owners.size())) return;
                grpc::ClientContext context;
                context.set_deadline(Deadline(60));
                v1::ForgetOwnerRequest request;
                request.set_model_id(kModel);
                request.set_owner(w.forget_owners[k]);
                v1::DeletionReceipt receipt;
                const absl::Time sent = absl::Now();
                const grpc::Status status =
                    stub.ForgetOwner(&context, request, &receipt);
                state.Acked(true, sent, absl::Now(), status, receipt);
              });
}

void DeleteSamples(v1::Oubli::Stub& stub, const Workload& w,
                   const SoakFlags& flags, absl::Time end, SoakState& state) {
  RunSchedule(state.start(), absl::Seconds(flags.delete_interval_s), end,
              [&](int64_t k) {
                if (k >= static_cast<int64_t>(w.delete_batches.size())) return;
                grpc::ClientContext context;
                context.set_deadline(Deadline(60));
                v1::DeleteSamplesRequest request;
                request.set_model_id(kModel);
                for (const std::string& id : w.delete_batches[k]) {
                  request.add_sample_ids(id);
                }
                v1::DeletionReceipt receipt;
                const absl::Time sent = absl::Now();
                const grpc::Status status =
                    stub.DeleteSamples(&context, request, &receipt);
                state.Acked(false, sent, absl::Now(), status, receipt);
              });
}

void PredictClient(v1::Oubli::Stub& stub, const std::string& features,
                   const SoakFlags& flags, absl::Time end, SoakState& state) {
  RunSchedule(state.start(), absl::Seconds(1.0 / flags.predict_rate), end,
              [&](int64_t) {
                grpc::ClientContext context;
                context.set_deadline(Deadline(30));
                v1::PredictRequest request;
                request.set_model_id(kModel);
                request.set_rows(flags.predict_rows);
                request.set_features_f32le(features);
                v1::PredictResponse response;
                const absl::Time sent = absl::Now();
                const grpc::Status status =
                    stub.Predict(&context, request, &response);
                state.Predicted(sent, absl::Now(), status,
                                status.ok() && response.from_base());
              });
}

// Every deletion of the model, a page at a time, into `state`. The number
// of ours seen.
absl::StatusOr<int64_t> PollDeletions(v1::Oubli::Stub& stub, SoakState& state) {
  int64_t ours = 0;
  std::string token;
  do {
    grpc::ClientContext context;
    context.set_deadline(Deadline(60));
    v1::ListDeletionsRequest request;
    request.set_model_id(kModel);
    request.set_page_size(1000);
    request.set_page_token(token);
    v1::ListDeletionsResponse response;
    OUBLI_RETURN_IF_ERROR(FromGrpcStatus(
        stub.ListDeletions(&context, request, &response), "ListDeletions"));
    for (const v1::DeletionReceipt& r : response.deletions()) {
      ours += state.Observed(r) ? 1 : 0;
    }
    token = response.next_page_token();
  } while (!token.empty());
  return ours;
}

// Per shard: whether it is served (nullopt: GetModel failed).
std::optional<std::vector<bool>> ServedShards(v1::Oubli::Stub& stub,
                                              v1::Model* model = nullptr) {
  absl::StatusOr<v1::Model> got = GetModel(stub, kModel);
  if (!got.ok()) return std::nullopt;
  std::vector<bool> served;
  for (const v1::ShardStatus& shard : got->shards()) {
    served.push_back(shard.served().served());
  }
  if (model != nullptr) *model = *std::move(got);
  return served;
}

// The coordinator's counters and gauges the soak reports, by series name.
struct Scrape {
  double positions = -1;      // oubli_training_positions_total
  double wasted = -1;         // oubli_training_positions_wasted_total
  double sample_visits = -1;  // oubli_training_samples_total
  double backlog = -1;        // oubli_retrain_backlog_sample_visits
  double oldest_pending_s = -1;
};

Scrape ScrapeCoordinator(const std::string& metrics_address) {
  const std::string text = HttpGet(metrics_address, "/metrics");
  const std::string model = absl::StrCat("{model=\"", kModel, "\"}");
  Scrape s;
  s.positions =
      MetricValue(text, absl::StrCat("oubli_training_positions_total", model));
  s.wasted = MetricValue(
      text, absl::StrCat("oubli_training_positions_wasted_total", model));
  s.sample_visits =
      MetricValue(text, absl::StrCat("oubli_training_samples_total", model));
  s.backlog = MetricValue(
      text, absl::StrCat("oubli_retrain_backlog_sample_visits", model));
  s.oldest_pending_s = MetricValue(
      text, absl::StrCat("oubli_oldest_pending_deletion_age_seconds", model));
  return s;
}

// A worker's gauges and counters the soak reports: what it holds in memory
// beside its RSS, and how long it trained.
struct WorkerScrape {
  double training_s = -1;  // oubli_worker_training_seconds_total
  double cached_slice_bytes = -1;
  double cached_slices = -1;
  double serving_checkpoints = -1;
};

std::vector<WorkerScrape> ScrapeWorkers(const Cluster& cluster) {
  std::vector<WorkerScrape> out;
  for (const std::string& address : cluster.worker_metrics_addresses) {
    const std::string text = HttpGet(address, "/metrics");
    WorkerScrape& w = out.emplace_back();
    w.training_s = MetricValue(text, "oubli_worker_training_seconds_total");
    w.cached_slice_bytes = MetricValue(text, "oubli_worker_cached_slice_bytes");
    w.cached_slices = MetricValue(text, "oubli_worker_cached_slices");
    w.serving_checkpoints =
        MetricValue(text, "oubli_worker_serving_checkpoints");
  }
  return out;
}

// {"worker-0":{"training_share":..,...},...}: the share of the minute each
// worker spent in TrainPosition calls (calls overlap on a worker, so it can
// exceed 1), its slice cache and its serving checkpoints at the end.
std::string WorkersJson(const std::vector<WorkerScrape>& before,
                        const std::vector<WorkerScrape>& now, double seconds) {
  std::vector<std::string> parts;
  for (size_t i = 0; i < now.size(); ++i) {
    const double trained =
        i < before.size() ? now[i].training_s - before[i].training_s : 0;
    parts.push_back(absl::StrFormat(
        "\"worker-%d\":{\"training_share\":%.3f,\"cached_slices\":%.0f,"
        "\"cached_slice_mib\":%.1f,\"serving_checkpoints\":%.0f}",
        i, Share(trained, seconds), now[i].cached_slices,
        now[i].cached_slice_bytes / 1048576, now[i].serving_checkpoints));
  }
  return absl::StrCat("{", absl::StrJoin(parts, ","), "}");
}

void SampleRss(const Cluster& cluster, SoakState& state) {
  const absl::Time now = absl::Now();
  for (const auto& [name, pid] : cluster.Processes()) {
    state.Rss(now, name, ResidentBytes(pid));
  }
}

// ------------------------------------------------------------ reporting

// Deletion counts of one minute, from the tracked stage times.
struct MinuteDeletions {
  int purged = 0;
  int restored = 0;
  std::vector<double> restore_s;  // time-to-RESTORED of those RESTORED
  int pending_end = 0;            // acknowledged, not RESTORED at the end
  double oldest_pending_s = 0;    // at the end
};

MinuteDeletions CountMinute(const std::vector<TrackedDeletion>& deletions,
                            absl::Time begin, absl::Time end) {
  MinuteDeletions out;
  for (const TrackedDeletion& d : deletions) {
    if (d.purged_at.has_value() && *d.purged_at >= begin &&
        *d.purged_at < end) {
      ++out.purged;
    }
    if (d.restored_at.has_value() && *d.restored_at >= begin &&
        *d.restored_at < end) {
      ++out.restored;
      out.restore_s.push_back(SecondsBetween(d.accepted_at, *d.restored_at));
    }
    if (d.accepted_at < end &&
        (!d.restored_at.has_value() || *d.restored_at >= end)) {
      ++out.pending_end;
      out.oldest_pending_s =
          std::max(out.oldest_pending_s, SecondsBetween(d.accepted_at, end));
    }
  }
  return out;
}

std::string RssJson(const std::map<std::string, int64_t>& rss) {
  std::vector<std::string> parts;
  for (const auto& [name, bytes] : rss) {
    parts.push_back(absl::StrFormat("\"%s\":%.1f", name, Mib(bytes)));
  }
  return absl::StrCat("{", absl::StrJoin(parts, ","), "}");
}

// One soak_minute line:
//   acknowledged (forget_owner + delete_samples), noop, ack_errors, ack
//   p50/p99 ms; purged and restored (stage reached in this minute),
//   time-to-RESTORED p50/p99 of those restored; pending and the oldest
//   pending deletion's age at the minute's end; all/none served shares,
//   mean shards served and the longest unserved stretch (ended in the
//   minute or still running at its end); positions trained and wasted
//   (coordinator counters, deltas over the minute) and the backlog gauge;
//   VmRSS at the end and the largest, MiB; per worker (its /metrics) the
//   share of the minute spent training, its slice cache and serving
//   checkpoints; Predict answers, from_base, errors by code, p50/p99 ms.
struct MinuteRow {
  Minute minute;
  MinuteDeletions deletions;
  double seconds = 0;
  double positions = 0;
  double wasted = 0;
  std::string workers;  // WorkersJson
};

void EmitMinute(size_t index, const MinuteRow& row, const Scrape& scrape) {
  const Minute& m = row.minute;
  const MinuteDeletions& d = row.deletions;
  int64_t predict_errors = 0;
  for (const auto& [code, count] : m.predict_errors) predict_errors += count;
  int ack_errors = 0;
  for (const auto& [code, count] : m.ack_errors) ack_errors += count;
  Print(absl::StrFormat(
      "{\"bench\":\"soak_minute\",\"minute\":%zu,\"seconds\":%.1f,"
      "\"acknowledged\":%d,\"forget_owner\":%d,\"delete_samples\":%d,"
      "\"noop\":%d,\"ack_errors\":%d,\"ack_error_codes\":%s,"
      "\"ack_ms_p50\":%.1f,\"ack_ms_p99\":%.1f,"
      "\"purged\":%d,\"restored\":%d,\"restored_s_p50\":%.1f,"
      "\"restored_s_p99\":%.1f,\"pending_end\":%d,"
      "\"oldest_pending_s\":%.1f,"
      "\"all_served_share\":%.3f,\"none_served_share\":%.3f,"
      "\"mean_shards_served\":%.2f,\"longest_unserved_s\":%.1f,"
      "\"longest_unserved_shard\":%d,\"monitor_errors\":%d,"
      "\"positions_trained\":%.0f,\"positions_wasted\":%.0f,"
      "\"backlog_sample_visits\":%.0f,"
      "\"rss_mib\":%s,\"rss_max_mib\":%s,\"workers\":%s,"
      "\"predict_ok\":%lld,\"predict_from_base\":%lld,"
      "\"predict_errors\":%lld,\"predict_error_codes\":%s,"
      "\"predict_ms_p50\":%.1f,\"predict_ms_p99\":%.1f}\n",
      index + 1, row.seconds, m.forget_acked + m.delete_acked, m.forget_acked,
      m.delete_acked, m.noop, ack_errors, CountsJson(m.ack_errors),
      Percentile(m.ack_ms, 0.5), Percentile(m.ack_ms, 0.99), d.purged,
      d.restored, Percentile(d.restore_s, 0.5), Percentile(d.restore_s, 0.99),
      d.pending_end, d.oldest_pending_s, Share(m.all_served_s, m.observed_s),
      Share(m.none_served_s, m.observed_s),
      Share(m.shards_served_s, m.observed_s), m.longest_unserved_s,
      m.longest_unserved_shard, m.monitor_errors, row.positions, row.wasted,
      scrape.backlog, RssJson(m.rss_end), RssJson(m.rss_max), row.workers,
      static_cast<long long>(m.predict_ok),
      static_cast<long long>(m.predict_from_base),
      static_cast<long long>(predict_errors), CountsJson(m.predict_errors),
      Percentile(m.predict_ms, 0.5), Percentile(m.predict_ms, 0.99)));
}

struct Target {
  std::string name;
  std::string target;
  double value = 0;
  std::optional<bool> pass;  // nullopt: not judged (too short a stream)
};

std::string TargetsJson(const std::vector<Target>& targets) {
  std::vector<std::string> parts;
  for (const Target& t : targets) {
    parts.push_back(absl::StrFormat(
        "{\"name\":\"%s\",\"target\":\"%s\",\"value\":%.3f,\"pass\":%s}",
        t.name, JsonEscape(t.target), t.value,
        !t.pass.has_value() ? "null" : (*t.pass ? "true" : "false")));
  }
  return absl::StrCat("[", absl::StrJoin(parts, ","), "]");
}

int Fail(const absl::Status& status) { return bench::Fail("soak", status); }

// --------------------------------------------------------------- the run

int Run(const SoakFlags& flags) {
  std::optional<TempDir> temp;
  std::string dir = flags.work_dir;
  if (dir.empty()) {
    temp.emplace("soak");
    dir = temp->path();
  } else {
    std::filesystem::create_directories(dir);
  }

  absl::StatusOr<Workload> workload = MakeWorkload(flags);
  if (!workload.ok()) return Fail(workload.status());
  const Workload& w = *workload;

  absl::Time t = absl::Now();
  SoakModelOptions model_options;
  model_options.dataset_dir = flags.dataset_dir;
  model_options.public_samples = flags.public_samples;
  model_options.pretrain_epochs = flags.pretrain_epochs;
  model_options.shards = flags.shards;
  model_options.slices = flags.slices;
  model_options.sequences = flags.sequences;
  model_options.epochs = flags.epochs;
  model_options.base_path = absl::StrCat(dir, "/base.safetensors");
  absl::StatusOr<ModelConfig> domain_config = SoakModelConfig(model_options);
  if (!domain_config.ok()) return Fail(domain_config.status());
  v1::ModelConfig config = coordinator::ConfigToProto(*domain_config);
  const double pretrain_s = SecondsBetween(t, absl::Now());
  config.mutable_retrain()->set_mode(v1::RETRAIN_MODE_BATCHED);
  config.mutable_retrain()->set_window_ms(flags.window_ms);
  config.mutable_retrain()->set_max_batch(flags.max_batch);
  config.set_base_fallback(flags.base_fallback);

  // Stopped by its destructor on every early return (SIGTERM, then
  // SIGKILL); a benchmark that dies takes them along (parent-death signal).
  absl::StatusOr<Cluster> started = StartSoakCluster(flags, dir);
  if (!started.ok()) return Fail(started.status());
  Cluster& cluster = *started;
  std::fprintf(stderr,
               "oubli-bench soak: coordinator %s (metrics %s), %d workers, "
               "logs in %s\n",
               cluster.address.c_str(), cluster.metrics_address.c_str(),
               flags.workers, dir.c_str());

  std::unique_ptr<v1::Oubli::Stub> stub = NewStub(cluster.address, 0);
  if (absl::StatusOr<v1::Model> created = CreateModel(*stub, kModel, config);
      !created.ok()) {
    return Fail(created.status());
  }
  t = absl::Now();
  if (absl::Status s = Ingest(*stub, kModel, w.samples); !s.ok()) {
    return Fail(s);
  }
  const double ingest_s = SecondsBetween(t, absl::Now());
  t = absl::Now();
  if (absl::Status s = TrainAndWait(*stub, kModel); !s.ok()) return Fail(s);
  absl::StatusOr<v1::Model> trained =
      WaitForAllPrefixes(*stub, kModel, absl::Minutes(10));
  if (!trained.ok()) return Fail(trained.status());
  const double train_s = SecondsBetween(t, absl::Now());
  Print(absl::StrFormat(
      "{\"bench\":\"soak_setup\",\"workers\":%d,\"samples\":%lld,"
      "\"owners\":%lld,\"public_samples\":%lld,\"pretrain_s\":%.1f,"
      "\"ingest_s\":%.1f,\"train_s\":%.1f,\"worker_placement\":\"%s\","
      "\"forget_owner_requests\":%zu,\"delete_samples_requests\":%zu}\n",
      flags.workers, static_cast<long long>(flags.samples),
      static_cast<long long>(w.owners),
      static_cast<long long>(flags.public_samples), pretrain_s, ingest_s,
      train_s, JsonEscape(trained->worker_placement()), w.forget_owners.size(),
      w.delete_batches.size()));

  // ------------------------------------------------------------ stream
  const double stream_s = flags.minutes * 60;
  Scrape previous = ScrapeCoordinator(cluster.metrics_address);
  std::vector<WorkerScrape> previous_workers = ScrapeWorkers(cluster);
  const Scrape at_start = previous;
  SoakState state(absl::Now() + absl::Milliseconds(200), stream_s);
  const absl::Time end = state.start() + absl::Seconds(stream_s);
  std::vector<std::unique_ptr<v1::Oubli::Stub>> stubs;
  std::vector<std::thread> threads;
  stubs.push_back(NewStub(cluster.address, 1));
  threads.emplace_back(ForgetOwners, std::ref(*stubs.back()), std::cref(w),
                       std::cref(flags), end, std::ref(state));
  stubs.push_back(NewStub(cluster.address, 2));
  threads.emplace_back(DeleteSamples, std::ref(*stubs.back()), std::cref(w),
                       std::cref(flags), end, std::ref(state));
  for (int c = 0; c < flags.predict_clients; ++c) {
    stubs.push_back(NewStub(cluster.address, 3 + c));
    threads.emplace_back(PredictClient, std::ref(*stubs.back()),
                         std::cref(w.predict_requests[c]), std::cref(flags),
                         end, std::ref(state));
  }

  // The monitor: GetModel every poll_ms, RSS every second, deletions every
  // 2 s; a minute's line half a second after it ends (its replies are in).
  std::unique_ptr<v1::Oubli::Stub> monitor = NewStub(cluster.address, 100);
  std::vector<MinuteRow> rows;
  absl::Time next_rss = state.start();
  absl::Time next_poll = state.start();
  size_t next_emit = 0;
  auto emit = [&](size_t index) {
    if (absl::StatusOr<int64_t> polled = PollDeletions(*monitor, state);
        !polled.ok()) {
      std::fprintf(stderr, "oubli-bench soak: %s\n",
                   polled.status().ToString().c_str());
    }
    const Scrape now = ScrapeCoordinator(cluster.metrics_address);
    MinuteRow row;
    row.minute = state.Snapshot(index);
    row.deletions = CountMinute(state.Deletions(), state.MinuteStart(index),
                                state.MinuteEnd(index));
    row.seconds =
        SecondsBetween(state.MinuteStart(index), state.MinuteEnd(index));
    row.positions = now.positions - previous.positions;
    row.wasted = now.wasted - previous.wasted;
    previous = now;
    std::vector<WorkerScrape> workers_now = ScrapeWorkers(cluster);
    row.workers = WorkersJson(previous_workers, workers_now, row.seconds);
    previous_workers = std::move(workers_now);
    EmitMinute(index, row, now);
    rows.push_back(std::move(row));
  };
  {
    const absl::Time now = absl::Now();
    if (state.start() > now) absl::SleepFor(state.start() - now);
  }
  while (absl::Now() < end) {
    const absl::Time now = absl::Now();
    state.Served(now, ServedShards(*monitor));
    if (now >= next_rss) {
      SampleRss(cluster, state);
      next_rss += absl::Seconds(1);
    }
    if (now >= next_poll) {
      PollDeletions(*monitor, state).IgnoreError();  // the next one retries
      next_poll += absl::Seconds(2);
    }
    if (next_emit + 1 < state.minutes() &&
        now >= state.MinuteEnd(next_emit) + absl::Milliseconds(500)) {
      emit(next_emit++);
    }
    absl::SleepFor(absl::Milliseconds(flags.poll_ms) - (absl::Now() - now));
  }
  state.Served(end, ServedShards(*monitor));
  for (std::thread& thread : threads) thread.join();
  SampleRss(cluster, state);  // counted in the last minute (clamped)
  while (next_emit < state.minutes()) emit(next_emit++);
  const Scrape at_stream_end = previous;

  // ------------------------------------------------------------- drain
  const absl::Time drain_start = absl::Now();
  bool drained = false;
  v1::Model model;
  while (SecondsBetween(drain_start, absl::Now()) < flags.drain_seconds) {
    absl::StatusOr<int64_t> polled = PollDeletions(*monitor, state);
    const std::vector<TrackedDeletion> deletions = state.Deletions();
    const bool all_restored =
        polled.ok() && std::all_of(deletions.begin(), deletions.end(),
                                   [](const TrackedDeletion& d) {
                                     return d.restored_at.has_value();
                                   });
    if (all_restored && ServedShards(*monitor, &model).has_value() &&
        model.pending_deletions() == 0 && model.missing_prefixes() == 0) {
      drained = true;
      break;
    }
    absl::SleepFor(absl::Seconds(1));
  }
  const double drain_s = SecondsBetween(drain_start, absl::Now());
  std::map<std::string, int64_t> rss_after_drain;
  for (const auto& [name, pid] : cluster.Processes()) {
    rss_after_drain[name] = ResidentBytes(pid);
  }

  // Verify: every shard served at full length and bitwise equal to
  // training from scratch on what is left.
  v1::VerifyResponse verify;
  grpc::Status verify_status;
  if (drained) {
    grpc::ClientContext context;
    context.set_deadline(Deadline(3600));
    v1::VerifyRequest request;
    request.set_model_id(kModel);
    verify_status = monitor->Verify(&context, request, &verify);
  }
  const absl::Status stopped = cluster.Stop();

  // ----------------------------------------------------------- summary
  const std::vector<TrackedDeletion> deletions = state.Deletions();
  std::vector<double> restore_s, ack_ms;
  int in_stream_purged = 0, in_stream_restored = 0, restored_total = 0;
  // Time-to-RESTORED by request kind and by the number of shards cut.
  std::map<std::string, std::vector<double>> restore_s_by;
  for (const TrackedDeletion& d : deletions) {
    if (d.purged_at.has_value() && *d.purged_at < end) ++in_stream_purged;
    double seconds;
    if (d.restored_at.has_value()) {
      ++restored_total;
      in_stream_restored += *d.restored_at < end ? 1 : 0;
      seconds = SecondsBetween(d.accepted_at, *d.restored_at);
    } else {
      // Never RESTORED (drain timed out): its age so far, a lower bound.
      seconds = SecondsBetween(d.accepted_at, absl::Now());
    }
    restore_s.push_back(seconds);
    restore_s_by[d.forget_owner ? "forget_owner" : "delete_samples"].push_back(
        seconds);
    restore_s_by[absl::StrCat(d.shards, d.shards == 1 ? "_shard" : "_shards")]
        .push_back(seconds);
  }
  std::vector<std::string> by_parts;
  for (const auto& [key, values] : restore_s_by) {
    by_parts.push_back(absl::StrFormat(
        "\"%s\":{\"count\":%d,\"p50\":%.1f,\"p99\":%.1f,\"max\":%.1f}", key,
        values.size(), Percentile(values, 0.5), Percentile(values, 0.99),
        Percentile(values, 1.0)));
  }
  double observed = 0, all_served = 0, none_served = 0;
  int64_t predict_ok = 0, predict_from_base = 0;
  std::map<std::string, int64_t> predict_errors;
  std::map<std::string, int> ack_errors;
  std::vector<double> predict_ms;
  for (const MinuteRow& row : rows) {
    observed += row.minute.observed_s;
    all_served += row.minute.all_served_s;
    none_served += row.minute.none_served_s;
    predict_ok += row.minute.predict_ok;
    predict_from_base += row.minute.predict_from_base;
    for (const auto& [code, n] : row.minute.predict_errors) {
      predict_errors[code] += n;
    }
    for (const auto& [code, n] : row.minute.ack_errors) ack_errors[code] += n;
    predict_ms.insert(predict_ms.end(), row.minute.predict_ms.begin(),
                      row.minute.predict_ms.end());
    ack_ms.insert(ack_ms.end(), row.minute.ack_ms.begin(),
                  row.minute.ack_ms.end());
  }
  int64_t predict_error_total = 0;
  for (const auto& [code, n] : predict_errors) predict_error_total += n;
  const auto [longest_unserved, longest_shard] = state.LongestUnserved();
  const double positions = at_stream_end.positions - at_start.positions;
  const double wasted = at_stream_end.wasted - at_start.wasted;
  const double wasted_share = Share(wasted, positions);

  // Restore rate at steady state: the minutes after the first (all of them
  // when the stream is shorter than two minutes).
  const size_t first_steady = rows.size() >= 2 ? 1 : 0;
  double steady_s = 0;
  int steady_acked = 0, steady_restored = 0;
  for (size_t i = first_steady; i < rows.size(); ++i) {
    steady_s += rows[i].seconds;
    steady_acked += rows[i].minute.forget_acked + rows[i].minute.delete_acked;
    steady_restored += rows[i].deletions.restored;
  }
  const double arrival_per_min = Share(steady_acked, steady_s) * 60;
  const double restored_per_min = Share(steady_restored, steady_s) * 60;
  const double restore_ratio = Share(restored_per_min, arrival_per_min);
  const bool keeps_up = restore_ratio >= kKeepsUpShare;
  const int pending_at_stream_end =
      rows.empty() ? 0 : rows.back().deletions.pending_end;

  // RSS flat: the last minute's end within kRssFlatGrowth of the first's,
  // for every process; not judged with fewer than two minutes.
  std::vector<std::string> rss_parts;
  double worst_growth = 0;
  std::string worst_process;
  const bool rss_judged = rows.size() >= 2;
  for (const auto& [name, pid] : cluster.Processes()) {
    auto end_of = [&](const MinuteRow& row) -> int64_t {
      auto it = row.minute.rss_end.find(name);
      return it == row.minute.rss_end.end() ? -1 : it->second;
    };
    const int64_t first = rows.empty() ? -1 : end_of(rows.front());
    const int64_t last = rows.empty() ? -1 : end_of(rows.back());
    int64_t max = -1;
    for (const MinuteRow& row : rows) {
      if (row.minute.rss_max.count(name)) {
        max = std::max(max, row.minute.rss_max.at(name));
      }
    }
    const double growth =
        first > 0 && last > 0 ? static_cast<double>(last) / first - 1 : 0;
    if (growth > worst_growth || worst_process.empty()) {
      worst_growth = growth;
      worst_process = name;
    }
    rss_parts.push_back(absl::StrFormat(
        "\"%s\":{\"minute_1\":%.1f,\"last_minute\":%.1f,\"max\":%.1f,"
        "\"after_drain\":%.1f,\"growth\":%.3f}",
        name, Mib(first), Mib(last), Mib(max), Mib(rss_after_drain[name]),
        growth));
  }

  const double restored_p99 = Percentile(restore_s, 0.99);
  std::vector<Target> targets = {
      {"time_to_restored_p99_s", "< 60", restored_p99,
       drained && restored_p99 < kTargetRestoredP99S},
      {"all_shards_served_share", ">= 0.80", Share(all_served, observed),
       Share(all_served, observed) >= kTargetAllServedShare},
      {"longest_unserved_s", "<= 30", longest_unserved,
       longest_unserved <= kTargetLongestUnservedS},
      {"wasted_share", "< 0.10", wasted_share,
       wasted_share < kTargetWastedShare},
      {"rss_growth_after_minute_1", "<= 0.10", worst_growth,
       rss_judged ? std::optional<bool>(worst_growth <= kRssFlatGrowth)
                  : std::nullopt},
  };
  int passed = 0, judged = 0;
  for (const Target& target : targets) {
    if (!target.pass.has_value()) continue;
    ++judged;
    passed += *target.pass ? 1 : 0;
  }

  Print(absl::StrFormat(
      "{\"bench\":\"soak\",\"minutes\":%.2f,\"workers\":%d,\"samples\":%lld,"
      "\"public_samples\":%lld,"
      "\"model\":{\"shards\":%d,\"slices\":%d,\"sequences\":%d,"
      "\"epochs\":%d,\"placement\":\"owner\",\"retrain\":\"batched\","
      "\"window_ms\":%lld,\"max_batch\":%d,\"base_fallback\":%s},"
      "\"load\":{\"forget_owner_every_s\":%.2f,\"delete_samples_every_s\":%.2f,"
      "\"ids_per_delete\":%d,\"predict_clients\":%d,"
      "\"predict_per_s_per_client\":%.1f,\"predict_rows\":%d},"
      "\"acknowledged\":%zu,\"ack_error_codes\":%s,\"ack_ms_p50\":%.1f,"
      "\"ack_ms_p99\":%.1f,\"purged_in_stream\":%d,"
      "\"restored_in_stream\":%d,\"restored_total\":%d,"
      "\"time_to_restored_s_p50\":%.1f,\"time_to_restored_s_p99\":%.1f,"
      "\"time_to_restored_s_max\":%.1f,\"time_to_restored_s_by\":{%s},"
      "\"all_served_share\":%.3f,\"none_served_share\":%.3f,"
      "\"longest_unserved_s\":%.1f,\"longest_unserved_shard\":%d,"
      "\"positions_trained\":%.0f,\"positions_wasted\":%.0f,"
      "\"wasted_share\":%.3f,"
      "\"predict\":{\"ok\":%lld,\"from_base\":%lld,\"errors\":%lld,"
      "\"error_codes\":%s,\"p50_ms\":%.1f,\"p99_ms\":%.1f},"
      "\"rss_mib\":{%s},"
      "\"restore_rate\":{\"steady_minutes\":\"%zu..%zu\","
      "\"arrival_per_min\":%.1f,\"restored_per_min\":%.1f,\"ratio\":%.3f,"
      "\"keeps_up\":%s,\"pending_at_stream_end\":%d,"
      "\"capacity_per_min\":\"%s\"},"
      "\"drain\":{\"all_restored\":%s,\"seconds\":%.1f},"
      "\"verify\":{\"ran\":%s,\"status\":\"%s\",\"restored\":%s,"
      "\"match\":%s,\"elapsed_ms\":%lld},"
      "\"clean_shutdown\":%s,"
      "\"targets\":%s,\"targets_passed\":%d,\"targets_judged\":%d,"
      "\"definitions\":{\"time_to_restored\":\"restored_at - accepted_at "
      "(server timestamps) over every acknowledged deletion, those RESTORED "
      "while draining included\",\"served_share\":\"time share of GetModel "
      "polls (every %d ms) showing every / no shard served\","
      "\"wasted_share\":\"oubli_training_positions_wasted_total / "
      "oubli_training_positions_total over the stream; positions cancelled "
      "mid-way count as wasted but not as trained, so this is an upper "
      "bound\",\"rss_flat\":\"for every process, VmRSS at the end of the "
      "last minute <= %.2f x VmRSS at the end of minute 1; not judged under "
      "two minutes\",\"keeps_up\":\"deletions RESTORED per minute >= %.2f x "
      "acknowledged per minute, over the minutes after the first\"},"
      "\"machine\":%s}\n",
      flags.minutes, flags.workers, static_cast<long long>(flags.samples),
      static_cast<long long>(flags.public_samples), flags.shards, flags.slices,
      flags.sequences, flags.epochs, static_cast<long long>(flags.window_ms),
      flags.max_batch, flags.base_fallback ? "true" : "false",
      flags.forget_interval_s, flags.delete_interval_s, flags.delete_ids,
      flags.predict_clients, flags.predict_rate, flags.predict_rows,
      deletions.size(), CountsJson(ack_errors), Percentile(ack_ms, 0.5),
      Percentile(ack_ms, 0.99), in_stream_purged, in_stream_restored,
      restored_total, Percentile(restore_s, 0.5), restored_p99,
      Percentile(restore_s, 1.0), absl::StrJoin(by_parts, ","),
      Share(all_served, observed), Share(none_served, observed),
      longest_unserved, longest_shard, positions, wasted, wasted_share,
      static_cast<long long>(predict_ok),
      static_cast<long long>(predict_from_base),
      static_cast<long long>(predict_error_total), CountsJson(predict_errors),
      Percentile(predict_ms, 0.5), Percentile(predict_ms, 0.99),
      absl::StrJoin(rss_parts, ","), first_steady + 1, rows.size(),
      arrival_per_min, restored_per_min, restore_ratio,
      keeps_up ? "true" : "false", pending_at_stream_end,
      keeps_up ? absl::StrFormat(">= %.1f (kept up: a lower bound)",
                                 restored_per_min)
               : absl::StrFormat("about %.1f (fell behind)", restored_per_min),
      drained ? "true" : "false", drain_s, drained ? "true" : "false",
      JsonEscape(CodeName(verify_status.error_code())),
      verify.restored() ? "true" : "false", verify.match() ? "true" : "false",
      static_cast<long long>(verify.elapsed_ms()),
      stopped.ok() ? "true" : "false", TargetsJson(targets), passed, judged,
      flags.poll_ms, 1 + kRssFlatGrowth, kKeepsUpShare, MachineJson()));

  if (!drained) {
    return Fail(absl::DeadlineExceededError(
        absl::StrCat("deletions not all RESTORED within --drain_seconds=",
                     flags.drain_seconds)));
  }
  if (!verify_status.ok()) {
    return Fail(FromGrpcStatus(verify_status, "Verify"));
  }
  if (!verify.match()) {
    return Fail(absl::InternalError(
        "Verify: served checkpoints differ from training from scratch"));
  }
  if (!stopped.ok()) return Fail(stopped);
  return 0;
}

}  // namespace

int RunSoakBench(const std::vector<std::string>& args) {
  SoakFlags flags;
  if (!ParseFlags(args, &flags)) return 2;
  return Run(flags);
}

}  // namespace oubli::bench
