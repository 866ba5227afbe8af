#include "coordinator/ledger_format.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/hash.h"
#include "oubli/v1/ledger.pb.h"

namespace oubli::coordinator {
namespace {

constexpr char kSignatureDomain[] = "oubli-ledger-v1";
constexpr int kStages = 4;  // ACCEPTED .. RESTORED

}  // namespace

std::string LedgerEntryHash(absl::string_view entry_bytes) {
  Sha256Digest digest = Sha256().Add(entry_bytes).Finish();
  return std::string(reinterpret_cast<const char*>(digest.data()),
                     digest.size());
}

std::string EncodeLedgerFile(absl::Span<const std::string> records) {
  std::string out;
  for (const std::string& record : records) {
    const uint32_t size = static_cast<uint32_t>(record.size());
    for (int shift = 0; shift < 32; shift += 8) {
      out.push_back(static_cast<char>((size >> shift) & 0xff));
    }
    out += record;
  }
  return out;
}

absl::StatusOr<std::vector<std::string>> DecodeLedgerFile(
    absl::string_view bytes) {
  std::vector<std::string> records;
  size_t at = 0;
  while (at < bytes.size()) {
    if (bytes.size() - at < 4) {
      return absl::DataLossError("ledger file: truncated record header");
    }
    uint32_t size = 0;
    for (int i = 3; i >= 0; --i) {
      size = size << 8 | static_cast<unsigned char>(bytes[at + i]);
    }
    at += 4;
    if (bytes.size() - at < size) {
      return absl::DataLossError("ledger file: truncated record");
    }
    records.emplace_back(bytes.substr(at, size));
    at += size;
  }
  return records;
}

std::string LedgerSignedMessage(absl::string_view entry_bytes) {
  return absl::StrCat(kSignatureDomain, absl::string_view("\0", 1),
                      LedgerEntryHash(entry_bytes));
}

absl::StatusOr<LedgerSummary> VerifyLedger(
    absl::string_view model_id, absl::Span<const std::string> records,
    const VerifyingKey& key) {
  LedgerSummary summary;
  std::string previous(32, '\0');
  std::map<std::string, int64_t> last_time;
  for (size_t i = 0; i < records.size(); ++i) {
    const int64_t expected = static_cast<int64_t>(i) + 1;
    auto bad = [&](absl::string_view why) {
      return absl::DataLossError(
          absl::StrCat("ledger entry ", expected, ": ", why));
    };
    v1::LedgerRecord record;
    v1::LedgerEntry entry;
    if (!record.ParseFromString(records[i]) ||
        !entry.ParseFromString(record.entry())) {
      return bad("does not parse");
    }
    if (!key.Verify(LedgerSignedMessage(record.entry()), record.signature())) {
      return bad("the signature does not verify with this public key");
    }
    if (entry.key_id() != key.key_id()) {
      return bad(absl::StrCat("signed by key ", entry.key_id(), ", not by ",
                              key.key_id()));
    }
    if (entry.model_id() != model_id) {
      return bad(absl::StrCat("belongs to model '", entry.model_id(), "'"));
    }
    if (entry.sequence() != expected) {
      return bad(absl::StrCat("has sequence ", entry.sequence(),
                              ": an entry is missing or out of order"));
    }
    if (entry.previous_hash() != previous) {
      return bad("does not chain to the entry before it");
    }
    const int stage = entry.stage();
    if (stage < 1 || stage > kStages) {
      return bad(absl::StrCat("unknown stage ", stage));
    }
    std::vector<int>& stages = summary.stages[entry.deletion_id()];
    if (stages.empty() ? stage != 1 : stage <= stages.back()) {
      return bad(absl::StrCat(
          "deletion ", entry.deletion_id(), " reaches stage ", stage, " after ",
          stages.empty() ? std::string("none") : absl::StrCat(stages.back())));
    }
    if (!stages.empty() &&
        entry.stage_unix_nanos() < last_time[entry.deletion_id()]) {
      return bad(absl::StrCat("deletion ", entry.deletion_id(),
                              " reaches stage ", stage,
                              " before the stage before it"));
    }
    stages.push_back(stage);
    last_time[entry.deletion_id()] = entry.stage_unix_nanos();
    previous = LedgerEntryHash(record.entry());
  }
  summary.entries = static_cast<int64_t>(records.size());
  if (!records.empty()) {
    static constexpr char kHex[] = "0123456789abcdef";
    for (unsigned char c : previous) {
      summary.head_hash_hex += kHex[c >> 4];
      summary.head_hash_hex += kHex[c & 15];
    }
  }
  return summary;
}

}  // namespace oubli::coordinator
