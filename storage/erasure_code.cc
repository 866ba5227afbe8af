#include "storage/erasure_code.h"

#include <isa-l/crc.h>
#include <isa-l/erasure_code.h>

#include <algorithm>
#include <array>
#include <cassert>
#include <cstdio>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "common/status_macros.h"

namespace oubli::storage {
namespace {

// GF(2^8) limits k + m to 255; fixed-size pointer arrays avoid a heap
// allocation per stripe.
constexpr int kMaxChunks = ReedSolomonCode::kMaxTotalChunks;
using ConstPtrArray = std::array<const uint8_t*, kMaxChunks>;
using PtrArray = std::array<uint8_t*, kMaxChunks>;

// Distinct loss patterns are few in practice (C(k+m, k) at most per output
// set); the cap only guards against unbounded growth from odd callers.
constexpr size_t kMaxCachedPlans = 4096;

uint64_t RoundUpToAlignment(uint64_t n) {
  constexpr uint64_t kMask = AlignedBuffer::kAlignment - 1;
  return (n + kMask) & ~kMask;
}

// ISA-L's crc32_iscsi neither pre- nor post-inverts; callers keep the raw
// register ("state") between stripes and invert once at each end.
uint32_t RawCrc32c(const uint8_t* bytes, size_t len, uint32_t state) {
  constexpr size_t kMaxStep = size_t{1} << 30;  // crc32_iscsi takes an int
  while (len > 0) {
    const size_t step = std::min(len, kMaxStep);
    state =
        crc32_iscsi(const_cast<uint8_t*>(bytes), static_cast<int>(step), state);
    bytes += step;
    len -= step;
  }
  return state;
}

const uint8_t* BytesOf(const ChunkView& view) {
  return reinterpret_cast<const uint8_t*>(view.bytes.data());
}

// ISA-L takes non-const pointer arrays even for inputs it only reads.
unsigned char** MutablePtrs(const uint8_t* const* ptrs) {
  return const_cast<unsigned char**>(ptrs);
}

}  // namespace

uint32_t Crc32c(absl::string_view bytes, uint32_t crc) {
  return ~RawCrc32c(reinterpret_cast<const uint8_t*>(bytes.data()),
                    bytes.size(), ~crc);
}

AlignedBuffer::AlignedBuffer(size_t size) : size_(size) {
  assert(size % kAlignment == 0);
  if (size == 0) return;
  void* p = std::aligned_alloc(kAlignment, RoundUpToAlignment(size));
  if (p == nullptr) {
    std::fprintf(stderr, "AlignedBuffer: failed to allocate %zu bytes\n", size);
    std::abort();
  }
  data_.reset(static_cast<uint8_t*>(p));
}

std::vector<std::optional<ChunkView>> EncodedBlob::Views() const {
  std::vector<std::optional<ChunkView>> views;
  views.reserve(chunks.size());
  for (const Chunk& chunk : chunks) {
    views.push_back(ChunkView{chunk.bytes.view()});
  }
  return views;
}

std::pair<int, int> DefaultCodeFor(int workers) {
  if (workers <= 1) return {1, 0};
  if (workers <= 3) return {1, 1};
  if (workers <= 5) return {workers - 2, 2};
  return {4, 2};
}

// Decode tables for one (survivors -> outputs) mapping.
struct ReedSolomonCode::DecodePlan {
  int num_outputs = 0;
  std::vector<uint8_t> tables;  // 32 * k * num_outputs bytes
};

struct ReedSolomonCode::PlanCache {
  mutable absl::Mutex mu;
  // Key: survivor indices, 0xFF, output indices (one byte each; < 255).
  std::unordered_map<std::string, std::shared_ptr<const DecodePlan>> plans
      ABSL_GUARDED_BY(mu);
};

ReedSolomonCode::ReedSolomonCode(int k, int m)
    : k_(k),
      m_(m),
      matrix_(static_cast<size_t>(k + m) * k),
      encode_tables_(static_cast<size_t>(32) * k * m),
      cache_(std::make_unique<PlanCache>()) {
  // Cauchy rows keep every k x k submatrix invertible, for any k + m <= 255
  // (gf_gen_rs_matrix's Vandermonde rows do not guarantee that).
  gf_gen_cauchy1_matrix(matrix_.data(), k + m, k);
  if (m > 0) {
    ec_init_tables(k, m, &matrix_[static_cast<size_t>(k) * k],
                   encode_tables_.data());
  }
}

ReedSolomonCode::ReedSolomonCode(ReedSolomonCode&&) noexcept = default;
ReedSolomonCode& ReedSolomonCode::operator=(ReedSolomonCode&&) noexcept =
    default;
ReedSolomonCode::~ReedSolomonCode() = default;

absl::StatusOr<ReedSolomonCode> ReedSolomonCode::Create(int data_chunks,
                                                        int parity_chunks) {
  // Compared without adding: the counts may come from a corrupt manifest.
  if (data_chunks < 1 || parity_chunks < 0 ||
      parity_chunks > kMaxChunks - data_chunks) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "invalid Reed-Solomon code RS(%d,%d): need k >= 1, m >= 0, "
        "k + m <= %d",
        data_chunks, parity_chunks, kMaxChunks));
  }
  return ReedSolomonCode(data_chunks, parity_chunks);
}

