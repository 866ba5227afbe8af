// The deletion ledger's format as both sides need it: what an entry's
// signature covers and how entries chain (the coordinator writes them,
// coordinator/deletion_ledger.h), and the check an auditor runs offline
// over an exported ledger (`oublictl audit`). No storage here, so clients
// and the fuzzer (tests/fuzz) link it alone.
#ifndef OUBLI_COORDINATOR_LEDGER_FORMAT_H_
#define OUBLI_COORDINATOR_LEDGER_FORMAT_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/signing_key.h"

namespace oubli::coordinator {

// The 32-byte SHA-256 of an entry's bytes: what the next entry names.
std::string LedgerEntryHash(absl::string_view entry_bytes);
// What an entry's signature covers: "oubli-ledger-v1", a zero byte, and
// LedgerEntryHash(entry_bytes).
std::string LedgerSignedMessage(absl::string_view entry_bytes);

// A saved ledger (oublictl audit --save, DATA_DIR/~deleted-models/
// ledgers/ID): each serialized LedgerRecord preceded by its size as a
// little-endian uint32.
std::string EncodeLedgerFile(absl::Span<const std::string> records);
// DataLoss: a truncated header or record.
absl::StatusOr<std::vector<std::string>> DecodeLedgerFile(
    absl::string_view bytes);

// What an intact ledger says.
struct LedgerSummary {
  int64_t entries = 0;
  std::string head_hash_hex;  // "" for an empty ledger
  // Per deletion id, the stages ledgered (1 ACCEPTED .. 4 RESTORED), in
  // order.
  std::map<std::string, std::vector<int>> stages;
};

// Checks an exported ledger (serialized LedgerRecords from sequence 1 on)
// of `model_id` against `key`: every signature, the chain (sequence 1, 2,
// ... and each entry naming its predecessor's hash), and per deletion the
// stage order (ACCEPTED first, each stage once and after the previous one,
// times not going back). DataLoss naming the first entry that fails.
absl::StatusOr<LedgerSummary> VerifyLedger(
    absl::string_view model_id, absl::Span<const std::string> records,
    const VerifyingKey& key);

}  // namespace oubli::coordinator

#endif  // OUBLI_COORDINATOR_LEDGER_FORMAT_H_
