#include "coordinator/worker_training.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <cstdio>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "common/grpc_status.h"
#include "common/status_macros.h"
#include "coordinator/pooled_worker.h"
#include "oubli/cluster/cluster.grpc.pb.h"
#include "storage/encoded_slice.h"

namespace oubli::coordinator {

namespace {

// How often a running call checks for cancellation and worker death.
constexpr absl::Duration kWatchPeriod = absl::Milliseconds(20);
// Largest piece of a slice upload.
constexpr size_t kSlicePieceBytes = size_t{1} << 20;

}  // namespace

WorkerTraining::WorkerTraining(std::shared_ptr<WorkerPool> pool)
    : pool_(std::move(pool)) {}

WorkerTraining::~WorkerTraining() = default;

int WorkerTraining::Capacity(const std::string& environment) {
  return pool_->Capacity(environment);
}

// Cancels the calls of one training attempt on one worker once the engine
// no longer wants the result or the worker stops heartbeating.
class WorkerTraining::AttemptWatch {
 public:
  // `cancelled` outlives this.
  AttemptWatch(const std::function<bool()>& cancelled,
               std::function<bool()> alive)
      : thread_([this, cancelled = &cancelled, alive = std::move(alive)] {
          while (!done_.WaitForNotificationWithTimeout(kWatchPeriod)) {
            if (*cancelled && (*cancelled)()) {
              Cancel(&we_cancelled_);
              return;
            }
            if (!alive()) {
              Cancel(&worker_lost_);
              return;
            }
          }
        }) {}
  ~AttemptWatch() {
    done_.Notify();
    thread_.join();
  }

  // The next call of the attempt runs under `context`; false: the attempt
  // is already cancelled, do not start it.
  bool Begin(grpc::ClientContext* context) {
    absl::MutexLock lock(&mu_);
    if (we_cancelled_ || worker_lost_) return false;
    current_ = context;
    return true;
  }
  void End() {
    absl::MutexLock lock(&mu_);
    current_ = nullptr;
  }
  bool we_cancelled() {
    absl::MutexLock lock(&mu_);
    return we_cancelled_;
  }
  bool worker_lost() {
    absl::MutexLock lock(&mu_);
    return worker_lost_;
  }

 private:
  void Cancel(bool* why) {
    absl::MutexLock lock(&mu_);
    *why = true;
    if (current_ != nullptr) current_->TryCancel();
  }

