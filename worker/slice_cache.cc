#include "worker/slice_cache.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/hash.h"
#include "common/status_macros.h"

namespace oubli::worker {
namespace {

constexpr char kTempSuffix[] = ".tmp";

// AES-256-GCM: a file is nonce || ciphertext || tag.
constexpr int kNonceBytes = 12;
constexpr int kTagBytes = 16;
static_assert(SliceCache::kFileOverhead == kNonceBytes + kTagBytes);
// EVP takes int lengths.
constexpr size_t kCipherStep = size_t{1} << 26;

struct CipherDeleter {
  void operator()(EVP_CIPHER_CTX* ctx) const { EVP_CIPHER_CTX_free(ctx); }
};
using Cipher = std::unique_ptr<EVP_CIPHER_CTX, CipherDeleter>;

const unsigned char* Bytes(absl::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

// `plain` encrypted under `key` with nonce `number` (never repeated under
// one key), `label` authenticated with it.
absl::StatusOr<std::string> Seal(const unsigned char* key, uint64_t number,
                                 absl::string_view label,
                                 absl::string_view plain) {
  std::string sealed(kNonceBytes + plain.size() + kTagBytes, '\0');
  auto* nonce = reinterpret_cast<unsigned char*>(sealed.data());
  unsigned char* out = nonce + kNonceBytes;
  for (int i = 0; i < 8; ++i) {
    nonce[i] = static_cast<unsigned char>(number >> (8 * i));
  }
  const absl::Status failed = absl::InternalError("sealing a slice failed");
  Cipher ctx(EVP_CIPHER_CTX_new());
  int length = 0;
  if (ctx == nullptr ||
      EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key, nonce) !=
          1 ||
      EVP_EncryptUpdate(ctx.get(), nullptr, &length, Bytes(label),
                        static_cast<int>(label.size())) != 1) {
    return failed;
  }
  size_t at = 0;
  while (at < plain.size()) {
    const size_t step = std::min(kCipherStep, plain.size() - at);
    if (EVP_EncryptUpdate(ctx.get(), out + at, &length, Bytes(plain.substr(at)),
                          static_cast<int>(step)) != 1) {
      return failed;
    }
    at += step;
  }
  if (EVP_EncryptFinal_ex(ctx.get(), out + at, &length) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTagBytes,
                          out + at) != 1) {
    return failed;
  }
  return sealed;
}

// The plaintext of Seal's output; DataLoss unless it is authentic under
// `key` and `label` (a file cut short, altered, sealed for another slice,
// or by another process).
absl::StatusOr<std::string> Unseal(const unsigned char* key,
                                   absl::string_view label,
                                   absl::string_view sealed) {
  if (sealed.size() < static_cast<size_t>(kNonceBytes + kTagBytes)) {
    return absl::DataLossError("slice file too short");
  }
  const size_t size = sealed.size() - kNonceBytes - kTagBytes;
  const unsigned char* nonce = Bytes(sealed);
  const unsigned char* in = nonce + kNonceBytes;
  // EVP takes the tag through a non-const pointer.
  std::string tag(sealed.substr(kNonceBytes + size));
  std::string plain(size, '\0');
  auto* out = reinterpret_cast<unsigned char*>(plain.data());
  Cipher ctx(EVP_CIPHER_CTX_new());
  int length = 0;
  bool ok = ctx != nullptr &&
            EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key,
                               nonce) == 1 &&
            EVP_DecryptUpdate(ctx.get(), nullptr, &length, Bytes(label),
                              static_cast<int>(label.size())) == 1;
  for (size_t at = 0; ok && at < size; at += kCipherStep) {
    ok = EVP_DecryptUpdate(
             ctx.get(), out + at, &length, in + at,
             static_cast<int>(std::min(kCipherStep, size - at))) == 1;
  }
  ok = ok &&
       EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTagBytes,
                           tag.data()) == 1 &&
       EVP_DecryptFinal_ex(ctx.get(), out + size, &length) == 1;
  if (!ok) {
    // Not authentic, yet it may be another slice's plaintext.
    OPENSSL_cleanse(plain.data(), plain.size());
    return absl::DataLossError("slice file does not unseal");
  }
  return plain;
}