std::optional<uint64_t> PaddedChunkSize(int data_chunks, uint64_t blob_size) {
  const uint64_t k = static_cast<uint64_t>(data_chunks);
  const uint64_t per_chunk = blob_size / k + (blob_size % k != 0 ? 1 : 0);
  if (per_chunk >
      std::numeric_limits<uint64_t>::max() - (AlignedBuffer::kAlignment - 1)) {
    return std::nullopt;
  }
  return RoundUpToAlignment(per_chunk);
}

uint64_t ReedSolomonCode::ChunkSizeFor(uint64_t blob_size) const {
  // Always a value for a blob that is in memory.
  return PaddedChunkSize(k_, blob_size).value_or(0);
}

size_t ReedSolomonCode::CachedDecodePlans() const {
  absl::MutexLock lock(&cache_->mu);
  return cache_->plans.size();
}

absl::StatusOr<std::shared_ptr<const ReedSolomonCode::DecodePlan>>
ReedSolomonCode::PlanFor(absl::Span<const int> survivors,
                         absl::Span<const int> outputs) const {
  std::string key;
  key.reserve(survivors.size() + outputs.size() + 1);
  for (int s : survivors) key.push_back(static_cast<char>(s));
  key.push_back(static_cast<char>(0xFF));
  for (int o : outputs) key.push_back(static_cast<char>(o));
  {
    absl::MutexLock lock(&cache_->mu);
    auto it = cache_->plans.find(key);
    if (it != cache_->plans.end()) return it->second;
  }

  // Build outside the lock: inversion is O(k^3) and other patterns should
  // not wait for it. A racing builder of the same key produces equal tables.
  const size_t k = static_cast<size_t>(k_);
  std::vector<uint8_t> survivor_rows(k * k);
  for (size_t r = 0; r < k; ++r) {
    std::memcpy(&survivor_rows[r * k], &matrix_[survivors[r] * k], k);
  }
  std::vector<uint8_t> inverse(k * k);
  // gf_invert_matrix destroys its input; survivor_rows is our own copy.
  if (gf_invert_matrix(survivor_rows.data(), inverse.data(), k_) != 0) {
    return absl::InternalError(
        "Reed-Solomon survivor matrix is singular (Cauchy invariant broken)");
  }
  // survivors = S * data, so data = S^-1 * survivors: a lost data chunk d is
  // row d of S^-1; a lost parity chunk p is (encoding row p) * S^-1.
  std::vector<uint8_t> output_rows(outputs.size() * k);
  for (size_t i = 0; i < outputs.size(); ++i) {
    uint8_t* row = &output_rows[i * k];
    const size_t out = static_cast<size_t>(outputs[i]);
    if (out < k) {
      std::memcpy(row, &inverse[out * k], k);
      continue;
    }
    const uint8_t* encoding_row = &matrix_[out * k];
    for (size_t j = 0; j < k; ++j) {
      uint8_t acc = 0;
      for (size_t l = 0; l < k; ++l) {
        acc ^= gf_mul(encoding_row[l], inverse[l * k + j]);
      }
      row[j] = acc;
    }
  }
  auto plan = std::make_shared<DecodePlan>();
  plan->num_outputs = static_cast<int>(outputs.size());
  plan->tables.resize(32 * k * outputs.size());
  ec_init_tables(k_, plan->num_outputs, output_rows.data(),
                 plan->tables.data());

  absl::MutexLock lock(&cache_->mu);
  if (cache_->plans.size() >= kMaxCachedPlans) cache_->plans.clear();
  auto [it, inserted] = cache_->plans.try_emplace(std::move(key), plan);
  return it->second;
}