  absl::Mutex mu_;
  grpc::ClientContext* current_ ABSL_GUARDED_BY(mu_) = nullptr;
  bool we_cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool worker_lost_ ABSL_GUARDED_BY(mu_) = false;
  absl::Notification done_;
  std::thread thread_;  // last: started once the rest is built
};

grpc::Status WorkerTraining::UploadSlice(WorkerPool::Worker& worker,
                                         const std::string& model_id,
                                         const storage::EncodedSlice& slice,
                                         AttemptWatch& watch) {
  grpc::ClientContext context;
  // At least 8 MiB/s, however large the slice.
  pool_->PrepareCall(
      &context,
      absl::Now() + pool_->options().chunk_deadline +
          absl::Seconds(static_cast<double>(slice.bytes().size()) / (8 << 20)));
  if (!watch.Begin(&context)) {
    return grpc::Status(grpc::StatusCode::CANCELLED, "attempt cancelled");
  }
  cluster::PutSliceResponse response;
  std::unique_ptr<grpc::ClientWriter<cluster::SlicePiece>> writer =
      worker.stub->PutSlice(&context, &response);
  const std::string& bytes = slice.bytes();
  cluster::SlicePiece piece;
  piece.set_model_id(model_id);
  piece.set_digest(slice.digest());
  piece.set_total_bytes(static_cast<int64_t>(bytes.size()));
  // Read when the upload begins: a purge pass after this one refuses it.
  piece.set_epoch(pool_->slice_epoch());
  size_t at = 0;
  do {
    const size_t n = std::min(kSlicePieceBytes, bytes.size() - at);
    piece.set_data(bytes.data() + at, n);
    at += n;
    if (!writer->Write(piece)) break;  // Finish says why
    piece.clear_model_id();
    piece.clear_digest();
    piece.clear_total_bytes();
    piece.clear_epoch();
  } while (at < bytes.size());
  writer->WritesDone();
  const grpc::Status status = writer->Finish();
  watch.End();
  if (status.ok()) {
    slice_bytes_sent_ += static_cast<int64_t>(bytes.size());
    pool_->SliceSent(worker, model_id, slice.digest());
  }
  return status;
}

absl::StatusOr<RemoteResult> WorkerTraining::TrainPosition(
    const RemotePosition& position, const std::function<bool()>& cancelled) {
  cluster::TrainPositionRequest request;
  request.set_config(position.config_text);
  request.set_environment(position.environment);
  request.set_shard(position.shard);
  for (int slice : position.prefix) request.add_prefix(slice);
  request.set_parent(position.parent);
  request.set_model_id(position.model_id);
  absl::flat_hash_set<std::string> named;
  std::vector<std::string> slice_keys;
  for (const std::string& digest : position.slice_digests) {
    request.add_slice_digests(digest);
    named.insert(digest);
    slice_keys.push_back(absl::StrCat(position.model_id, "/", digest));
  }
  // Slices travel apart, in pieces; what is left is mostly the parent
  // checkpoint.
  if (request.ByteSizeLong() >
      static_cast<size_t>(pool_->options().max_message_bytes)) {
    return absl::UnavailableError(
        absl::StrCat("position of ", request.ByteSizeLong(),
                     " bytes exceeds max_message_bytes ",
                     pool_->options().max_message_bytes));
  }

  // Addresses that failed this position: a worker that re-registers after
  // failing gets a new id but keeps its address, and must not be retried
  // in a loop.
  std::vector<std::string> excluded;
  constexpr int kMaxAttempts = 4;
  // Rounds of "these slices are missing, here they are" on one worker: a
  // slice evicted again before training (a cache too small for the
  // position) or refused by a purge pass needs another.
  constexpr int kUploadRounds = 3;
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    if (cancelled && cancelled()) return absl::CancelledError("cancelled");
    std::shared_ptr<WorkerPool::Worker> worker =
        pool_->Acquire(position.environment, excluded, slice_keys);
    if (worker == nullptr) break;
    cluster::TrainPositionResponse response;
    grpc::Status status;
    bool we_cancelled = false, worker_lost = false;
    // Reading a slice failed (Aborted: it changed, the position is stale):
    // the position's own failure, not the worker's.
    absl::Status read_failure;
    {
      AttemptWatch watch(cancelled,
                         [this, &worker] { return pool_->Alive(*worker); });
      for (int round = 0;; ++round) {
        response.Clear();
        grpc::ClientContext context;
        pool_->PrepareCall(&context,
                           absl::Now() + pool_->options().train_deadline);
        if (!watch.Begin(&context)) {
          status = grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
          break;
        }
        status = worker->stub->TrainPosition(&context, request, &response);
        watch.End();
        if (!status.ok() || response.missing_slices().empty()) break;
        if (round == kUploadRounds) {
          status = grpc::Status(
              grpc::StatusCode::RESOURCE_EXHAUSTED,
              absl::StrCat("slices still missing after ", kUploadRounds,
                           " uploads (is the worker's --slice_cache_bytes "
                           "smaller than one position's slices?)"));
          break;
        }
        for (const std::string& digest : response.missing_slices()) {
          if (!named.contains(digest)) {
            status = grpc::Status(grpc::StatusCode::INTERNAL,
                                  "worker asked for a slice not named");
            break;
          }
          // Read now, one at a time: only what this worker lacks.
          absl::StatusOr<
              std::vector<std::shared_ptr<const storage::EncodedSlice>>>
              read = position.read_slices({digest});
          if (!read.ok()) {
            read_failure = read.status();
            break;
          }
          status = UploadSlice(*worker, position.model_id, *read->front(),
                               watch);
          // Refused as older than a purge pass: the next round uploads it
          // again under the new epoch.
          if (status.error_code() == grpc::StatusCode::FAILED_PRECONDITION) {
            status = grpc::Status::OK;
          }
          // Our own slice refused: never blamed on the parent.
          if (status.error_code() == grpc::StatusCode::INVALID_ARGUMENT ||
              status.error_code() == grpc::StatusCode::DATA_LOSS) {
            status = grpc::Status(
                grpc::StatusCode::INTERNAL,
                absl::StrCat("slice upload refused: ", status.error_message()));
          }
          if (!status.ok()) break;
        }
        if (!status.ok() || !read_failure.ok()) break;
      }
      we_cancelled = watch.we_cancelled();
      worker_lost = watch.worker_lost();
    }
    pool_->Release(worker, status.ok() && read_failure.ok());
    if (!read_failure.ok()) return read_failure;

    if (status.ok()) {
      RemoteResult result;
      result.checkpoint = std::move(*response.mutable_checkpoint());
      result.samples = response.samples();
      result.steps = response.steps();
      result.worker = worker->id;
      return result;
    }
    if (we_cancelled) return absl::CancelledError("cancelled");
    excluded.push_back(worker->address);
    switch (status.error_code()) {
      case grpc::StatusCode::INVALID_ARGUMENT:
        // The position's own problem (a corrupt parent): final.
        return FromGrpcStatus(status);
      case grpc::StatusCode::DATA_LOSS:
      case grpc::StatusCode::INTERNAL:
        // Its slices do not fit (a bug, not the worker's state): final,
        // and not the parent's fault.
        return absl::InternalError(
            absl::StrCat("worker ", worker->id, ": ", status.error_message()));
      case grpc::StatusCode::DEADLINE_EXCEEDED:
      case grpc::StatusCode::RESOURCE_EXHAUSTED:
        // Too slow or too big over there; nothing says the worker is bad.
        return absl::UnavailableError(
            absl::StrCat("worker ", worker->id, ": ", status.error_message()));
      case grpc::StatusCode::FAILED_PRECONDITION:
        // E.g. this worker cannot read the base weights file: others may.
        std::fprintf(stderr, "oubli: worker %s cannot train shard %d: %s\n",
                     worker->id.c_str(), position.shard,
                     status.error_message().c_str());
        continue;
      default:
        pool_->MarkDead(worker, worker_lost
                                    ? "no heartbeat while training"
                                    : absl::StrCat("TrainPosition: ",
                                                   status.error_message()));
        continue;
    }
  }
  return absl::UnavailableError("no live worker could train this position");
}

absl::Status WorkerTraining::DropStaleSlices(
    const std::string& model_id, const absl::flat_hash_set<std::string>& keep,
    bool reopened) {
  OUBLI_RETURN_IF_ERROR(
      pool_->WaitForUnreachableCopies(model_id, reopened, true));
  const int64_t epoch = pool_->NextSliceEpoch();
  const std::vector<std::shared_ptr<WorkerPool::Worker>> told =
      pool_->ForgetSlicesExcept(model_id, keep);
  cluster::DropSlicesRequest request;
  request.set_model_id(model_id);
  for (const std::string& digest : keep) request.add_keep(digest);
  request.set_epoch(epoch);
  return pool_->ConfirmDropOnAll(told, "cached slices", [&](size_t w) {
    grpc::ClientContext context;
    pool_->PrepareCall(&context, absl::Now() + pool_->options().chunk_deadline);
    cluster::DropSlicesResponse response;
    return told[w]->stub->DropSlices(&context, request, &response);
  });
}

}  // namespace oubli::coordinator