// Shreds every regular file under `dir`, then removes the rest of it
// (directories, links). A missing `dir` is fine.
absl::Status ShredTree(const std::string& dir) {
  std::error_code error;
  if (!std::filesystem::exists(dir, error)) {
    if (error) {
      return absl::InternalError(
          absl::StrCat("look for '", dir, "': ", error.message()));
    }
    return absl::OkStatus();
  }
  std::vector<std::string> files;
  for (std::filesystem::recursive_directory_iterator it(dir, error), end;
       !error && it != end; it.increment(error)) {
    if (it->symlink_status(error).type() ==
        std::filesystem::file_type::regular) {
      files.push_back(it->path().string());
    }
  }
  if (error) {
    return absl::InternalError(
        absl::StrCat("list '", dir, "': ", error.message()));
  }
  for (const std::string& file : files) {
    OUBLI_RETURN_IF_ERROR(ShredFile(file));
  }
  std::filesystem::remove_all(dir, error);
  if (error) {
    return absl::InternalError(
        absl::StrCat("remove '", dir, "': ", error.message()));
  }
  return absl::OkStatus();
}

}  // namespace

SliceCache::SliceCache(int64_t capacity_bytes)
    : SliceCache(capacity_bytes, "", 0) {}

SliceCache::SliceCache(int64_t capacity_bytes, std::string disk_dir,
                       int64_t disk_capacity_bytes)
    : capacity_(std::max<int64_t>(0, capacity_bytes)),
      disk_dir_(std::move(disk_dir)),
      disk_capacity_(
          disk_dir_.empty() ? 0 : std::max<int64_t>(0, disk_capacity_bytes)) {
  file_key_.fill(0);
}

SliceCache::~SliceCache() {
  // What makes the files unreadable once this process is gone.
  OPENSSL_cleanse(file_key_.data(), file_key_.size());
}

absl::StatusOr<std::unique_ptr<SliceCache>> SliceCache::Open(
    int64_t capacity_bytes, const std::string& disk_dir,
    int64_t disk_capacity_bytes) {
  if (disk_dir.empty()) {
    if (disk_capacity_bytes > 0) {
      return absl::InvalidArgumentError(
          "a slice cache on disk needs a directory");
    }
    return std::make_unique<SliceCache>(capacity_bytes);
  }
  if (absl::Status s = ShredTree(disk_dir); !s.ok()) {
    return absl::Status(s.code(),
                        absl::StrCat("clearing the slice files of a previous "
                                     "run: ",
                                     s.message()));
  }
  if (disk_capacity_bytes <= 0) {
    return std::make_unique<SliceCache>(capacity_bytes);
  }
  std::error_code error;
  std::filesystem::create_directories(disk_dir, error);
  if (error) {
    return absl::InternalError(absl::StrCat("create slice directory '",
                                            disk_dir, "': ", error.message()));
  }
  std::unique_ptr<SliceCache> cache(
      new SliceCache(capacity_bytes, disk_dir, disk_capacity_bytes));
  if (RAND_bytes(cache->file_key_.data(),
                 static_cast<int>(cache->file_key_.size())) != 1) {
    return absl::InternalError("no random bytes for the slice file key");
  }
  return cache;
}

std::string SliceCache::Key(const std::string& model_id,
                            const std::string& digest) {
  return absl::StrCat(model_id, "/", digest);
}