void ReedSolomonCode::EncodeStripe(size_t len,
                                   absl::Span<const uint8_t* const> data,
                                   absl::Span<uint8_t* const> parity) const {
  assert(data.size() == static_cast<size_t>(k_));
  assert(parity.size() == static_cast<size_t>(m_));
  if (m_ == 0 || len == 0) return;
  ec_encode_data(static_cast<int>(len), k_, m_,
                 const_cast<uint8_t*>(encode_tables_.data()),
                 MutablePtrs(data.data()),
                 const_cast<unsigned char**>(parity.data()));
}

absl::Status ReedSolomonCode::ReconstructStripe(
    size_t len, absl::Span<const int> survivors,
    absl::Span<const uint8_t* const> survivor_data,
    absl::Span<const int> outputs,
    absl::Span<uint8_t* const> output_data) const {
  const int n = total_chunks();
  if (survivors.size() != static_cast<size_t>(k_) ||
      survivor_data.size() != survivors.size() ||
      outputs.size() != output_data.size()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "ReconstructStripe: need exactly %d survivors with data and one "
        "buffer per output",
        k_));
  }
  std::vector<bool> seen(n, false);
  for (int index : survivors) {
    if (index < 0 || index >= n || seen[index]) {
      return absl::InvalidArgumentError(
          absl::StrFormat("ReconstructStripe: bad survivor index %d", index));
    }
    seen[index] = true;
  }
  for (int index : outputs) {
    if (index < 0 || index >= n || seen[index]) {
      return absl::InvalidArgumentError(
          absl::StrFormat("ReconstructStripe: bad output index %d", index));
    }
    seen[index] = true;
  }
  if (outputs.empty() || len == 0) return absl::OkStatus();
  OUBLI_ASSIGN_OR_RETURN(std::shared_ptr<const DecodePlan> plan,
                         PlanFor(survivors, outputs));
  ec_encode_data(static_cast<int>(len), k_, plan->num_outputs,
                 const_cast<uint8_t*>(plan->tables.data()),
                 MutablePtrs(survivor_data.data()),
                 const_cast<unsigned char**>(output_data.data()));
  return absl::OkStatus();
}

absl::Status ReedSolomonCode::CheckLayout(const BlobLayout& layout,
                                          size_t chunks_size) const {
  const size_t n = static_cast<size_t>(total_chunks());
  if (layout.data_chunks != k_ || layout.parity_chunks != m_) {
    return absl::InvalidArgumentError(
        absl::StrFormat("layout is RS(%d,%d) but this code is RS(%d,%d)",
                        layout.data_chunks, layout.parity_chunks, k_, m_));
  }
  if (layout.chunk_crc32c.size() != n) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "layout has %d chunk CRCs, want %d", layout.chunk_crc32c.size(), n));
  }
  const std::optional<uint64_t> chunk_size =
      PaddedChunkSize(k_, layout.original_size);
  if (!chunk_size.has_value() || layout.chunk_size != *chunk_size) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "layout chunk size %d does not match %d for a %d-byte blob",
        layout.chunk_size, chunk_size.value_or(0), layout.original_size));
  }
  if (chunks_size != n) {
    return absl::InvalidArgumentError(
        absl::StrFormat("got %d chunk slots, want %d", chunks_size, n));
  }
  return absl::OkStatus();
}

