// oubli-bench ec: Reed-Solomon encode/decode throughput vs memcpy.
//
//   oubli-bench ec [--size_mib=64] [--iters=5]
//
// For RS(4,2), RS(6,3) and RS(10,4) on a blob of random bytes, prints one
// JSON line with encode GB/s as the coordinator encodes checkpoints
// (EncodeBlobBorrowing: parity + CRC32C of every chunk, whole data chunks
// left in the blob, reused parity buffers), encode_copying GB/s (EncodeBlob
// into owned chunk buffers: also copies the data), decode GB/s with the first m
// data chunks lost (the worst case: m chunks rebuilt by GF arithmetic, every
// survivor CRC-checked), and memcpy GB/s of the same blob measured right
// before, as the single-core memory roofline. GB/s = original blob bytes /
// seconds / 1e9; each figure is the best of --iters runs, since the 2-core
// machine is shared and noisy.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "storage/erasure_code.h"
#include "tools/bench/bench.h"

namespace oubli::bench {
namespace {

using storage::BorrowedEncodedBlob;
using storage::ChunkView;
using storage::EncodedBlob;
using storage::ReedSolomonCode;

struct EcBenchOptions {
  int64_t size_mib = 64;
  int iters = 5;
};

// Parses --key=value arguments; prints the problem and returns false on any
// unknown or malformed argument.
bool ParseArgs(const std::vector<std::string>& args, EcBenchOptions* options) {
  for (const std::string& arg : args) {
    const size_t eq = arg.find('=');
    const std::string key = arg.substr(0, eq);
    const std::string value = eq == std::string::npos ? "" : arg.substr(eq + 1);
    char* end = nullptr;
    const long long parsed = std::strtoll(value.c_str(), &end, 10);
    const bool numeric = !value.empty() && end != nullptr && *end == '\0';
    if (key == "--size_mib" && numeric && parsed >= 1 && parsed <= 16384) {
      options->size_mib = parsed;
    } else if (key == "--iters" && numeric && parsed >= 1 && parsed <= 1000) {
      options->iters = static_cast<int>(parsed);
    } else {
      std::fprintf(stderr,
                   "oubli-bench ec: bad argument '%s'\n"
                   "usage: oubli-bench ec [--size_mib=1..16384] "
                   "[--iters=1..1000]\n",
                   arg.c_str());
      return false;
    }
  }
  return true;
}

std::string RandomBlob(size_t size) {
  std::mt19937_64 rng(0x0B11);
  std::string blob(size, '\0');
  size_t i = 0;
  for (; i + 8 <= size; i += 8) {
    const uint64_t word = rng();
    std::memcpy(&blob[i], &word, 8);
  }
  for (; i < size; ++i) blob[i] = static_cast<char>(rng());
  return blob;
}

// Best (minimum) wall time over `iters` calls of `fn`, in seconds.
template <typename Fn>
double BestSeconds(int iters, Fn&& fn) {
  double best = 1e300;
  for (int i = 0; i < iters; ++i) {
    const auto start = std::chrono::steady_clock::now();
    fn();
    const std::chrono::duration<double> elapsed =
        std::chrono::steady_clock::now() - start;
    if (elapsed.count() < best) best = elapsed.count();
  }
  return best;
}

double Gbps(size_t bytes, double seconds) { return bytes / seconds / 1e9; }

}  // namespace

int RunEcBench(const std::vector<std::string>& args) {
  EcBenchOptions options;
  if (!ParseArgs(args, &options)) return 2;
  const size_t size = static_cast<size_t>(options.size_mib) << 20;
  const std::string blob = RandomBlob(size);

  // Faulted in up front so memcpy measures copying, not page faults, just as
  // the reused encode/decode buffers below do.
  std::string copy_target(size, '\0');
  volatile char keep = 0;  // keeps the copies observable

  struct CodeSpec {
    int k;
    int m;
  };
  for (const CodeSpec spec :
       {CodeSpec{4, 2}, CodeSpec{6, 3}, CodeSpec{10, 4}}) {
    auto code = ReedSolomonCode::Create(spec.k, spec.m);
    if (!code.ok()) {
      std::fprintf(stderr, "oubli-bench ec: %s\n",
                   code.status().ToString().c_str());
      return 1;
    }

    const double memcpy_seconds = BestSeconds(options.iters, [&] {
      std::memcpy(copy_target.data(), blob.data(), size);
      keep = copy_target[size / 2];
    });

    // The first encode allocates and faults in the chunk buffers; the timed
    // ones reuse them, as a checkpoint loop using EncodeBlobInto would.
    // First-touch page faults are slow in VMs (~0.25 GB/s measured here) and
    // would swamp the coding itself.
    EncodedBlob encoded;
    absl::Status status = code->EncodeBlobInto(blob, &encoded);
    const double encode_seconds = BestSeconds(options.iters, [&] {
      status.Update(code->EncodeBlobInto(blob, &encoded));
    });
    BorrowedEncodedBlob borrowed;
    status.Update(code->EncodeBlobBorrowing(blob, &borrowed));
    const double borrowing_seconds = BestSeconds(options.iters, [&] {
      status.Update(code->EncodeBlobBorrowing(blob, &borrowed));
    });
    if (!status.ok() ||
        borrowed.layout.chunk_crc32c != encoded.layout.chunk_crc32c) {
      std::fprintf(
          stderr, "oubli-bench ec: encode failed: %s\n",
          status.ok() ? "the two encodings differ" : status.ToString().c_str());
      return 1;
    }

    // Worst case: the first m data chunks are gone.
    std::vector<std::optional<ChunkView>> views = encoded.Views();
    for (int i = 0; i < spec.m; ++i) views[i].reset();
    std::string decoded;
    status.Update(code->DecodeBlobInto(encoded.layout, views, &decoded));
    if (!status.ok() || decoded != blob) {
      std::fprintf(
          stderr, "oubli-bench ec: RS(%d,%d) decode %s\n", spec.k, spec.m,
          status.ok() ? "returned wrong bytes" : status.ToString().c_str());
      return 1;
    }
    const double decode_seconds = BestSeconds(options.iters, [&] {
      status.Update(code->DecodeBlobInto(encoded.layout, views, &decoded));
      keep = decoded[size / 2];
    });
    if (!status.ok()) {
      std::fprintf(stderr, "oubli-bench ec: decode failed: %s\n",
                   status.ToString().c_str());
      return 1;
    }

    const double memcpy_gbps = Gbps(size, memcpy_seconds);
    const double encode_gbps = Gbps(size, borrowing_seconds);
    const double copying_gbps = Gbps(size, encode_seconds);
    std::printf(
        "{\"bench\":\"ec\",\"code\":\"RS(%d,%d)\",\"k\":%d,\"m\":%d,"
        "\"size_bytes\":%zu,\"iters\":%d,\"lost_data_chunks\":%d,"
        "\"encode_gbps\":%.3f,\"encode_copying_gbps\":%.3f,"
        "\"decode_gbps\":%.3f,\"memcpy_gbps\":%.3f,"
        "\"encode_vs_memcpy\":%.3f,\"encode_copying_vs_memcpy\":%.3f}\n",
        spec.k, spec.m, spec.k, spec.m, size, options.iters, spec.m,
        encode_gbps, copying_gbps, Gbps(size, decode_seconds), memcpy_gbps,
        encode_gbps / memcpy_gbps, copying_gbps / memcpy_gbps);
    std::fflush(stdout);
  }
  (void)keep;
  return 0;
}

}  // namespace oubli::bench
