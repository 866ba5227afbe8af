#include "common/hash.h"

#include <openssl/evp.h>

#include <cstdlib>

namespace oubli {

struct Sha256::State {
  EVP_MD_CTX* ctx = nullptr;
};

Sha256::Sha256() : state_(std::make_unique<State>()) {
  state_->ctx = EVP_MD_CTX_new();
  // Allocation failure of a few hundred bytes is not recoverable here.
  if (state_->ctx == nullptr ||
      EVP_DigestInit_ex(state_->ctx, EVP_sha256(), nullptr) != 1) {
    std::abort();
  }
}

Sha256::~Sha256() { EVP_MD_CTX_free(state_->ctx); }

Sha256& Sha256::Add(const void* data, size_t size) {
  if (size > 0) EVP_DigestUpdate(state_->ctx, data, size);
  return *this;
}

Sha256& Sha256::Add(absl::string_view bytes) {
  return Add(bytes.data(), bytes.size());
}

Sha256& Sha256::AddU64(uint64_t value) {
  uint8_t le[8];
  for (int i = 0; i < 8; ++i) le[i] = static_cast<uint8_t>(value >> (8 * i));
  return Add(le, sizeof(le));
}

Sha256& Sha256::AddField(absl::string_view bytes) {
  AddU64(bytes.size());
  return Add(bytes);
}

Sha256Digest Sha256::Finish() {
  Sha256Digest digest{};
  unsigned int len = 0;
  EVP_DigestFinal_ex(state_->ctx, digest.data(), &len);
  return digest;
}

std::string Sha256::FinishHex() { return ToHex(Finish()); }

std::string ToHex(const Sha256Digest& digest) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(digest.size() * 2, '0');
  for (size_t i = 0; i < digest.size(); ++i) {
    out[2 * i] = kHex[digest[i] >> 4];
    out[2 * i + 1] = kHex[digest[i] & 0xf];
  }
  return out;
}

std::string Sha256Hex(absl::string_view bytes) {
  return Sha256().Add(bytes).FinishHex();
}

namespace {
uint64_t FirstU64(const Sha256Digest& d) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | d[i];
  return v;
}
}  // namespace

uint64_t KeyedHash64(uint64_t key, absl::string_view data) {
  return FirstU64(Sha256().AddU64(key).AddField(data).Finish());
}

uint64_t DeriveSeed(uint64_t seed, absl::string_view purpose,
                    std::initializer_list<uint64_t> components) {
  Sha256 h;
  h.AddU64(seed).AddField(purpose);
  for (uint64_t c : components) h.AddU64(c);
  return FirstU64(h.Finish());
}

uint64_t SplitMix64::Next() {
  uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint64_t SplitMix64::Uniform(uint64_t bound) {
  // Rejection sampling: discard the top partial range.
  const uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
  uint64_t v;
  do {
    v = Next();
  } while (v >= limit);
  return v % bound;
}

}  // namespace oubli