template <typename Sink>
absl::Status ReedSolomonCode::StreamStripes(
    const BlobLayout& layout, absl::Span<const std::optional<ChunkView>> chunks,
    absl::Span<const int> excluded, absl::Span<const int> wanted,
    Sink&& sink) const {
  const int n = total_chunks();
  const uint64_t chunk_size = layout.chunk_size;
  std::vector<bool> is_excluded(n, false);
  for (int index : excluded) is_excluded[index] = true;

  // Candidates in index order, so data chunks are preferred: with all data
  // chunks intact, decoding is a CRC-checked copy with no GF arithmetic.
  std::vector<int> candidates;
  int missing = 0;
  int wrong_size = 0;
  for (int i = 0; i < n; ++i) {
    if (is_excluded[i]) continue;
    if (!chunks[i].has_value()) {
      ++missing;
    } else if (chunks[i]->bytes.size() != chunk_size) {
      ++wrong_size;
    } else {
      candidates.push_back(i);
    }
  }

  int failed_crc = 0;
  while (true) {
    if (candidates.size() < static_cast<size_t>(k_)) {
      return absl::DataLossError(absl::StrFormat(
          "RS(%d,%d): need %d intact chunks but only %d of %d are usable "
          "(%d missing, %d wrong size, %d failed CRC32C, %d being replaced)",
          k_, m_, k_, candidates.size(), n, missing, wrong_size, failed_crc,
          excluded.size()));
    }
    const absl::Span<const int> chosen =
        absl::MakeConstSpan(candidates).subspan(0, k_);

    // source[i] >= 0: wanted[i] is chosen[source[i]]; else it is rebuilt
    // into scratch slot -source[i] - 1.
    std::vector<int> source(wanted.size());
    std::vector<int> outputs;
    for (size_t i = 0; i < wanted.size(); ++i) {
      auto pos = std::find(chosen.begin(), chosen.end(), wanted[i]);
      if (pos != chosen.end()) {
        source[i] = static_cast<int>(pos - chosen.begin());
      } else {
        source[i] = -static_cast<int>(outputs.size()) - 1;
        outputs.push_back(wanted[i]);
      }
    }
    std::shared_ptr<const DecodePlan> plan;
    if (!outputs.empty()) {
      OUBLI_ASSIGN_OR_RETURN(plan, PlanFor(chosen, outputs));
    }
    const size_t scratch_size =
        static_cast<size_t>(std::min<uint64_t>(kBlockBytes, chunk_size));
    std::vector<AlignedBuffer> scratch;
    PtrArray scratch_ptrs;
    for (size_t i = 0; i < outputs.size(); ++i) {
      scratch.emplace_back(scratch_size);
      scratch_ptrs[i] = scratch.back().data();
    }

    std::vector<uint32_t> crc_state(k_, ~0u);
    ConstPtrArray survivor_ptrs;
    std::vector<const uint8_t*> wanted_ptrs(wanted.size());
    for (uint64_t offset = 0; offset < chunk_size; offset += kBlockBytes) {
      const size_t len = static_cast<size_t>(
          std::min<uint64_t>(kBlockBytes, chunk_size - offset));
      for (int c = 0; c < k_; ++c) {
        survivor_ptrs[c] = BytesOf(*chunks[chosen[c]]) + offset;
        // Checked in the same pass that feeds the decoder, while hot.
        crc_state[c] = RawCrc32c(survivor_ptrs[c], len, crc_state[c]);
      }
      if (plan != nullptr) {
        ec_encode_data(static_cast<int>(len), k_, plan->num_outputs,
                       const_cast<uint8_t*>(plan->tables.data()),
                       MutablePtrs(survivor_ptrs.data()), scratch_ptrs.data());
      }
      for (size_t i = 0; i < wanted.size(); ++i) {
        wanted_ptrs[i] = source[i] >= 0 ? survivor_ptrs[source[i]]
                                        : scratch_ptrs[-source[i] - 1];
      }
      sink(offset, len, absl::MakeConstSpan(wanted_ptrs));
    }

    // Drop survivors that failed their CRC and redo the stream without them.
    std::vector<int> corrupt;
    for (int c = 0; c < k_; ++c) {
      if (~crc_state[c] != layout.chunk_crc32c[chosen[c]]) {
        corrupt.push_back(chosen[c]);
      }
    }
    if (corrupt.empty()) return absl::OkStatus();
    failed_crc += static_cast<int>(corrupt.size());
    candidates.erase(std::remove_if(candidates.begin(), candidates.end(),
                                    [&](int index) {
                                      return std::find(corrupt.begin(),
                                                       corrupt.end(),
                                                       index) != corrupt.end();
                                    }),
                     candidates.end());
  }
}

BlobLayout ReedSolomonCode::LayoutFor(uint64_t blob_size) const {
  BlobLayout layout;
  layout.data_chunks = k_;
  layout.parity_chunks = m_;
  layout.original_size = blob_size;
  layout.chunk_size = ChunkSizeFor(blob_size);
  layout.chunk_crc32c.assign(total_chunks(), 0);  // filled by the encoder
  return layout;
}

