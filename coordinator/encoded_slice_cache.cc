#include "coordinator/encoded_slice_cache.h"

#include <iterator>
#include <utility>

namespace oubli::coordinator {

EncodedSliceCache::EncodedSliceCache(int64_t budget_bytes)
    : budget_bytes_(budget_bytes < 0 ? 0 : budget_bytes) {}

int64_t EncodedSliceCache::bytes() const {
  absl::MutexLock lock(&mu_);
  return bytes_;
}

int64_t EncodedSliceCache::slices() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int64_t>(lru_.size());
}

int64_t EncodedSliceCache::hits() const {
  absl::MutexLock lock(&mu_);
  return hits_;
}

int64_t EncodedSliceCache::misses() const {
  absl::MutexLock lock(&mu_);
  return misses_;
}

bool EncodedSliceCache::HoldsBytes(absl::string_view needle) const {
  absl::MutexLock lock(&mu_);
  for (const Entry& entry : lru_) {
    if (absl::string_view(entry.slice->bytes()).find(needle) !=
        absl::string_view::npos) {
      return true;
    }
  }
  return false;
}

uint64_t EncodedSliceCache::NewModel() {
  absl::MutexLock lock(&mu_);
  return next_model_++;
}

std::shared_ptr<const storage::EncodedSlice> EncodedSliceCache::Find(
    uint64_t model, const std::string& ids_digest) {
  absl::MutexLock lock(&mu_);
  auto held = index_.find(Key{model, ids_digest});
  if (held == index_.end()) {
    ++misses_;
    return nullptr;
  }
  ++hits_;
  lru_.splice(lru_.begin(), lru_, held->second);  // most recently used
  return held->second->slice;
}

void EncodedSliceCache::Put(uint64_t model, const std::string& ids_digest,
                            std::shared_ptr<const storage::EncodedSlice> slice) {
  const auto size = static_cast<int64_t>(slice->bytes().size());
  if (size > budget_bytes_) return;
  absl::MutexLock lock(&mu_);
  Key key{model, ids_digest};
  if (index_.contains(key)) return;
  while (bytes_ + size > budget_bytes_) EraseLocked(std::prev(lru_.end()));
  lru_.push_front({model, ids_digest, std::move(slice)});
  index_[std::move(key)] = lru_.begin();
  bytes_ += size;
}

void EncodedSliceCache::Drop(uint64_t model, const std::string& ids_digest) {
  absl::MutexLock lock(&mu_);
  auto held = index_.find(Key{model, ids_digest});
  if (held != index_.end()) EraseLocked(held->second);
}

void EncodedSliceCache::DropModel(uint64_t model) {
  absl::MutexLock lock(&mu_);
  for (auto it = lru_.begin(); it != lru_.end();) {
    auto next = std::next(it);
    if (it->model == model) EraseLocked(it);
    it = next;
  }
}

void EncodedSliceCache::EraseLocked(Lru::iterator it) {
  bytes_ -= static_cast<int64_t>(it->slice->bytes().size());
  index_.erase(Key{it->model, it->ids_digest});
  lru_.erase(it);
}

ModelSliceCache::ModelSliceCache(std::shared_ptr<EncodedSliceCache> shared)
    : shared_(std::move(shared)), model_(shared_->NewModel()) {}

ModelSliceCache::~ModelSliceCache() { shared_->DropModel(model_); }

void ModelSliceCache::Replace(const std::string& old_ids_digest,
                              const std::string& new_ids_digest) {
  if (old_ids_digest == new_ids_digest) return;
  absl::MutexLock lock(&mu_);
  if (!new_ids_digest.empty()) ++current_[new_ids_digest].slices;
  if (old_ids_digest.empty()) return;
  auto it = current_.find(old_ids_digest);
  if (it != current_.end()) {
    if (--it->second.slices > 0) return;  // an empty slice elsewhere
    current_.erase(it);
  }
  shared_->Drop(model_, old_ids_digest);
}

std::shared_ptr<const storage::EncodedSlice> ModelSliceCache::Find(
    const std::string& ids_digest) {
  return shared_->Find(model_, ids_digest);
}

void ModelSliceCache::Insert(
    const std::string& ids_digest,
    std::shared_ptr<const storage::EncodedSlice> slice) {
  // Under mu_ throughout, so a Replace of these ids comes wholly before
  // (and this keeps nothing) or after (and drops what this kept).
  absl::MutexLock lock(&mu_);
  auto current = current_.find(ids_digest);
  if (current == current_.end()) return;  // changed while it was read
  current->second.encoded_digest = slice->digest();
  current->second.encoded_bytes = static_cast<int64_t>(slice->bytes().size());
  shared_->Put(model_, ids_digest, std::move(slice));
}

const ModelSliceCache::Current* ModelSliceCache::ReadCurrentLocked(
    const std::string& ids_digest) const {
  auto current = current_.find(ids_digest);
  if (current == current_.end() || current->second.encoded_digest.empty()) {
    return nullptr;
  }
  return &current->second;
}

std::optional<std::string> ModelSliceCache::EncodedDigest(
    const std::string& ids_digest) {
  absl::MutexLock lock(&mu_);
  const Current* current = ReadCurrentLocked(ids_digest);
  if (current == nullptr) return std::nullopt;
  return current->encoded_digest;
}

std::optional<int64_t> ModelSliceCache::EncodedBytes(
    const std::string& ids_digest) {
  absl::MutexLock lock(&mu_);
  const Current* current = ReadCurrentLocked(ids_digest);
  if (current == nullptr) return std::nullopt;
  return current->encoded_bytes;
}

}  // namespace oubli::coordinator
