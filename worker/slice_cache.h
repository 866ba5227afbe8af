// A worker's cache of training slices (storage/encoded_slice.h), so a slice
// crosses the network to it at most once while it stays cached, however
// many positions, sequences and retrains read it. Scoped by model, so
// dropping one model's slices leaves the others. Two tiers, each bounded in
// bytes, least recently used first out:
//  - memory, always;
//  - files in a directory (the worker's DATA_DIR/slices), when opened with
//    one. Every slice taken is written there as well, not only those memory
//    evicts: memory eviction then stays a pointer drop that writes nothing,
//    and every drop path meets files whatever the memory pressure, so one
//    that missed them would fail every test, not only those that fill
//    memory. A file is DIR/<SHA-256 of the model id>/<digest>.<n>, sealed
//    (below), written to a temp file, fsynced and renamed, so a crash never
//    leaves part of a slice under a real name. A slice read back is served
//    only if it unseals, hashes to its digest and was not dropped while
//    being read; a file that fails is shredded and the lookup is a miss. A
//    slice found on disk is promoted to memory and keeps its file (evicting
//    it again is free). The disk bound counts file sizes.
//
// Deletion safety rests on epochs the coordinator hands out. Each upload
// carries the epoch it began in; a purge (DropModelExcept) raises the
// model's floor and an upload older than it is refused unless the purge
// kept its digest: it may have begun before the deletion and hold the
// deleted samples. A worker that counts itself dead drops everything and
// takes nothing (DropAllAndClose) until it registers again (Reopen).
//
// Files are destroyed with ShredFile (zeroed, fsynced, unlinked), and a
// drop returns only once every file it covers is gone, including one
// another thread was still writing or destroying. A file that fails to
// shred is retried by every later drop, and each fails until it succeeds:
// a worker must not confirm a purge while a copy is left.
//
// Files are sealed (AES-256-GCM) under a random key made by Open and held
// only in this object's memory, bound to their model and digest. A worker
// that dies (SIGKILL, power loss) cannot drop its files, and nobody waits
// for it to: the coordinator treats a dead worker as holding nothing once
// its lease is over. Sealed, those files are ciphertext whose key died
// with the process, so a deletion that reaches PURGED meanwhile leaves no
// readable copy there; and a file altered, cut short or moved to another
// slice's name fails to unseal before its digest is even checked.
//
// Epochs are not kept on disk, because nothing could use them: a worker
// drops its whole cache before every registration, and a new process
// could not unseal the files anyway. Open shreds them all.
// Thread-safe.
#ifndef OUBLI_WORKER_SLICE_CACHE_H_
#define OUBLI_WORKER_SLICE_CACHE_H_

#include <array>
#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "storage/encoded_slice.h"

namespace oubli::worker {

// Where Find found a slice.
enum class SliceSource {
  kMiss,
  kMemory,
  kDisk,         // read from its file, verified and promoted to memory
  kCorruptFile,  // its file failed its digest and was shredded: a miss
};

class SliceCache {
 public:
  // Bytes a file holds beyond its slice's (the seal's nonce and tag).
  static constexpr int64_t kFileOverhead = 28;

  // Memory only.
  explicit SliceCache(int64_t capacity_bytes);

  // With files of at most `disk_capacity_bytes` in `disk_dir` (created).
  // Every file already under `disk_dir` is shredded first, also with
  // `disk_capacity_bytes` 0 (memory only): a previous process left it, and
  // nothing proves it is still wanted. Errors: the directory cannot be
  // cleared or created.
  static absl::StatusOr<std::unique_ptr<SliceCache>> Open(
      int64_t capacity_bytes, const std::string& disk_dir,
      int64_t disk_capacity_bytes);

  ~SliceCache();

  // The slice, or null when not cached. Counts as a use. `source`, when
  // given, says where it came from.
  std::shared_ptr<const storage::EncodedSlice> Find(
      const std::string& model_id, const std::string& digest,
      SliceSource* source = nullptr);

  // Keeps `slice`, evicting least recently used ones beyond the capacity
  // (never this one), and writes its file when it fits the disk tier (a
  // failed write leaves it in memory only). FailedPrecondition: the cache
  // is closed, or `epoch` is older than the model's floor (nothing kept);
  // ResourceExhausted: larger than the whole memory capacity.
  absl::Status Insert(const std::string& model_id,
                      std::shared_ptr<const storage::EncodedSlice> slice,
                      int64_t epoch);

  // Drops every slice of the model whose digest is not in `keep` and raises
  // the model's floor to `epoch`; an older upload of a digest in `keep` is
  // still taken (it holds nothing this purge deleted). Returns how many
  // were dropped; an error when a file could not be shredded (retried by
  // the next drop).
  absl::StatusOr<int> DropModelExcept(
      const std::string& model_id, const absl::flat_hash_set<std::string>& keep,
      int64_t epoch);