template <typename Fill>
std::vector<uint32_t> ReedSolomonCode::EncodeStripes(
    uint64_t chunk_size, absl::Span<const uint8_t* const> chunks,
    absl::Span<uint8_t* const> parity, Fill&& fill) const {
  const int n = total_chunks();
  std::vector<uint32_t> crc_state(n, ~0u);
  ConstPtrArray data_ptrs;
  PtrArray parity_ptrs;
  for (uint64_t offset = 0; offset < chunk_size; offset += kBlockBytes) {
    const size_t len = static_cast<size_t>(
        std::min<uint64_t>(kBlockBytes, chunk_size - offset));
    fill(offset, len);
    for (int d = 0; d < k_; ++d) data_ptrs[d] = chunks[d] + offset;
    for (int p = 0; p < m_; ++p) parity_ptrs[p] = parity[p] + offset;
    EncodeStripe(len, absl::MakeConstSpan(data_ptrs.data(), k_),
                 absl::MakeConstSpan(parity_ptrs.data(), m_));
    // CRC now, while this stripe of every chunk is still in cache.
    for (int i = 0; i < n; ++i) {
      crc_state[i] = RawCrc32c(chunks[i] + offset, len, crc_state[i]);
    }
  }
  for (uint32_t& crc : crc_state) crc = ~crc;
  return crc_state;
}

absl::Status ReedSolomonCode::EncodeBlobInto(absl::string_view blob,
                                             EncodedBlob* out) const {
  const int n = total_chunks();
  const uint64_t size = blob.size();
  const uint64_t chunk_size = ChunkSizeFor(size);
  BlobLayout& layout = out->layout;
  layout = LayoutFor(size);

  out->chunks.resize(n);
  for (int i = 0; i < n; ++i) {
    Chunk& chunk = out->chunks[i];
    chunk.index = i;
    if (chunk.bytes.size() != chunk_size) {
      chunk.bytes = AlignedBuffer(chunk_size);
    }
  }

  const auto* src = reinterpret_cast<const uint8_t*>(blob.data());
  std::vector<const uint8_t*> chunks(n);
  std::vector<uint8_t*> parity(m_);
  for (int i = 0; i < n; ++i) chunks[i] = out->chunks[i].bytes.data();
  for (int p = 0; p < m_; ++p) parity[p] = out->chunks[k_ + p].bytes.data();
  const std::vector<uint32_t> crcs = EncodeStripes(
      chunk_size, chunks, parity, [&](uint64_t offset, size_t len) {
        for (int d = 0; d < k_; ++d) {
          uint8_t* dst = out->chunks[d].bytes.data() + offset;
          const uint64_t start = static_cast<uint64_t>(d) * chunk_size + offset;
          const size_t avail =
              start < size
                  ? static_cast<size_t>(std::min<uint64_t>(len, size - start))
                  : 0;
          if (avail > 0) std::memcpy(dst, src + start, avail);
          // Only the tail of the last data chunk(s) is padding.
          if (avail < len) std::memset(dst + avail, 0, len - avail);
        }
      });
  for (int i = 0; i < n; ++i) {
    out->chunks[i].crc32c = crcs[i];
    layout.chunk_crc32c[i] = crcs[i];
  }
  return absl::OkStatus();
}

absl::Status ReedSolomonCode::EncodeBlobBorrowing(
    absl::string_view blob, BorrowedEncodedBlob* out) const {
  const int n = total_chunks();
  const uint64_t size = blob.size();
  const uint64_t chunk_size = ChunkSizeFor(size);
  BlobLayout& layout = out->layout;
  layout = LayoutFor(size);

  // Data chunks the blob does not wholly contain (the one holding its end,
  // and any past it, which are all padding) are padded copies; parity is
  // always owned.
  const auto* src = reinterpret_cast<const uint8_t*>(blob.data());
  std::vector<const uint8_t*> bases(n);
  std::vector<uint8_t*> parity(m_);
  size_t used = 0;
  auto take_owned = [&]() -> uint8_t* {
    if (out->owned.size() <= used) out->owned.emplace_back();
    AlignedBuffer& buffer = out->owned[used++];
    if (buffer.size() != chunk_size) buffer = AlignedBuffer(chunk_size);
    return buffer.data();
  };
  for (int d = 0; d < k_; ++d) {
    const uint64_t start = static_cast<uint64_t>(d) * chunk_size;
    if (chunk_size > 0 && start + chunk_size <= size) {
      bases[d] = src + start;
      continue;
    }
    uint8_t* copy = take_owned();
    const size_t avail = start < size ? static_cast<size_t>(size - start) : 0;
    if (avail > 0) std::memcpy(copy, src + start, avail);
    if (avail < chunk_size) std::memset(copy + avail, 0, chunk_size - avail);
    bases[d] = copy;
  }
  for (int p = 0; p < m_; ++p) {
    parity[p] = take_owned();
    bases[k_ + p] = parity[p];
  }
  out->owned.resize(used);

  layout.chunk_crc32c =
      EncodeStripes(chunk_size, bases, parity, [](uint64_t, size_t) {});
  out->chunks.resize(n);
  for (int i = 0; i < n; ++i) {
    out->chunks[i] =
        absl::string_view(reinterpret_cast<const char*>(bases[i]), chunk_size);
  }
  return absl::OkStatus();
}