std::string SliceCache::ModelDirectory(const std::string& model_id) const {
  // Hashed: a model id may be any string, of any length.
  if (disk_dir_.empty()) return "";
  return absl::StrCat(disk_dir_, "/", Sha256Hex(model_id));
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

void SliceCache::KeepInMemoryLocked(
    const std::string& key, const std::string& model_id,
    std::shared_ptr<const storage::EncodedSlice> slice, int64_t epoch,
    std::vector<std::shared_ptr<const storage::EncodedSlice>>* evicted) {
  const auto size = static_cast<int64_t>(slice->bytes().size());
  EraseLocked(key);
  while (bytes_ + size > capacity_ && !lru_.empty()) {
    evicted->push_back(entries_.at(lru_.back()).slice);
    EraseLocked(lru_.back());
  }
  lru_.push_front(key);
  bytes_ += size;
  entries_[key] = Entry{model_id, std::move(slice), epoch, lru_.begin()};
}

void SliceCache::EraseFileLocked(const std::string& key, Files* doomed) {
  auto it = files_.find(key);
  if (it == files_.end()) return;
  FileEntry& file = it->second;
  disk_bytes_ -= file.size;
  disk_lru_.erase(file.lru);
  if (file.ready) {
    busy_[file.path] = file.model_id;
    doomed->emplace_back(file.path, file.model_id);
  }
  files_.erase(it);
}

std::string SliceCache::ReserveFileLocked(const std::string& key,
                                          const std::string& model_id,
                                          int64_t size, int64_t epoch,
                                          Files* doomed, uint64_t* number) {
  size += kFileOverhead;  // as sealed
  if (size > disk_capacity_) return "";
  if (auto it = files_.find(key); it != files_.end()) {
    // The same bytes (content-addressed): its file serves this upload too.
    it->second.epoch = std::max(it->second.epoch, epoch);
    disk_lru_.splice(disk_lru_.begin(), disk_lru_, it->second.lru);
    return "";
  }
  // Files being written cannot be evicted; give up rather than evict some
  // and still not fit.
  std::vector<std::string> victims;
  int64_t freed = 0;
  for (auto it = disk_lru_.rbegin();
       it != disk_lru_.rend() && disk_bytes_ - freed + size > disk_capacity_;
       ++it) {
    const FileEntry& file = files_.at(*it);
    if (!file.ready) continue;
    victims.push_back(*it);
    freed += file.size;
  }
  if (disk_bytes_ - freed + size > disk_capacity_) return "";
  const std::string dir = ModelDirectory(model_id);
  // Under the lock, as FinishDrop's rmdir.
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    std::fprintf(stderr, "oubli-worker: %s; slice kept in memory only\n",
                 ErrnoStatus(errno, "create", dir).ToString().c_str());
    return "";
  }
  for (const std::string& victim : victims) EraseFileLocked(victim, doomed);
  *number = next_file_++;
  const std::string path =
      absl::StrCat(dir, "/", key.substr(key.rfind('/') + 1), ".", *number);
  disk_lru_.push_front(key);
  disk_bytes_ += size;
  files_[key] =
      FileEntry{model_id, path, size, epoch, false, disk_lru_.begin()};
  busy_[path] = model_id;
  return path;
}

void SliceCache::WriteFile(const std::string& key, const std::string& model_id,
                           const std::string& path, uint64_t number,
                           const std::string& bytes) {
  absl::StatusOr<std::string> sealed =
      Seal(file_key_.data(), number, key, bytes);
  const absl::Status written =
      sealed.ok()
          ? WriteFileAtomically(path, *sealed, absl::StrCat(path, kTempSuffix))
          : sealed.status();
  {
    absl::MutexLock lock(&mu_);
    auto it = files_.find(key);
    const bool current = it != files_.end() && it->second.path == path;
    if (current && written.ok()) {
      it->second.ready = true;
      busy_.erase(path);
      return;
    }
    if (current) {
      disk_bytes_ -= it->second.size;
      disk_lru_.erase(it->second.lru);
      files_.erase(it);
    }
  }
  if (!written.ok()) {
    std::fprintf(stderr,
                 "oubli-worker: writing a slice file: %s; slice kept "
                 "in memory only\n",
                 written.ToString().c_str());
  }
  // Failed, or dropped while being written: it must not stay.
  Destroy({{path, model_id}}).IgnoreError();  // logged; retried by drops
}

absl::Status SliceCache::Destroy(const Files& files) {
  absl::Status first;
  Files failed;
  for (const auto& [path, model_id] : files) {
    absl::Status s = ShredFile(path);
    if (s.ok()) s = ShredFile(absl::StrCat(path, kTempSuffix));
    // NotFound: its directory is not one (a write into it failed), so no
    // such file can exist.
    if (!s.ok() && !absl::IsNotFound(s)) {
      std::fprintf(stderr,
                   "oubli-worker: shredding a slice file: %s; retried by the "
                   "next drop\n",
                   s.ToString().c_str());
      failed.emplace_back(path, model_id);
      first.Update(s);
    }
  }
  // No directory fsync: the zeros are durable, and a name that outlives a
  // crash is shredded by the next Open.
  absl::MutexLock lock(&mu_);
  for (const auto& [path, model_id] : files) busy_.erase(path);
  unshredded_.insert(unshredded_.end(), failed.begin(), failed.end());
  return first;
}

