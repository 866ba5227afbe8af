// Reed-Solomon erasure coding of checkpoint blobs across workers (ISA-L).
//
// A blob is split into k data chunks (zero padded to a common chunk size that
// is a multiple of 64 bytes) plus m parity chunks computed with a systematic
// Cauchy matrix over GF(2^8). Any k of the k+m chunks reconstruct the blob.
// Every chunk carries a CRC32C that the manifest (BlobLayout) records, so a
// silently corrupted chunk is detected and treated as an erasure instead of
// poisoning the decode.
//
// Encoding walks the blob in stripes of kBlockBytes per chunk: each stripe is
// copied into the chunk buffers, parity is computed and the CRCs are extended
// while the stripe is still in cache. A separate CRC pass would read every
// chunk from memory again and roughly halve throughput.
//
// Typical use:
//   OUBLI_ASSIGN_OR_RETURN(ReedSolomonCode code, ReedSolomonCode::Create(4,
//   2)); OUBLI_ASSIGN_OR_RETURN(EncodedBlob enc, code.EncodeBlob(bytes));
//   ... ship enc.chunks[i] to worker i, persist enc.layout in the manifest ...
//   std::vector<std::optional<ChunkView>> got(code.total_chunks());
//   ... fill got[i] with chunks fetched from live workers ...
//   OUBLI_ASSIGN_OR_RETURN(std::string blob, code.DecodeBlob(enc.layout, got));
#ifndef OUBLI_STORAGE_ERASURE_CODE_H_
#define OUBLI_STORAGE_ERASURE_CODE_H_

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace oubli::storage {

// Standard CRC32C (Castagnoli, as in iSCSI/ext4/RocksDB): Crc32c("123456789")
// is 0xE3069283. Chainable: Crc32c(b, Crc32c(a)) == Crc32c(a + b).
uint32_t Crc32c(absl::string_view bytes, uint32_t crc = 0);

// Owning heap buffer whose start is 64-byte aligned and whose capacity is a
// multiple of 64 bytes. ISA-L's SIMD kernels are measurably faster on aligned
// buffers. Contents are uninitialized on construction. Move-only.
class AlignedBuffer {
 public:
  static constexpr size_t kAlignment = 64;

  AlignedBuffer() = default;
  // `size` must be a multiple of kAlignment (checked by a debug assert; the
  // allocation is rounded up regardless). Aborts on allocation failure like
  // operator new would, since this code base does not use exceptions.
  explicit AlignedBuffer(size_t size);

  AlignedBuffer(AlignedBuffer&&) noexcept = default;
  AlignedBuffer& operator=(AlignedBuffer&&) noexcept = default;

  uint8_t* data() { return data_.get(); }
  const uint8_t* data() const { return data_.get(); }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  absl::string_view view() const {
    return absl::string_view(reinterpret_cast<const char*>(data_.get()), size_);
  }

 private:
  struct FreeDeleter {
    void operator()(uint8_t* p) const { std::free(p); }
  };
  std::unique_ptr<uint8_t, FreeDeleter> data_;
  size_t size_ = 0;
};

// What a manifest must persist to decode a blob later.
struct BlobLayout {
  int data_chunks = 0;    // k
  int parity_chunks = 0;  // m
  uint64_t original_size = 0;
  // Bytes per chunk: ceil(original_size / k) rounded up to a multiple of 64.
  // An empty blob has chunk_size 0 (k+m empty chunks), so nothing is stored
  // for it yet it still round-trips through the same code paths.
  uint64_t chunk_size = 0;
  // CRC32C of each whole chunk (padding included), indexed by chunk index.
  std::vector<uint32_t> chunk_crc32c;

  int total_chunks() const { return data_chunks + parity_chunks; }
};

// Bytes per chunk of a blob of `blob_size` bytes cut into `data_chunks`
// (>= 1) chunks: ceil(blob_size / data_chunks) rounded up to a multiple of
// 64. nullopt when that does not fit in 64 bits: no blob is that large,
// but a corrupt manifest can claim one.
std::optional<uint64_t> PaddedChunkSize(int data_chunks, uint64_t blob_size);

// One stored fragment. Indices [0, k) are data, [k, k+m) are parity.
struct Chunk {
  int index = 0;
  AlignedBuffer bytes;  // layout.chunk_size bytes
  uint32_t crc32c = 0;
};

// Non-owning view of a fragment as fetched from a worker. Its index is its
// position in the vector passed to DecodeBlob / RepairChunks.
struct ChunkView {
  absl::string_view bytes;
};

struct EncodedBlob {
  BlobLayout layout;
  std::vector<Chunk> chunks;  // k+m entries, chunks[i].index == i

  // Views of all chunks, ready for DecodeBlob / RepairChunks.
  std::vector<std::optional<ChunkView>> Views() const;
};

// An encoding that borrows its blob: each data chunk lying wholly inside the
// blob is a view of it, so encoding copies only a padded tail and writes
// only parity. Valid while the blob is alive and unchanged. This is what a
// caller that ships chunks elsewhere wants (the copy into the message is the
// only one); EncodedBlob owns copies of every chunk.
struct BorrowedEncodedBlob {
  BlobLayout layout;
  // k+m entries of layout.chunk_size bytes each; [0, k) data, [k, k+m)
  // parity.
  std::vector<absl::string_view> chunks;
  // Parity and padded data chunks that `chunks` points into; reused by the
  // next EncodeBlobBorrowing when their sizes fit.
  std::vector<AlignedBuffer> owned;

  std::vector<std::optional<ChunkView>> Views() const;
};

// Default (k, m) for `workers` failure domains, one chunk per worker.
//   1 worker   -> (1, 0): nowhere else to put redundancy.
//   2-3        -> (1, 1): a mirror. With so few nodes EC saves little space
//                 (RS(2,1) stores 1.5x vs 2x) but every recovery would need
//                 all surviving nodes; mirroring recovers from any one peer.
//   4-5        -> (workers-2, 2): tolerate two failures, as MinIO does with
//                 parity 2 on 4 drives.
//   >= 6       -> (4, 2): Ceph's suggested profile (1.5x overhead, two
//                 failures). Wider stripes would make every recovery touch
//                 more workers for little space gain.
std::pair<int, int> DefaultCodeFor(int workers);

// A systematic RS(k, m) code. Thread-safe: Encode/Decode/Repair may run
// concurrently on one instance; decode tables are cached per loss pattern.
// Move-only (moved-from instances may only be destroyed or assigned).
class ReedSolomonCode {
 public:
  // Bytes of each chunk processed per stripe step. 64 KiB keeps a whole
  // stripe of RS(10,4) (14 x 64 KiB) within a typical L2/L3 slice so the CRC
  // and the copy out read cache, not DRAM.
  static constexpr size_t kBlockBytes = 64 * 1024;

  // The GF(2^8) Cauchy limit on k + m.
  static constexpr int kMaxTotalChunks = 255;

  // 1 <= k, 0 <= m, k + m <= kMaxTotalChunks; else InvalidArgument.
  static absl::StatusOr<ReedSolomonCode> Create(int data_chunks,
                                                int parity_chunks);

  ReedSolomonCode(ReedSolomonCode&&) noexcept;
  ReedSolomonCode& operator=(ReedSolomonCode&&) noexcept;
  ~ReedSolomonCode();

  int data_chunks() const { return k_; }
  int parity_chunks() const { return m_; }
  int total_chunks() const { return k_ + m_; }

  // Chunk size EncodeBlob uses for a blob of `blob_size` bytes.
  uint64_t ChunkSizeFor(uint64_t blob_size) const;
  // The layout of such a blob, CRCs still zero.
  BlobLayout LayoutFor(uint64_t blob_size) const;

  // Splits, pads and encodes `blob` into k+m CRC-stamped chunks.
  absl::StatusOr<EncodedBlob> EncodeBlob(absl::string_view blob) const;
  // Same, but reuses `out`'s chunk buffers when their sizes already fit, so a
  // steady stream of same-sized checkpoints does not fault in fresh pages.
  absl::Status EncodeBlobInto(absl::string_view blob, EncodedBlob* out) const;
  // Same chunks, bytes and CRCs as EncodeBlob, without copying the blob's
  // whole data chunks (see BorrowedEncodedBlob).
  absl::Status EncodeBlobBorrowing(absl::string_view blob,
                                   BorrowedEncodedBlob* out) const;

  // Reassembles the original blob. `chunks` has k+m entries; nullopt marks a
  // lost chunk. A present chunk whose size or CRC32C disagrees with `layout`
  // is treated as lost. Fewer than k usable chunks -> DataLoss. A layout that
  // does not match this code -> InvalidArgument.
  absl::StatusOr<std::string> DecodeBlob(
      const BlobLayout& layout,
      absl::Span<const std::optional<ChunkView>> chunks) const;
  // Same, writing into `*out` (resized; its capacity is reused). On error
  // `*out` holds unspecified bytes.
  absl::Status DecodeBlobInto(const BlobLayout& layout,
                              absl::Span<const std::optional<ChunkView>> chunks,
                              std::string* out) const;

  // Regenerates the chunks named by `lost_indices` (data or parity, each in
  // [0, k+m), no duplicates) from k usable survivors, e.g. to re-place them
  // on live workers. Results are in `lost_indices` order and byte-identical
  // to the originals; a regenerated CRC that disagrees with `layout` yields
  // DataLoss (the survivors are inconsistent). Chunks at `lost_indices` are
  // never used as survivors, even if present (they are being replaced).
  absl::StatusOr<std::vector<Chunk>> RepairChunks(
      const BlobLayout& layout,
      absl::Span<const std::optional<ChunkView>> chunks,
      absl::Span<const int> lost_indices) const;

  // Low-level stripe API on caller-owned buffers of `len` (< 2^31) bytes
  // each; no alignment required, but 64-byte alignment is faster.
  // Computes m parity buffers from k data buffers.
  void EncodeStripe(size_t len, absl::Span<const uint8_t* const> data,
                    absl::Span<uint8_t* const> parity) const;
  // Rebuilds fragments `outputs` from exactly k distinct `survivors`
  // (fragment indices, with `survivor_data[i]` holding fragment
  // survivors[i]). Outputs must not be among the survivors.
  absl::Status ReconstructStripe(size_t len, absl::Span<const int> survivors,
                                 absl::Span<const uint8_t* const> survivor_data,
                                 absl::Span<const int> outputs,
                                 absl::Span<uint8_t* const> output_data) const;

  // Number of cached decode plans (for tests).
  size_t CachedDecodePlans() const;

 private:
  struct DecodePlan;
  struct PlanCache;

  ReedSolomonCode(int k, int m);

  // Returns the tables that map `survivors` (k indices) to `outputs`.
  absl::StatusOr<std::shared_ptr<const DecodePlan>> PlanFor(
      absl::Span<const int> survivors, absl::Span<const int> outputs) const;
  absl::Status CheckLayout(const BlobLayout& layout, size_t chunks_size) const;
  // The encoders' one pass over k+m chunks of `chunk_size` bytes (`chunks`;
  // `parity` the writable view of chunks [k, k+m)), in stripes of
  // kBlockBytes: `fill(offset, len)`, if given, first writes the data
  // stripe, then parity is computed and every chunk's CRC32C extended while
  // the stripe is still in cache. Returns the CRCs.
  template <typename Fill>
  std::vector<uint32_t> EncodeStripes(uint64_t chunk_size,
                                      absl::Span<const uint8_t* const> chunks,
                                      absl::Span<uint8_t* const> parity,
                                      Fill&& fill) const;
  // Picks k usable survivors among `chunks` (never one in `excluded`),
  // rebuilds whichever of `wanted` are not among them, and calls
  // sink(offset, len, ptrs) once per stripe with ptrs[i] pointing at the
  // stripe of chunk wanted[i]. Survivor CRCs are checked in the same pass; if
  // one fails, it is dropped and the stream restarts (at offset 0) with
  // another survivor.
  template <typename Sink>
  absl::Status StreamStripes(const BlobLayout& layout,
                             absl::Span<const std::optional<ChunkView>> chunks,
                             absl::Span<const int> excluded,
                             absl::Span<const int> wanted, Sink&& sink) const;

  int k_ = 0;
  int m_ = 0;
  // (k+m) x k systematic Cauchy matrix; top k rows are the identity.
  std::vector<uint8_t> matrix_;
  // ec_init_tables expansion of the m parity rows (32*k*m bytes).
  std::vector<uint8_t> encode_tables_;
  std::unique_ptr<PlanCache> cache_;
};

}  // namespace oubli::storage

#endif  // OUBLI_STORAGE_ERASURE_CODE_H_
