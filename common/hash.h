// SHA-256 hashing and the keyed hashes oubli derives seeds and assignments
// from. Everything here is deterministic across processes and machines.
#ifndef OUBLI_COMMON_HASH_H_
#define OUBLI_COMMON_HASH_H_

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include "absl/strings/string_view.h"

namespace oubli {

using Sha256Digest = std::array<uint8_t, 32>;

// Incremental SHA-256. Fields are length-prefixed by AddField so that
// ("ab","c") and ("a","bc") hash differently.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  Sha256& Add(absl::string_view bytes);
  Sha256& Add(const void* data, size_t size);
  Sha256& AddField(absl::string_view bytes);  // 8-byte LE length, then bytes
  Sha256& AddU64(uint64_t value);            // 8 bytes little endian
  Sha256Digest Finish();
  std::string FinishHex();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

std::string Sha256Hex(absl::string_view bytes);
std::string ToHex(const Sha256Digest& digest);

// First 8 bytes (LE) of SHA-256(key || data): a keyed hash used for sample
// assignment and seed derivation.
uint64_t KeyedHash64(uint64_t key, absl::string_view data);

// Derives a 64-bit seed from a base seed and a list of labelled components,
// e.g. DeriveSeed(seed, {"shard", 3, "epoch", 1}).
uint64_t DeriveSeed(uint64_t seed, absl::string_view purpose,
                    std::initializer_list<uint64_t> components);

// SplitMix64: a tiny, fully specified PRNG for orders we must reproduce
// bit-for-bit (std::shuffle's algorithm is implementation-defined).
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t Next();
  // Uniform in [0, bound), bound > 0, without modulo bias.
  uint64_t Uniform(uint64_t bound);

 private:
  uint64_t state_;
};

}  // namespace oubli

#endif  // OUBLI_COMMON_HASH_H_