std::vector<std::string> SliceCache::BusyLocked(
    const std::string* model_id) const {
  std::vector<std::string> paths;
  for (const auto& [path, model] : busy_) {
    if (model_id == nullptr || model == *model_id) paths.push_back(path);
  }
  return paths;
}

absl::Status SliceCache::FinishDrop(const Files& doomed,
                                    const std::vector<std::string>& wait_for) {
  absl::Status status = Destroy(doomed);
  Files retry;
  {
    absl::MutexLock lock(&mu_);
    auto done = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      for (const std::string& path : wait_for) {
        if (busy_.contains(path)) return false;
      }
      return true;
    };
    mu_.Await(absl::Condition(&done));
    retry.swap(unshredded_);
    for (const auto& [path, model_id] : retry) busy_[path] = model_id;
  }
  status.Update(Destroy(retry));
  if (disk_dir_.empty()) return status;
  // Tidiness only (an empty directory holds nothing): removes the model
  // directories no file needs. Under the lock, as ReserveFileLocked's mkdir,
  // so a directory never goes between its creation and its file's.
  absl::MutexLock lock(&mu_);
  absl::flat_hash_set<std::string> in_use;
  for (const auto& [key, file] : files_) in_use.insert(file.model_id);
  for (const auto& [path, model_id] : busy_) in_use.insert(model_id);
  for (const auto& [path, model_id] : unshredded_) in_use.insert(model_id);
  absl::flat_hash_set<std::string> needed;
  for (const std::string& model_id : in_use) {
    needed.insert(ModelDirectory(model_id));
  }
  std::error_code error;
  for (std::filesystem::directory_iterator it(disk_dir_, error), end;
       !error && it != end; it.increment(error)) {
    if (!needed.contains(it->path().string())) {
      ::rmdir(it->path().c_str());  // fails, harmlessly, unless empty
    }
  }
  return status;
}

std::shared_ptr<const storage::EncodedSlice> SliceCache::Find(
    const std::string& model_id, const std::string& digest,
    SliceSource* source) {
  SliceSource unused;
  if (source == nullptr) source = &unused;
  *source = SliceSource::kMiss;
  const std::string key = Key(model_id, digest);
  std::string path;
  {
    absl::MutexLock lock(&mu_);
    auto file = files_.find(key);
    if (file != files_.end()) {
      disk_lru_.splice(disk_lru_.begin(), disk_lru_, file->second.lru);
    }
    if (auto it = entries_.find(key); it != entries_.end()) {
      lru_.splice(lru_.begin(), lru_, it->second.lru);
      *source = SliceSource::kMemory;
      return it->second.slice;
    }
    if (file == files_.end() || !file->second.ready) return nullptr;
    path = file->second.path;
  }
  // Read without the lock: a drop meanwhile may shred the file under the
  // read (it then does not unseal), and the index is checked again below.
  absl::StatusOr<std::shared_ptr<const storage::EncodedSlice>> slice =
      [&]() -> absl::StatusOr<std::shared_ptr<const storage::EncodedSlice>> {
    OUBLI_ASSIGN_OR_RETURN(const std::string sealed, ReadFile(path));
    OUBLI_ASSIGN_OR_RETURN(std::string bytes,
                           Unseal(file_key_.data(), key, sealed));
    return storage::EncodedSlice::FromBytes(std::move(bytes), digest);
  }();
  // Declared before the lock, so released after it: zeroing a large slice
  // takes a while. The same below.
  std::vector<std::shared_ptr<const storage::EncodedSlice>> evicted;
  Files doomed;
  {
    absl::MutexLock lock(&mu_);
    auto file = files_.find(key);
    // Dropped (or dropped and taken again) while it was read: not served.
    if (file == files_.end() || file->second.path != path) return nullptr;
    if (slice.ok()) {
      if (static_cast<int64_t>((*slice)->bytes().size()) <= capacity_) {
        KeepInMemoryLocked(key, model_id, *slice, file->second.epoch, &evicted);
      }
      *source = SliceSource::kDisk;
      return *std::move(slice);
    }
    EraseFileLocked(key, &doomed);
  }
  *source = SliceSource::kCorruptFile;
  std::fprintf(stderr, "oubli-worker: slice file %s dropped: %s\n",
               path.c_str(), slice.status().ToString().c_str());
  Destroy(doomed).IgnoreError();  // logged; retried by drops
  return nullptr;
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
  std::vector<std::shared_ptr<const storage::EncodedSlice>> evicted;
  Files doomed;
  std::string path;
  uint64_t number = 0;
  const std::string key = Key(model_id, slice->digest());
  {
    absl::MutexLock lock(&mu_);
    if (StaleLocked(model_id, slice->digest(), epoch)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "slice upload of epoch ", epoch, " is older than the last purge or ",
          "registration here, or this worker counts itself dead; upload it ",
          "again"));
    }
    KeepInMemoryLocked(key, model_id, slice, epoch, &evicted);
    if (disk_capacity_ > 0) {
      path = ReserveFileLocked(key, model_id, size, epoch, &doomed, &number);
    }
  }
  if (!doomed.empty()) Destroy(doomed).IgnoreError();  // logged
  // `slice` keeps the bytes alive should memory drop them meanwhile.
  if (!path.empty()) WriteFile(key, model_id, path, number, slice->bytes());
  return absl::OkStatus();
}

