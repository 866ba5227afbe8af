#include "coordinator/retrain_scheduler.h"

#include <algorithm>
#include <cstdio>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "common/status_macros.h"
#include "common/thread_priority.h"
#include "coordinator/position_choice.h"

namespace oubli::coordinator {

using internal::DeletionRecord;

RetrainScheduler::~RetrainScheduler() {
  RequestStop();
  Join();
}

void RetrainScheduler::Start() {
  // Extra loops for remote workers (see BackgroundLoop); at most one shard
  // trains per loop, so more than the shard count is useless.
  const int loops =
      p_.remote_trainer == nullptr
          ? std::max(1, p_.training_threads)
          : std::max({1, p_.training_threads, std::min(p_.config->shards, 16)});
  for (int t = 0; t < loops; ++t) {
    loops_.emplace_back([this, t] { BackgroundLoop(t); });
  }
}

int RetrainScheduler::TrainingParallelism() const {
  int threads = p_.training_threads;
  if (p_.remote_trainer != nullptr) {
    threads = std::max(threads, p_.remote_trainer->Capacity(p_.environment));
  }
  return threads;
}

void RetrainScheduler::RequestStop() {
  {
    absl::MutexLock lock(p_.engine_mu);
    stopping_ = true;
    work_cv_.SignalAll();
  }
  stop_requested_ = true;
}

void RetrainScheduler::Join() {
  for (std::thread& t : loops_) {
    if (t.joinable()) t.join();
  }
}

bool RetrainScheduler::NoteWhole(int shard) {
  return p_.pending->NoteWhole(shard, (*p_.shards)[shard],
                               p_.generations->Get(shard));
}

std::vector<DeletionRecord> RetrainScheduler::TakeRestored() {
  return p_.pending->TakeRestored(p_.served->Get()->fingerprint);
}

bool RetrainScheduler::Unserved(int shard) const {
  return (*p_.shards)[shard].ServesNothing();
}

bool RetrainScheduler::AnotherUnservedIsWaiting(int shard) const {
  for (int other : p_.queue->Due(absl::Now(), /*ignore_policy=*/false)) {
    if (other != shard && !(*p_.shards)[other].in_training &&
        Unserved(other)) {
      return true;
    }
  }
  return false;
}

absl::Status RetrainScheduler::TrainShardToCompletion(int shard,
                                                      ml::S3tTrainer& trainer,
                                                      TrainSummary* summary,
                                                      bool* yielded) {
  while (true) {
    PositionJob job;
    job.shard = shard;
    SliceGenerations::Stamp stamp;
    {
      absl::MutexLock lock(p_.engine_mu);
      if (stopping_) return absl::CancelledError("engine stopping");
      ShardState& state = (*p_.shards)[shard];
      if (yielded != nullptr && !Unserved(shard) &&
          AnotherUnservedIsWaiting(shard)) {
        *yielded = true;
        return absl::OkStatus();
      }
      if (state.needs_reload) {
        OUBLI_RETURN_IF_ERROR(p_.shards->LoadShard(shard));
        p_.shards->PublishServed();
      }
      // See ChooseNextPosition. Keys are shared, so shared prefixes train
      // once.
      std::vector<int> valid(state.keys.size(), 0);
      std::vector<int> first;
      for (const std::vector<int>& order : p_.plan->orders()) {
        first.push_back(order.front());
      }
      for (size_t b = 0; b < state.keys.size(); ++b) {
        while (valid[b] < static_cast<int>(state.keys[b].size()) &&
               p_.shards->table().IsStored(state.keys[b][valid[b]])) {
          ++valid[b];
        }
      }
      const std::optional<NextPosition> next = ChooseNextPosition(
          valid, first, static_cast<int>(p_.plan->orders()[0].size()));
      if (!next.has_value()) return absl::OkStatus();
      const int best = next->sequence;
      const size_t p = static_cast<size_t>(next->length);
      const auto& order = p_.plan->orders()[best];
      job.prefix.assign(order.begin(), order.begin() + p);
      job.key = state.keys[best][p - 1];
      job.parent_key = p > 1 ? state.keys[best][p - 2] : "";
      stamp = p_.slice_generations->Take(shard, job.prefix);
      // Read when the position needs them, without the engine mutex.
      job.read_slices = p_.shards->ReadPrefix(shard, job.prefix);
      // Cleared below on every path; purges wait on it
      // (WaitForStaleTraining).
      state.in_flight = stamp;
    }
    // Only a change to a slice of this prefix cancels it: a deletion
    // elsewhere in the shard leaves its training exact.
    job.cancelled = [&] {
      return stop_requested_.load() || p_.slice_generations->Changed(stamp);
    };
    absl::StatusOr<PositionResult> result = p_.runner->Run(job, trainer);

    // A checkpoint that must go (stale, or a parent that does not load) is
    // destroyed after the engine mutex is released: shredding and fsync are
    // slow. If that fails, the purge's disk-listing GC finds the file.
    std::string destroy;
    std::vector<DeletionRecord> restored;
    const ServedModel prepared = PrepareServed(shard, stamp, job, result);
    absl::Status outcome = ApplyPosition(shard, stamp, job, result, prepared,
                                         summary, &destroy, &restored);
    p_.restored->Record(std::move(restored));
    if (!destroy.empty()) {
      if (absl::Status s = p_.checkpoints->Destroy(destroy); !s.ok()) {
        std::fprintf(stderr, "oubli: destroying checkpoint %s: %s\n",
                     destroy.c_str(), s.ToString().c_str());
      }
    }
    OUBLI_RETURN_IF_ERROR(outcome);
  }
}

ServedModel RetrainScheduler::PrepareServed(
    int shard, const SliceGenerations::Stamp& stamp, const PositionJob& job,
    const absl::StatusOr<PositionResult>& result) {
  ServedModel prepared;
  if (!result.ok() || (result->outcome != PositionOutcome::kTrained &&
                       result->outcome != PositionOutcome::kRestored)) {
    return prepared;
  }
  // Stale (a deletion or ingest since): it will be destroyed, and a purge
  // may be waiting for this position.
  if (p_.slice_generations->Changed(stamp)) return prepared;
  // Only a prefix longer than the one served now can take its place.
  const std::shared_ptr<const ServedSnapshot> snapshot = p_.served->Get();
  if (static_cast<size_t>(shard) < snapshot->served.size() &&
      snapshot->served[shard].model != nullptr &&
      static_cast<size_t>(snapshot->served[shard].length) >=
          job.prefix.size()) {
    return prepared;
  }
  absl::StatusOr<ServedModel> built =
      BuildServed(*p_.base, job.key, result->checkpoint);
  // A failure is ChooseServed's to report, reading the file.
  return built.ok() ? *std::move(built) : prepared;
}

absl::Status RetrainScheduler::ApplyPosition(
    int shard, const SliceGenerations::Stamp& stamp, const PositionJob& job,
    const absl::StatusOr<PositionResult>& result, const ServedModel& prepared,
    TrainSummary* summary, std::string* destroy,
    std::vector<DeletionRecord>* restored) {
  absl::MutexLock lock(p_.engine_mu);
  (*p_.shards)[shard].in_flight.reset();
  OUBLI_RETURN_IF_ERROR(result.status());
  const bool stale = p_.slice_generations->Changed(stamp);
  switch (result->outcome) {
    case PositionOutcome::kCancelled:
      if (stop_requested_.load()) {
        return absl::CancelledError("engine stopping");
      }
      if (p_.metrics != nullptr)
        p_.metrics->PositionWasted(result->stats.samples);
      return absl::OkStatus();
    case PositionOutcome::kParentMissing:
    case PositionOutcome::kParentCorrupt:
      // Forgotten so that it is retrained.
      if (!stale) {
        p_.shards->table().ForgetStored(job.parent_key);
        *destroy = job.parent_key;
        p_.shards->table().RecomputeKeys(shard);
        p_.shards->UpdateServed(shard);
      }
      return absl::OkStatus();
    case PositionOutcome::kRestored:
    case PositionOutcome::kTrained:
      break;
  }
  if (stale) {
    // A deletion raced us: this checkpoint may contain deleted data.
    if (result->outcome == PositionOutcome::kTrained && p_.metrics != nullptr) {
      p_.metrics->PositionWasted(result->stats.samples);
    }
    *destroy = job.key;
    return absl::OkStatus();
  }
  p_.shards->table().MarkStored(job.key);
  if (result->outcome == PositionOutcome::kRestored) {
    ++summary->positions_restored;
  } else {
    ++summary->positions_trained;
    summary->samples += result->stats.samples;
    summary->steps += result->stats.steps;
  }
  p_.shards->table().RecomputeKeys(shard);
  p_.shards->UpdateServed(shard, &prepared);
  // A sequence just became whole: deletions waiting for it need not wait
  // for the rest of the shard.
  if (NoteWhole(shard)) *restored = TakeRestored();
  return absl::OkStatus();
}

absl::StatusOr<TrainSummary> RetrainScheduler::TrainShards(
    std::vector<int> todo, int threads, bool yield_to_unserved) {
  const absl::Time start = absl::Now();
  absl::Mutex results_mu;
  TrainSummary total;
  absl::Status first_error;
  std::atomic<size_t> next{0};
  auto work = [&] {
    absl::StatusOr<std::shared_ptr<ml::S3tTrainer>> trainer =
        p_.base->NewTrainer();
    if (!trainer.ok()) {
      absl::MutexLock lock(&results_mu);
      first_error.Update(trainer.status());
      return;
    }
    for (size_t i = next++; i < todo.size(); i = next++) {
      const int shard = todo[i];
      absl::Time owed_since;
      {
        absl::MutexLock lock(p_.engine_mu);
        // Another loop owns the shard; wait for it, then finish anything
        // left over.
        p_.engine_mu->Await(absl::Condition(
            +[](ShardState* s) { return !s->in_training; },
            &(*p_.shards)[shard]));
        (*p_.shards)[shard].in_training = true;
        owed_since = p_.queue->Remove(shard).value_or(absl::Now());
      }
      TrainSummary summary;
      bool yielded = false;
      absl::Status status = TrainShardToCompletion(
          shard, **trainer, &summary, yield_to_unserved ? &yielded : nullptr);
      std::vector<DeletionRecord> restored;
      {
        absl::MutexLock lock(p_.engine_mu);
        (*p_.shards)[shard].in_training = false;
        NoteWhole(shard);
        // Deletions that queued it again while it trained were applied
        // before the positions trained since: nothing is left for them.
        if (status.ok() && p_.shards->table().Complete(shard)) {
          p_.queue->Remove(shard);
        }
        if (!status.ok() && !stopping_) {
          // Keep it scheduled; back off rather than spin on a hard error.
          p_.queue->Add(shard, absl::Now() + absl::Seconds(5), owed_since);
        }
        if (yielded) p_.queue->Add(shard, absl::Now(), owed_since);
        restored = TakeRestored();
        work_cv_.SignalAll();
      }
      p_.restored->Record(std::move(restored));
      absl::MutexLock lock(&results_mu);
      first_error.Update(status);
      total.positions_trained += summary.positions_trained;
      total.positions_restored += summary.positions_restored;
      total.samples += summary.samples;
      total.steps += summary.steps;
    }
  };
  std::vector<std::thread> pool;
  const int n = std::max(1, std::min<int>(threads, todo.size()));
  for (int t = 1; t < n; ++t) pool.emplace_back(work);
  work();
  for (std::thread& t : pool) t.join();
  total.elapsed = absl::Now() - start;
  if (!first_error.ok()) return first_error;
  return total;
}

void RetrainScheduler::BackgroundLoop(int index) {
  // TrainShards' helper threads inherit the lowered priority.
  StartBackgroundThread("oubli-retrain", p_.background_priority);
  // Each loop takes one due shard at a time. Loop `index` works only while
  // index < TrainingParallelism(): `training_threads` loops train locally,
  // and with live workers one loop per worker keeps them all busy.
  constexpr absl::Duration kRecheckParallelism = absl::Seconds(1);
  while (true) {
    int shard = -1;
    {
      absl::MutexLock lock(p_.engine_mu);
      while (!stopping_) {
        const absl::Time now = absl::Now();
        absl::Time earliest = absl::InfiniteFuture();
        if (index < TrainingParallelism()) {
          auto busy = [this](int s)
                          ABSL_EXCLUSIVE_LOCKS_REQUIRED(*p_.engine_mu) {
                            return (*p_.shards)[s].in_training;
                          };
          // Unserved shards first, then the longest owed: see RetrainQueue.
          auto unserved = [this](int s)
                              ABSL_EXCLUSIVE_LOCKS_REQUIRED(*p_.engine_mu) {
                                return Unserved(s);
                              };
          shard = p_.queue->NextDue(now, busy, unserved).value_or(-1);
          earliest = p_.queue->EarliestDue(busy);
        }
        if (shard >= 0) break;
        if (index >= p_.training_threads) {
          // Workers come and go without signalling work_cv.
          earliest = std::min(earliest, now + kRecheckParallelism);
        }
        work_cv_.WaitWithDeadline(p_.engine_mu, earliest);
      }
      if (stopping_) return;
    }
    absl::StatusOr<TrainSummary> result =
        TrainShards({shard}, 1, /*yield_to_unserved=*/true);
    if (!result.ok() && !absl::IsCancelled(result.status())) {
      std::fprintf(stderr, "oubli: background retrain of shard %d failed: %s\n",
                   shard, result.status().ToString().c_str());
    }
  }
}

}  // namespace oubli::coordinator
