#include "worker/slice_cache.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace oubli::worker {

SliceCache::SliceCache(int64_t capacity_bytes)
    : capacity_(std::max<int64_t>(0, capacity_bytes)) {}

std::string SliceCache::Key(const std::string& model_id,
                            const std::string& digest) {
  return absl::StrCat(model_id, "/", digest);
}

bool SliceCache::StaleLocked(const std::string& model_id,
                             const std::string& digest, int64_t epoch) const {
  if (closed_ || epoch < floor_) return true;
  auto it = model_floor_.find(model_id);
  return it != model_floor_.end() && epoch < it->second.epoch &&
         !it->second.kept.contains(digest);
}

void SliceCache::EraseLocked(const std::string& key) {
  auto it = entries_.find(key);
  if (it == entries_.end()) return;
  bytes_ -= static_cast<int64_t>(it->second.slice->bytes().size());
  lru_.erase(it->second.lru);
  entries_.erase(it);
}

std::shared_ptr<const storage::EncodedSlice> SliceCache::Find(
    const std::string& model_id, const std::string& digest) {
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(Key(model_id, digest));
  if (it == entries_.end()) return nullptr;
  lru_.splice(lru_.begin(), lru_, it->second.lru);
  return it->second.slice;
}

absl::Status SliceCache::Insert(
    const std::string& model_id,
    std::shared_ptr<const storage::EncodedSlice> slice, int64_t epoch) {
  const auto size = static_cast<int64_t>(slice->bytes().size());
  if (size > capacity_) {
    return absl::ResourceExhaustedError(
        absl::StrCat("slice of ", size, " bytes exceeds the whole slice ",
                     "cache (--slice_cache_bytes ", capacity_, ")"));
  }
  // Declared before the lock, so released after it: zeroing a large slice
  // takes a while. The same below.
  std::vector<std::shared_ptr<const storage::EncodedSlice>> evicted;
  absl::MutexLock lock(&mu_);
  if (StaleLocked(model_id, slice->digest(), epoch)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "slice upload of epoch ", epoch, " is older than the last purge or ",
        "registration here, or this worker counts itself dead; upload it ",
        "again"));
  }
  const std::string key = Key(model_id, slice->digest());
  EraseLocked(key);
  while (bytes_ + size > capacity_ && !lru_.empty()) {
    auto victim = entries_.find(lru_.back());
    evicted.push_back(victim->second.slice);
    EraseLocked(lru_.back());
  }
  lru_.push_front(key);
  bytes_ += size;
  entries_[key] = Entry{model_id, std::move(slice), epoch, lru_.begin()};
  return absl::OkStatus();
}

int SliceCache::DropModelExcept(const std::string& model_id,
                                const absl::flat_hash_set<std::string>& keep,
                                int64_t epoch) {
  std::vector<std::shared_ptr<const storage::EncodedSlice>> dropped;
  {
    absl::MutexLock lock(&mu_);
    ModelFloor& floor = model_floor_[model_id];
    if (epoch >= floor.epoch) {
      floor.epoch = epoch;
      floor.kept = keep;
    }
    std::vector<std::string> keys;
    for (const auto& [key, entry] : entries_) {
      if (entry.model_id == model_id && !keep.contains(entry.slice->digest())) {
        keys.push_back(key);
      }
    }
    for (const std::string& key : keys) {
      dropped.push_back(entries_.at(key).slice);
      EraseLocked(key);
    }
  }
  return static_cast<int>(dropped.size());
}

void SliceCache::Reopen(int64_t epoch) {
  std::vector<std::shared_ptr<const storage::EncodedSlice>> dropped;
  absl::MutexLock lock(&mu_);
  floor_ = epoch;
  model_floor_.clear();
  closed_ = false;
  std::vector<std::string> keys;
  for (const auto& [key, entry] : entries_) {
    if (entry.epoch < floor_) keys.push_back(key);
  }
  for (const std::string& key : keys) {
    dropped.push_back(entries_.at(key).slice);
    EraseLocked(key);
  }
}

void SliceCache::DropAllAndClose() {
  absl::flat_hash_map<std::string, Entry> dropped;
  absl::MutexLock lock(&mu_);
  closed_ = true;
  dropped.swap(entries_);
  lru_.clear();
  bytes_ = 0;
}

bool SliceCache::IsStale(const std::string& model_id,
                         const std::string& digest, int64_t epoch) {
  absl::MutexLock lock(&mu_);
  return StaleLocked(model_id, digest, epoch);
}

int64_t SliceCache::bytes() const {
  absl::MutexLock lock(&mu_);
  return bytes_;
}

int64_t SliceCache::slices() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int64_t>(entries_.size());
}

}  // namespace oubli::worker
