#include "coordinator/served_snapshot.h"

#include <utility>

#include "common/hash.h"

namespace oubli::coordinator {

const std::string& ServedSha(const ServedModel& served) {
  static const std::string* const kNone = new std::string();
  return served.model ? served.checkpoint_sha256 : *kNone;
}

std::string ModelFingerprint(absl::Span<const std::string> shard_shas) {
  Sha256 h;
  h.AddField("oubli.fingerprint.v1").AddU64(shard_shas.size());
  for (size_t s = 0; s < shard_shas.size(); ++s) {
    h.AddU64(s).AddField(shard_shas[s]);
  }
  return h.FinishHex();
}

PublishedSnapshot::PublishedSnapshot()
    : current_(std::make_shared<const ServedSnapshot>()) {}

std::shared_ptr<const ServedSnapshot> PublishedSnapshot::Get() const {
  absl::MutexLock lock(&mu_);
  return current_;
}

void PublishedSnapshot::Publish(
    std::shared_ptr<const ServedSnapshot> snapshot) {
  // The old snapshot is released outside this lock (dropping the last
  // reference may free models), so readers never wait for it.
  absl::MutexLock lock(&mu_);
  std::swap(current_, snapshot);
}

}  // namespace oubli::coordinator
