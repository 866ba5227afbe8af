#include "coordinator/chunk_replication.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/hash.h"
#include "common/status_macros.h"
#include "coordinator/chunk_manifest.h"
#include "oubli/internal/records.pb.h"

namespace oubli::coordinator {
namespace {

// Lineage-DB meta keys of chunk manifests: prefix + checkpoint key.
constexpr char kChunksMetaPrefix[] = "chunks/";
std::string ChunksMetaKey(absl::string_view checkpoint_key) {
  return absl::StrCat(kChunksMetaPrefix, checkpoint_key);
}

}  // namespace

ChunkReplication::KeyLock::KeyLock(ChunkReplication* owner,
                                   const std::string& key)
    : owner_(owner), key_(key) {
  absl::MutexLock lock(&owner_->keys_mu_);
  auto free = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(owner_->keys_mu_) {
    return !owner_->busy_keys_.contains(key_);
  };
  owner_->keys_mu_.Await(absl::Condition(&free));
  owner_->busy_keys_.insert(key_);
}

ChunkReplication::KeyLock::~KeyLock() {
  absl::MutexLock lock(&owner_->keys_mu_);
  owner_->busy_keys_.erase(key_);
}

ChunkReplication::ChunkReplication(std::string model_id,
                                   CheckpointReplicas* replicas,
                                   storage::LineageStore* store,
                                   EngineMetrics* metrics)
    : model_id_(std::move(model_id)),
      replicas_(replicas),
      store_(store),
      metrics_(metrics) {}

std::string ChunkReplication::ChunkKey(const std::string& key) const {
  return Sha256().AddField(model_id_).AddField(key).FinishHex();
}

absl::StatusOr<std::vector<ChunkReplication::KeyedManifest>>
ChunkReplication::Manifests(const absl::flat_hash_set<std::string>& current,
                            bool want_current) {
  std::vector<KeyedManifest> out;
  if (replicas_ == nullptr) return out;
  OUBLI_ASSIGN_OR_RETURN(auto manifests, store_->ListMeta(kChunksMetaPrefix));
  for (auto& [meta_key, manifest] : manifests) {
    std::string key = meta_key.substr(std::strlen(kChunksMetaPrefix));
    if (current.contains(key) == want_current) {
      out.emplace_back(std::move(key), std::move(manifest));
    }
  }
  return out;
}

absl::Status ChunkReplication::ForgetLocked(const std::string& key,
                                            const std::string& manifest) {
  OUBLI_RETURN_IF_ERROR(replicas_->Forget(ChunkKey(key), manifest));
  return store_->DeleteMeta(ChunksMetaKey(key));
}

absl::StatusOr<std::vector<std::string>> ChunkReplication::GarbageKeys(
    const absl::flat_hash_set<std::string>& current) {
  OUBLI_ASSIGN_OR_RETURN(std::vector<KeyedManifest> manifests,
                         Manifests(current, /*want_current=*/false));
  std::vector<std::string> keys;
  for (auto& [key, manifest] : manifests) keys.push_back(std::move(key));
  return keys;
}

absl::Status ChunkReplication::Forget(const std::vector<std::string>& keys,
                                      absl::flat_hash_set<std::string>* left) {
  std::vector<std::string> failures;
  for (const std::string& key : keys) {
    // Under the key's lock, with the manifest as it is now: a Protect that
    // persisted a manifest may still be placing chunks, and a repair may
    // have moved some; either way the manifest read after they finish
    // names every chunk there is.
    KeyLock key_lock(this, key);
    absl::StatusOr<std::optional<std::string>> manifest =
        store_->GetMeta(ChunksMetaKey(key));
    absl::Status s = manifest.status();
    if (s.ok() && manifest->has_value()) s = ForgetLocked(key, **manifest);
    if (!s.ok()) {
      failures.push_back(std::string(s.message()));
      if (left != nullptr) left->insert(key);
    }
  }
  if (failures.empty()) return absl::OkStatus();
  return absl::UnavailableError(
      absl::StrCat("erasure-coded chunks not yet destroyed: ",
                   absl::StrJoin(failures, "; ")));
}

void ChunkReplication::Protect(const std::string& key, absl::string_view bytes,
                               const ErasureCodeConfig& code) {
  if (replicas_ == nullptr) return;
  KeyLock key_lock(this, key);
  const std::string meta_key = ChunksMetaKey(key);
  // Same key, same bytes: chunks already placed for it (a checkpoint lost
  // here and retrained) still decode it, and re-placing them elsewhere
  // would orphan the old ones.
  absl::StatusOr<std::optional<std::string>> existing =
      store_->GetMeta(meta_key);
  if (!existing.ok() || existing->has_value()) return;
  absl::Status s = replicas_->Protect(
      ChunkKey(key), bytes, code, [&](const std::string& manifest) {
        return store_->PutMeta(meta_key, manifest);
      });
  if (!s.ok()) {
    // Too few holders is normal (no workers with --data_dir, or fewer than
    // the model's code needs): the checkpoint lives only on the
    // coordinator until a repair pass finds enough, and a loss meanwhile
    // means retraining.
    if (!absl::IsFailedPrecondition(s)) {
      std::fprintf(stderr, "oubli: checkpoint %s not erasure-coded: %s\n",
                   key.c_str(), s.ToString().c_str());
    }
    // A manifest persisted before a chunk failed names chunks that may
    // exist: destroy them and drop it, so a later pass codes the
    // checkpoint afresh. If that fails too, the manifest stays and the
    // purge pass destroys its chunks once the key is stale.
    absl::StatusOr<std::optional<std::string>> persisted =
        store_->GetMeta(meta_key);
    if (persisted.ok() && persisted->has_value()) {
      (void)ForgetLocked(key, **persisted);
    }
    return;
  }
  if (metrics_ != nullptr) {
    metrics_->CheckpointEncoded(static_cast<int64_t>(bytes.size()));
  }
}

absl::StatusOr<std::optional<std::string>> ChunkReplication::Restore(
    const std::string& key) {
  if (replicas_ == nullptr) return std::nullopt;
  OUBLI_ASSIGN_OR_RETURN(std::optional<std::string> manifest,
                         store_->GetMeta(ChunksMetaKey(key)));
  if (!manifest.has_value()) return std::nullopt;
  OUBLI_ASSIGN_OR_RETURN(std::string bytes,
                         replicas_->Restore(ChunkKey(key), *manifest));
  return bytes;
}

bool ChunkReplication::CanProtect(const ErasureCodeConfig& code) {
  return replicas_ != nullptr && replicas_->CanProtect(code);
}

void ChunkReplication::RepairPass(
    const std::vector<KeyedManifest>& current_manifests,
    std::vector<std::string> uncoded,
    const std::function<absl::StatusOr<std::string>(const std::string&)>& read,
    const ErasureCodeConfig& code, const std::atomic<bool>& stop) {
  if (replicas_ == nullptr) return;
  absl::MutexLock lock(&repair_mu_);
  // Checkpoints trained while too few chunk holders were alive (before any
  // worker joined, or fewer than the model's code needs) are coded now, a
  // few per pass (the caller holds back purges meanwhile).
  if (!uncoded.empty() && replicas_->CanProtect(code)) {
    constexpr size_t kMaxCodedPerPass = 8;
    std::sort(uncoded.begin(), uncoded.end());
    for (size_t n = 0; n < uncoded.size() && n < kMaxCodedPerPass; ++n) {
      if (stop.load()) return;
      const std::string& key = uncoded[coding_cursor_++ % uncoded.size()];
      absl::StatusOr<std::string> bytes = read(key);
      if (bytes.ok()) Protect(key, *bytes, code);
    }
  }
  // Garbage is the purge pass's. Bounded in time like the coding above.
  const absl::Time give_back = absl::Now() + absl::Seconds(2);
  for (size_t n = 0; n < current_manifests.size() && absl::Now() < give_back;
       ++n) {
    if (stop.load()) return;
    const auto& [key, manifest] =
        current_manifests[repair_cursor_++ % current_manifests.size()];
    // Not while a failed Protect of this key forgets its manifest: a
    // repaired manifest written after that would name chunks never placed.
    KeyLock key_lock(this, key);
    absl::StatusOr<std::optional<std::string>> still =
        store_->GetMeta(ChunksMetaKey(key));
    if (!still.ok() || !still->has_value() || **still != manifest) continue;
    absl::StatusOr<int> repaired = replicas_->Repair(
        ChunkKey(key), manifest, [&, &key = key](const std::string& m) {
          return store_->PutMeta(ChunksMetaKey(key), m);
        });
    if (!repaired.ok()) {
      std::fprintf(stderr, "oubli: repairing chunks of %s: %s\n", key.c_str(),
                   repaired.status().ToString().c_str());
    } else if (*repaired > 0 && metrics_ != nullptr) {
      metrics_->ChunksRepaired(*repaired);
    }
  }
}

absl::StatusOr<bool> ChunkReplication::NamesHolder(absl::string_view holder) {
  // Nothing is current in an empty set: every manifest is listed.
  OUBLI_ASSIGN_OR_RETURN(std::vector<KeyedManifest> manifests,
                         Manifests({}, /*want_current=*/false));
  for (const auto& [key, bytes] : manifests) {
    internal::ChunkManifest manifest;
    if (!manifest.ParseFromString(bytes)) continue;
    for (const std::string& name : manifest.holders()) {
      if (name == holder) return true;
    }
    for (const std::string& name : manifest.also_destroy()) {
      if (name == holder) return true;
    }
  }
  return false;
}

absl::StatusOr<std::vector<ChunkPlacement>> ChunkReplication::Placements(
    const absl::flat_hash_set<std::string>& current) {
  OUBLI_ASSIGN_OR_RETURN(std::vector<KeyedManifest> manifests,
                         Manifests(current, /*want_current=*/true));
  std::vector<ChunkPlacement> out;
  for (const auto& [key, bytes] : manifests) {
    internal::ChunkManifest manifest;
    // Only consistent manifests count (their counts feed the redundancy
    // gauges); Restore reports the others.
    if (!ParseChunkManifest(key, bytes, &manifest).ok()) continue;
    ChunkPlacement& p = out.emplace_back();
    p.data_chunks = manifest.data_chunks();
    p.parity_chunks = manifest.parity_chunks();
    p.holders.assign(manifest.holders().begin(), manifest.holders().end());
  }
  return out;
}

}  // namespace oubli::coordinator
