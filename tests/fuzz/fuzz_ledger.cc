// An exported deletion ledger as `oublictl audit` checks it: records of
// two-byte little-endian length + bytes.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/signing_key.h"
#include "coordinator/ledger_format.h"

namespace {

// A fixed key: hostile input cannot be signed with it, so this explores
// everything up to and around the signature check.
constexpr char kPublicKey[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n"
    "-----END PUBLIC KEY-----\n";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto* const key =
      oubli::VerifyingKey::FromPem(kPublicKey)->release();
  std::vector<std::string> records;
  size_t at = 0;
  while (size - at >= 2) {
    const size_t length = data[at] | (size_t{data[at + 1]} << 8);
    at += 2;
    if (length > size - at) break;
    records.emplace_back(reinterpret_cast<const char*>(data + at), length);
    at += length;
  }
  auto summary = oubli::coordinator::VerifyLedger("m", records, *key);
  if (!summary.ok()) return 0;
  // An accepted ledger accounts for every record, each stage once.
  size_t stages = 0;
  for (const auto& [id, of_id] : summary->stages) stages += of_id.size();
  if (summary->entries != static_cast<int64_t>(records.size()) ||
      stages != records.size()) {
    __builtin_trap();
  }
  return 0;
}