std::vector<std::optional<ChunkView>> BorrowedEncodedBlob::Views() const {
  std::vector<std::optional<ChunkView>> views;
  views.reserve(chunks.size());
  for (absl::string_view chunk : chunks) views.push_back(ChunkView{chunk});
  return views;
}

absl::StatusOr<EncodedBlob> ReedSolomonCode::EncodeBlob(
    absl::string_view blob) const {
  EncodedBlob encoded;
  OUBLI_RETURN_IF_ERROR(EncodeBlobInto(blob, &encoded));
  return encoded;
}

absl::Status ReedSolomonCode::DecodeBlobInto(
    const BlobLayout& layout, absl::Span<const std::optional<ChunkView>> chunks,
    std::string* out) const {
  OUBLI_RETURN_IF_ERROR(CheckLayout(layout, chunks.size()));
  const uint64_t size = layout.original_size;
  const uint64_t chunk_size = layout.chunk_size;
  out->resize(size);
  char* dst = out->data();

  std::vector<int> data_indices(k_);
  for (int d = 0; d < k_; ++d) data_indices[d] = d;
  return StreamStripes(
      layout, chunks, /*excluded=*/{}, data_indices,
      [&](uint64_t offset, size_t len, absl::Span<const uint8_t* const> data) {
        for (int d = 0; d < k_; ++d) {
          const uint64_t start = static_cast<uint64_t>(d) * chunk_size + offset;
          if (start >= size) break;  // the rest is padding
          const size_t n =
              static_cast<size_t>(std::min<uint64_t>(len, size - start));
          std::memcpy(dst + start, data[d], n);
        }
      });
}

absl::StatusOr<std::string> ReedSolomonCode::DecodeBlob(
    const BlobLayout& layout,
    absl::Span<const std::optional<ChunkView>> chunks) const {
  std::string blob;
  OUBLI_RETURN_IF_ERROR(DecodeBlobInto(layout, chunks, &blob));
  return blob;
}

absl::StatusOr<std::vector<Chunk>> ReedSolomonCode::RepairChunks(
    const BlobLayout& layout, absl::Span<const std::optional<ChunkView>> chunks,
    absl::Span<const int> lost_indices) const {
  OUBLI_RETURN_IF_ERROR(CheckLayout(layout, chunks.size()));
  const int n = total_chunks();
  std::vector<bool> seen(n, false);
  for (int index : lost_indices) {
    if (index < 0 || index >= n || seen[index]) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "RepairChunks: chunk index %d is out of range [0, %d) or repeated",
          index, n));
    }
    seen[index] = true;
  }

  std::vector<Chunk> repaired(lost_indices.size());
  std::vector<uint32_t> crc_state(lost_indices.size(), ~0u);
  for (size_t i = 0; i < lost_indices.size(); ++i) {
    repaired[i].index = lost_indices[i];
    repaired[i].bytes = AlignedBuffer(layout.chunk_size);
  }
  if (repaired.empty()) return repaired;

  OUBLI_RETURN_IF_ERROR(
      StreamStripes(layout, chunks, lost_indices, lost_indices,
                    [&](uint64_t offset, size_t len,
                        absl::Span<const uint8_t* const> rebuilt) {
                      // A restart after a corrupt survivor begins again at
                      // offset 0.
                      if (offset == 0)
                        std::fill(crc_state.begin(), crc_state.end(), ~0u);
                      for (size_t i = 0; i < repaired.size(); ++i) {
                        uint8_t* dst = repaired[i].bytes.data() + offset;
                        std::memcpy(dst, rebuilt[i], len);
                        crc_state[i] = RawCrc32c(dst, len, crc_state[i]);
                      }
                    }));

  for (size_t i = 0; i < repaired.size(); ++i) {
    repaired[i].crc32c = ~crc_state[i];
    const uint32_t want = layout.chunk_crc32c[repaired[i].index];
    if (repaired[i].crc32c != want) {
      return absl::DataLossError(absl::StrFormat(
          "RS(%d,%d): regenerated chunk %d has CRC32C %08x but the manifest "
          "says %08x; survivors are inconsistent",
          k_, m_, repaired[i].index, repaired[i].crc32c, want));
    }
  }
  return repaired;
}

}  // namespace oubli::storage
