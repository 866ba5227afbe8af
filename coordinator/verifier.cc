#include "coordinator/verifier.h"

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "common/hash.h"
#include "common/status_macros.h"
#include "coordinator/slice_data.h"

namespace oubli::coordinator {

absl::StatusOr<VerifyReport> Verifier::Verify() {
  const absl::Time start = absl::Now();
  // From scratch: fresh trainer, data re-read from the store, no checkpoint
  // reuse.
  OUBLI_ASSIGN_OR_RETURN(std::shared_ptr<ml::S3tTrainer> trainer,
                         p_.base->NewTrainer());
  VerifyReport report;
  report.restored = true;
  report.match = true;
  std::vector<std::string> served_shas, scratch_shas;
  for (int s = 0; s < p_.config->shards; ++s) {
    // What the shard serves and the data it was trained on, as of one
    // moment: captured under deletion_mu (no deletion or ingest half
    // applied, durable in the store but not yet deactivated), read without
    // it, and kept only if the shard's data generation is unchanged after
    // the read, checked under deletion_mu again (every commit bumps it
    // under that lock). Deletions wait for none of the reading unless the
    // shard keeps changing, and then only for the last attempt's.
    constexpr int kUnlockedReads = 3;
    std::vector<int> prefix;
    std::string served_sha;
    bool full_length = true;
    std::vector<std::shared_ptr<const storage::EncodedSlice>> slices;
    for (int attempt = 0;; ++attempt) {
      const bool locked_read = attempt == kUnlockedReads;
      std::optional<absl::MutexLock> dlock;
      dlock.emplace(p_.deletion_mu);
      uint64_t generation;
      {
        absl::MutexLock lock(p_.engine_mu);
        prefix = p_.shards->table().Describe(s).prefix;
        served_sha = ServedSha((*p_.shards)[s].served);
        full_length = (*p_.shards)[s].samples == 0 ||
                      static_cast<int>(prefix.size()) == p_.config->slices;
        generation = p_.generations->Get(s);
      }
      if (!locked_read) {
        dlock.reset();
        if (p_.before_unlocked_read) {
          p_.before_unlocked_read(s);
        }
      }
      slices.assign(p_.config->slices, nullptr);
      absl::Status read = absl::OkStatus();
      for (int slice : prefix) {
        absl::StatusOr<LoadedSlice> loaded = LoadSlice(
            *p_.store, {s, slice}, p_.config->backbone.InputSize());
        if (!loaded.ok()) {
          read = loaded.status();
          break;
        }
        slices[slice] = std::move(loaded->encoded);
      }
      if (locked_read) {
        OUBLI_RETURN_IF_ERROR(read);
        break;
      }
      bool unchanged;
      {
        absl::MutexLock again(p_.deletion_mu);
        unchanged = p_.generations->Get(s) == generation;
      }
      if (unchanged) {
        OUBLI_RETURN_IF_ERROR(read);  // not a race with a deletion
        break;
      }
    }
    report.restored = report.restored && full_length;
    std::string scratch_sha;
    if (!prefix.empty()) {
      OUBLI_ASSIGN_OR_RETURN(
          std::string state_bytes,
          TrainPrefixFromScratch(*trainer, s, prefix, slices));
      scratch_sha = Sha256Hex(state_bytes);
    }
    const bool match = scratch_sha == served_sha;
    report.match = report.match && match;
    report.shard_matches.emplace_back(s, match);
    served_shas.push_back(served_sha);
    scratch_shas.push_back(scratch_sha);
  }
  // Of each shard as it was served when verified.
  report.served_fingerprint = ModelFingerprint(served_shas);
  report.scratch_fingerprint = ModelFingerprint(scratch_shas);
  report.elapsed = absl::Now() - start;
  return report;
}

}  // namespace oubli::coordinator
