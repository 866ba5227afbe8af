// Encoded slices the coordinator read from its models' lineage stores, kept
// for the next position that trains on them, within one byte budget that
// every model of the coordinator shares: the coordinator's memory for slice
// bytes is set by configuration, not by how many samples its models hold.
// A miss costs a read of the slice from the store (and its encoding), never
// correctness.
//
// Entries are named by a slice's SliceDigest (the digest of its sorted ids,
// which names the slice in prefix keys): within one model a sample id
// always means the same payload, so those ids determine the bytes. A
// model's entries live in its own ModelSliceCache, since two models may
// hold the same ids with different payloads.
//
// Deletion: the engine drops a slice's entry when the slice's ids change
// (Replace), under the engine mutex, before the deletion is FORGOTTEN; an
// entry can only be added for ids that are current, so a read that raced
// the deletion cannot bring the old slice back. Bytes are zeroed when the
// last holder of an EncodedSlice lets go (a position still training on it
// holds it until it ends; purges wait for those positions).
//
// Thread-safe.
#ifndef OUBLI_COORDINATOR_ENCODED_SLICE_CACHE_H_
#define OUBLI_COORDINATOR_ENCODED_SLICE_CACHE_H_

#include <cstdint>
#include <list>
#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "storage/encoded_slice.h"

namespace oubli::coordinator {

class ModelSliceCache;

class EncodedSliceCache {
 public:
  // 256 MiB: a few positions' slices at a million 784-byte samples (S=16,
  // L=4: 12.5 MB a slice), small beside the memory training needs.
  static constexpr int64_t kDefaultBytes = int64_t{256} << 20;

  // `budget_bytes` >= 0 (0: nothing is kept, every position reads its
  // slices from the store).
  explicit EncodedSliceCache(int64_t budget_bytes);
  EncodedSliceCache(const EncodedSliceCache&) = delete;
  EncodedSliceCache& operator=(const EncodedSliceCache&) = delete;

  int64_t budget_bytes() const { return budget_bytes_; }
  // Bytes and slices held now (positions may hold more of their own).
  int64_t bytes() const ABSL_LOCKS_EXCLUDED(mu_);
  int64_t slices() const ABSL_LOCKS_EXCLUDED(mu_);
  // Lookups of a position's slice since this cache was made: found here,
  // or not (then read from a lineage store).
  int64_t hits() const ABSL_LOCKS_EXCLUDED(mu_);
  int64_t misses() const ABSL_LOCKS_EXCLUDED(mu_);
  // Whether the bytes of any slice held contain `needle`: how tests check
  // that deleted payloads left the cache.
  bool HoldsBytes(absl::string_view needle) const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  friend class ModelSliceCache;
  struct Entry {
    uint64_t model;
    std::string ids_digest;
    std::shared_ptr<const storage::EncodedSlice> slice;
  };
  using Lru = std::list<Entry>;  // most recently used first
  struct Key {
    uint64_t model;
    std::string ids_digest;
    template <typename H>
    friend H AbslHashValue(H h, const Key& k) {
      return H::combine(std::move(h), k.model, k.ids_digest);
    }
    bool operator==(const Key& o) const {
      return model == o.model && ids_digest == o.ids_digest;
    }
  };

  // For ModelSliceCache: one model's entries.
  uint64_t NewModel() ABSL_LOCKS_EXCLUDED(mu_);
  std::shared_ptr<const storage::EncodedSlice> Find(
      uint64_t model, const std::string& ids_digest) ABSL_LOCKS_EXCLUDED(mu_);
  void Put(uint64_t model, const std::string& ids_digest,
           std::shared_ptr<const storage::EncodedSlice> slice)
      ABSL_LOCKS_EXCLUDED(mu_);
  void Drop(uint64_t model, const std::string& ids_digest)
      ABSL_LOCKS_EXCLUDED(mu_);
  void DropModel(uint64_t model) ABSL_LOCKS_EXCLUDED(mu_);
  void EraseLocked(Lru::iterator it) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const int64_t budget_bytes_;
  mutable absl::Mutex mu_;
  uint64_t next_model_ ABSL_GUARDED_BY(mu_) = 1;
  Lru lru_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<Key, Lru::iterator> index_ ABSL_GUARDED_BY(mu_);
  int64_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t hits_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t misses_ ABSL_GUARDED_BY(mu_) = 0;
};

// One model's part of a shared EncodedSliceCache, and which slices of the
// model are current (their SliceDigests, and the digest of each one's
// encoding once known: what workers may keep cached). Dropped whole with
// the model.
class ModelSliceCache {
 public:
  explicit ModelSliceCache(std::shared_ptr<EncodedSliceCache> shared);
  ~ModelSliceCache();  // drops every entry of the model
  ModelSliceCache(const ModelSliceCache&) = delete;
  ModelSliceCache& operator=(const ModelSliceCache&) = delete;

  // A slice's ids changed from `old_ids_digest` to `new_ids_digest` (either
  // empty: none, for a slice installed or blanked). The old slice's entry is
  // dropped once no other slice of the model has those ids (only empty
  // slices share them).
  void Replace(const std::string& old_ids_digest,
               const std::string& new_ids_digest);

  // The slice of these ids, if held (counted as a hit or a miss: call it
  // only for a slice about to be read otherwise).
  std::shared_ptr<const storage::EncodedSlice> Find(
      const std::string& ids_digest);
  // Keeps `slice` as the slice of these ids if they are current (a read
  // that raced a change is not kept), evicting the least recently used
  // slices of every model past the budget; a slice larger than the whole
  // budget is not kept, but its digest is remembered either way.
  void Insert(const std::string& ids_digest,
              std::shared_ptr<const storage::EncodedSlice> slice);
  // The digest of the encoding of the current slice with these ids, once a
  // read of it was Inserted.
  std::optional<std::string> EncodedDigest(const std::string& ids_digest);
  // Its size in bytes, likewise.
  std::optional<int64_t> EncodedBytes(const std::string& ids_digest);

 private:
  struct Current {
    int slices = 0;  // of the model with these ids
    std::string encoded_digest;  // empty: not read since they became current
    int64_t encoded_bytes = 0;   // with encoded_digest
  };
  // The entry of these current ids once they were read, else nullptr.
  const Current* ReadCurrentLocked(const std::string& ids_digest) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::shared_ptr<EncodedSliceCache> shared_;
  const uint64_t model_;
  // Taken before the shared cache's: an Insert and a Replace of the same
  // ids are ordered.
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, Current> current_ ABSL_GUARDED_BY(mu_);
};

}  // namespace oubli::coordinator

#endif  // OUBLI_COORDINATOR_ENCODED_SLICE_CACHE_H_