absl::StatusOr<int> SliceCache::DropModelExcept(
    const std::string& model_id, const absl::flat_hash_set<std::string>& keep,
    int64_t epoch) {
  std::vector<std::shared_ptr<const storage::EncodedSlice>> dropped;
  Files doomed;
  std::vector<std::string> wait_for;
  absl::flat_hash_set<std::string> keys;
  {
    absl::MutexLock lock(&mu_);
    ModelFloor& floor = model_floor_[model_id];
    if (epoch >= floor.epoch) {
      floor.epoch = epoch;
      floor.kept = keep;
    }
    for (const auto& [key, entry] : entries_) {
      if (entry.model_id == model_id && !keep.contains(entry.slice->digest())) {
        keys.insert(key);
      }
    }
    for (const std::string& key : keys) {
      dropped.push_back(entries_.at(key).slice);
      EraseLocked(key);
    }
    const std::string prefix = Key(model_id, "");
    std::vector<std::string> file_keys;
    for (const auto& [key, file] : files_) {
      if (file.model_id == model_id &&
          !keep.contains(absl::string_view(key).substr(prefix.size()))) {
        file_keys.push_back(key);
      }
    }
    for (const std::string& key : file_keys) {
      EraseFileLocked(key, &doomed);
      keys.insert(key);
    }
    wait_for = BusyLocked(&model_id);
  }
  OUBLI_RETURN_IF_ERROR(FinishDrop(doomed, wait_for));
  return static_cast<int>(keys.size());
}

absl::Status SliceCache::Reopen(int64_t epoch) {
  std::vector<std::shared_ptr<const storage::EncodedSlice>> dropped;
  Files doomed;
  std::vector<std::string> wait_for;
  {
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
    keys.clear();
    for (const auto& [key, file] : files_) {
      if (file.epoch < floor_) keys.push_back(key);
    }
    for (const std::string& key : keys) EraseFileLocked(key, &doomed);
    wait_for = BusyLocked(nullptr);
  }
  return FinishDrop(doomed, wait_for);
}

absl::Status SliceCache::DropAllAndClose() {
  absl::flat_hash_map<std::string, Entry> dropped;
  Files doomed;
  std::vector<std::string> wait_for;
  {
    absl::MutexLock lock(&mu_);
    closed_ = true;
    dropped.swap(entries_);
    lru_.clear();
    bytes_ = 0;
    std::vector<std::string> keys;
    for (const auto& [key, file] : files_) keys.push_back(key);
    for (const std::string& key : keys) EraseFileLocked(key, &doomed);
    wait_for = BusyLocked(nullptr);
  }
  return FinishDrop(doomed, wait_for);
}

bool SliceCache::IsStale(const std::string& model_id, const std::string& digest,
                         int64_t epoch) {
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

int64_t SliceCache::disk_bytes() const {
  absl::MutexLock lock(&mu_);
  return disk_bytes_;
}

int64_t SliceCache::disk_slices() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int64_t>(files_.size());
}

}  // namespace oubli::worker