  // At a new registration: drops the slices uploaded before `epoch`, makes
  // it every model's floor (the coordinator may be a new one, whose epochs
  // need not exceed its predecessor's) and opens the cache again. An error
  // when a file could not be shredded (the cache is open all the same).
  absl::Status Reopen(int64_t epoch);

  // Drops everything and refuses every upload until Reopen: what a worker
  // counted dead does. An error when a file could not be shredded.
  absl::Status DropAllAndClose();

  // Whether an upload of `digest` begun at `epoch` would be refused now.
  bool IsStale(const std::string& model_id, const std::string& digest,
               int64_t epoch);

  int64_t capacity() const { return capacity_; }
  int64_t bytes() const;   // in memory
  int64_t slices() const;  // in memory
  // 0 without a disk tier.
  int64_t disk_capacity() const { return disk_capacity_; }
  // Files, counting those being written.
  int64_t disk_bytes() const;
  int64_t disk_slices() const;
  // The directory holding `model_id`'s files (empty without a disk tier).
  std::string ModelDirectory(const std::string& model_id) const;

 private:
  SliceCache(int64_t capacity_bytes, std::string disk_dir,
             int64_t disk_capacity_bytes);

  struct Entry {
    std::string model_id;
    std::shared_ptr<const storage::EncodedSlice> slice;
    int64_t epoch = 0;
    std::list<std::string>::iterator lru;  // into lru_
  };
  struct FileEntry {
    std::string model_id;
    std::string path;  // unique per write: a new file never takes an old name
    int64_t size = 0;
    int64_t epoch = 0;
    bool ready = false;                    // false while its writer is at work
    std::list<std::string>::iterator lru;  // into disk_lru_
  };
  // (path, model id) of files to destroy.
  using Files = std::vector<std::pair<std::string, std::string>>;

  static std::string Key(const std::string& model_id,
                         const std::string& digest);
  bool StaleLocked(const std::string& model_id, const std::string& digest,
                   int64_t epoch) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EraseLocked(const std::string& key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Into memory, evicting the least recently used (into *evicted, to be
  // released after the lock).
  void KeepInMemoryLocked(
      const std::string& key, const std::string& model_id,
      std::shared_ptr<const storage::EncodedSlice> slice, int64_t epoch,
      std::vector<std::shared_ptr<const storage::EncodedSlice>>* evicted)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Takes the file out of the index. A written one joins *doomed (marked
  // busy); one still being written is left to its writer, who finds it gone.
  void EraseFileLocked(const std::string& key, Files* doomed)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Makes room for the file of a slice of `size` bytes (victims into
  // *doomed) and enters it, being written; its path and *number (the
  // seal's nonce), or empty when it does not fit.
  std::string ReserveFileLocked(const std::string& key,
                                const std::string& model_id, int64_t size,
                                int64_t epoch, Files* doomed, uint64_t* number)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Seals `bytes` and writes them to the file entered at `path`; destroys it
  // when that fails or the slice was dropped meanwhile.
  void WriteFile(const std::string& key, const std::string& model_id,
                 const std::string& path, uint64_t number,
                 const std::string& bytes) ABSL_LOCKS_EXCLUDED(mu_);
  // Shreds each file (and its temp file), then clears it from busy_; one
  // that fails joins unshredded_. The first error.
  absl::Status Destroy(const Files& files) ABSL_LOCKS_EXCLUDED(mu_);
  // What every drop path ends with: destroys `doomed`, waits until no path
  // of `wait_for` is busy, retries earlier failures and removes the model
  // directories left empty.
  absl::Status FinishDrop(const Files& doomed,
                          const std::vector<std::string>& wait_for)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Paths busy now, of `model_id` or (null) of every model.
  std::vector<std::string> BusyLocked(const std::string* model_id) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const int64_t capacity_;
  const std::string disk_dir_;  // empty: no disk tier
  const int64_t disk_capacity_;
  // Seals the files: random, made by Open, never written anywhere.
  std::array<unsigned char, 32> file_key_;
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

  // The disk tier's index, by the same keys as entries_.
  absl::flat_hash_map<std::string, FileEntry> files_ ABSL_GUARDED_BY(mu_);
  std::list<std::string> disk_lru_ ABSL_GUARDED_BY(mu_);  // front: recent
  int64_t disk_bytes_ ABSL_GUARDED_BY(mu_) = 0;  // reserved by writers too
  uint64_t next_file_ ABSL_GUARDED_BY(mu_) = 0;  // names and nonces
  // Paths a thread is writing or destroying, with their model: out of the
  // index or not yet usable, but still on disk, so drops wait for them.
  absl::flat_hash_map<std::string, std::string> busy_ ABSL_GUARDED_BY(mu_);
  // Files whose shredding failed, retried by every drop.
  Files unshredded_ ABSL_GUARDED_BY(mu_);
};

}  // namespace oubli::worker

#endif  // OUBLI_WORKER_SLICE_CACHE_H_
