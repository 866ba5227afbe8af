// A worker's cache of training slices (storage/encoded_slice.h), so a slice
// crosses the network to it at most once while it stays cached, however
// many positions, sequences and retrains read it. In memory only, bounded
// in bytes, least recently used first out; scoped by model, so dropping
// one model's slices leaves the others.
//
// Deletion safety rests on epochs the coordinator hands out. Each upload
// carries the epoch it began in; a purge (DropModelExcept) raises the
// model's floor and an upload older than it is refused unless the purge
// kept its digest: it may have begun before the deletion and hold the
// deleted samples. A worker that counts itself dead drops everything and
// takes nothing (DropAllAndClose) until it registers again (Reopen).
// Thread-safe.
#ifndef OUBLI_WORKER_SLICE_CACHE_H_
#define OUBLI_WORKER_SLICE_CACHE_H_

#include <cstdint>
#include <list>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "storage/encoded_slice.h"

namespace oubli::worker {

class SliceCache {
 public:
  explicit SliceCache(int64_t capacity_bytes);

  // The slice, or null when not cached. Counts as a use.
  std::shared_ptr<const storage::EncodedSlice> Find(
      const std::string& model_id, const std::string& digest);

  // Keeps `slice`, evicting least recently used ones beyond the capacity
  // (never this one). FailedPrecondition: the cache is closed, or `epoch`
  // is older than the model's floor (nothing kept); ResourceExhausted:
  // larger than the whole capacity.
  absl::Status Insert(const std::string& model_id,
                      std::shared_ptr<const storage::EncodedSlice> slice,
                      int64_t epoch);

  // Drops every slice of the model whose digest is not in `keep` and raises
  // the model's floor to `epoch`; an older upload of a digest in `keep` is
  // still taken (it holds nothing this purge deleted). Returns how many
  // were dropped.
  int DropModelExcept(const std::string& model_id,
                      const absl::flat_hash_set<std::string>& keep,
                      int64_t epoch);

  // At a new registration: drops the slices uploaded before `epoch`, makes
  // it every model's floor (the coordinator may be a new one, whose epochs
  // need not exceed its predecessor's) and opens the cache again.
  void Reopen(int64_t epoch);

  // Drops everything and refuses every upload until Reopen: what a worker
  // counted dead does.
  void DropAllAndClose();

  // Whether an upload of `digest` begun at `epoch` would be refused now.
  bool IsStale(const std::string& model_id, const std::string& digest,
               int64_t epoch);

  int64_t capacity() const { return capacity_; }
  int64_t bytes() const;
  int64_t slices() const;

 private:
  struct Entry {
    std::string model_id;
    std::shared_ptr<const storage::EncodedSlice> slice;
    int64_t epoch = 0;
    std::list<std::string>::iterator lru;  // into lru_
  };
  static std::string Key(const std::string& model_id,
                         const std::string& digest);
  bool StaleLocked(const std::string& model_id, const std::string& digest,
                   int64_t epoch) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EraseLocked(const std::string& key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const int64_t capacity_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);
  std::list<std::string> lru_ ABSL_GUARDED_BY(mu_);  // front: most recent
  int64_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  int64_t floor_ ABSL_GUARDED_BY(mu_) = 0;
  struct ModelFloor {
    int64_t epoch = 0;
    absl::flat_hash_set<std::string> kept;  // by the purge that set it
  };
  absl::flat_hash_map<std::string, ModelFloor> model_floor_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace oubli::worker

#endif  // OUBLI_WORKER_SLICE_CACHE_H_
