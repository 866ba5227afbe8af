#include "coordinator/worker_chunks.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <cstdio>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/hash.h"
#include "common/status_macros.h"
#include "coordinator/chunk_manifest.h"
#include "coordinator/pooled_worker.h"
#include "oubli/cluster/cluster.grpc.pb.h"
#include "oubli/internal/records.pb.h"

namespace oubli::coordinator {

WorkerChunks::WorkerChunks(std::shared_ptr<WorkerPool> pool)
    : pool_(std::move(pool)) {}

WorkerChunks::~WorkerChunks() = default;

grpc::Status WorkerChunks::PutChunk(const WorkerPool::Worker& holder,
                                    const std::string& key, int index,
                                    absl::string_view bytes, uint32_t crc32c) {
  cluster::PutChunkRequest request;
  request.set_checkpoint_key(key);
  request.set_index(index);
  request.set_data(std::string(bytes));
  request.set_crc32c(crc32c);
  grpc::ClientContext context;
  pool_->PrepareCall(&context, absl::Now() + pool_->options().chunk_deadline);
  cluster::PutChunkResponse response;
  return holder.stub->PutChunk(&context, request, &response);
}

namespace {

// Chunk holders a checkpoint coded with `code` needs.
size_t HoldersNeeded(const ErasureCodeConfig& code) {
  return code.automatic()
             ? 2
             : static_cast<size_t>(code.data_chunks + code.parity_chunks);
}

}  // namespace

bool WorkerChunks::CanProtect(const ErasureCodeConfig& code) {
  return pool_->LiveChunkHolders().size() >= HoldersNeeded(code);
}

absl::Status WorkerChunks::Protect(
    const std::string& key, absl::string_view bytes,
    const ErasureCodeConfig& code_config,
    const std::function<absl::Status(const std::string&)>& persist) {
  // Live holders by name, rotated by the key so chunks spread evenly.
  std::vector<std::shared_ptr<WorkerPool::Worker>> holders =
      pool_->LiveChunkHolders();
  const size_t needed = HoldersNeeded(code_config);
  if (holders.size() < needed) {
    return absl::FailedPreconditionError(absl::StrCat(
        holders.size(), " chunk-holding worker(s) alive; need ", needed));
  }
  std::sort(holders.begin(), holders.end(),
            [](const auto& a, const auto& b) { return a->name < b->name; });
  std::rotate(holders.begin(),
              holders.begin() + std::hash<std::string>()(key) % holders.size(),
              holders.end());
  const auto [k, m] =
      code_config.automatic()
          ? storage::DefaultCodeFor(static_cast<int>(holders.size()))
          : std::make_pair(code_config.data_chunks, code_config.parity_chunks);
  OUBLI_ASSIGN_OR_RETURN(storage::ReedSolomonCode code,
                         storage::ReedSolomonCode::Create(k, m));
  // Borrowing: the only copy of the data is the one into each message.
  storage::BorrowedEncodedBlob encoded;
  OUBLI_RETURN_IF_ERROR(code.EncodeBlobBorrowing(bytes, &encoded));

  internal::ChunkManifest manifest;
  manifest.set_data_chunks(k);
  manifest.set_parity_chunks(m);
  manifest.set_original_size(encoded.layout.original_size);
  manifest.set_chunk_size(encoded.layout.chunk_size);
  const Sha256Digest digest = Sha256().Add(bytes).Finish();
  manifest.set_checkpoint_sha256(digest.data(), digest.size());
  for (int i = 0; i < k + m; ++i) {
    manifest.add_chunk_crc32c(encoded.layout.chunk_crc32c[i]);
    manifest.add_holders(holders[i]->name);
  }
  const std::string manifest_bytes = manifest.SerializeAsString();
  OUBLI_RETURN_IF_ERROR(persist(manifest_bytes));
  for (int i = 0; i < k + m; ++i) {
    const grpc::Status status = PutChunk(*holders[i], key, i, encoded.chunks[i],
                                         encoded.layout.chunk_crc32c[i]);
    if (!status.ok()) {
      // Even a timed-out put may land: the persisted manifest names every
      // holder, so the caller's Forget reaches it.
      return absl::UnavailableError(absl::StrCat("storing chunk ", i, " on ",
                                                 holders[i]->name, ": ",
                                                 status.error_message()));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> WorkerChunks::Restore(const std::string& key,
                                                  const std::string& bytes) {
  internal::ChunkManifest manifest;
  OUBLI_ASSIGN_OR_RETURN(const storage::BlobLayout layout,
                         ParseChunkManifest(key, bytes, &manifest));
  const int total = layout.total_chunks();
  OUBLI_ASSIGN_OR_RETURN(storage::ReedSolomonCode code,
                         storage::ReedSolomonCode::Create(
                             layout.data_chunks, layout.parity_chunks));
  // Fetch until k chunks pass their CRC; the rest stay erasures.
  std::vector<std::string> fetched(total);
  std::vector<std::optional<storage::ChunkView>> views(total);
  std::vector<std::string> problems;
  const int good = FetchChunks(
      key, {manifest.holders().begin(), manifest.holders().end()},
      layout.chunk_crc32c, layout.chunk_size, layout.data_chunks, {},
      /*wait_at_start=*/true, &fetched, &views, &problems);
  if (good < layout.data_chunks) {
    return absl::DataLossError(absl::StrCat(
        "checkpoint ", key, ": ", good, " of the ", layout.data_chunks,
        " chunks needed are readable (", absl::StrJoin(problems, "; "), ")"));
  }
  OUBLI_ASSIGN_OR_RETURN(std::string blob, code.DecodeBlob(layout, views));
  const Sha256Digest digest = Sha256().Add(blob).Finish();
  if (manifest.checkpoint_sha256() !=
      absl::string_view(reinterpret_cast<const char*>(digest.data()),
                        digest.size())) {
    return absl::DataLossError(
        absl::StrCat("checkpoint ", key, " decodes to the wrong SHA-256"));
  }
  if (!problems.empty()) {
    std::fprintf(stderr, "oubli: restored checkpoint %s despite: %s\n",
                 key.c_str(), absl::StrJoin(problems, "; ").c_str());
  }
  return blob;
}

int WorkerChunks::FetchChunks(
    const std::string& key, const std::vector<std::string>& holders,
    const std::vector<uint32_t>& crcs, uint64_t chunk_size, int needed,
    const std::vector<int>& skip, bool wait_at_start,
    std::vector<std::string>* fetched,
    std::vector<std::optional<storage::ChunkView>>* views,
    std::vector<std::string>* problems) {
  int good = 0;
  for (int i = 0; i < static_cast<int>(holders.size()) && good < needed; ++i) {
    if (std::find(skip.begin(), skip.end(), i) != skip.end()) continue;
    std::shared_ptr<WorkerPool::Worker> holder = pool_->LiveHolder(holders[i]);
    // Right after a coordinator restart the workers have not registered
    // again yet: give them one worker timeout before calling them lost.
    while (wait_at_start && holder == nullptr && pool_->Starting() &&
           !pool_->Retired(holders[i])) {
      absl::SleepFor(absl::Milliseconds(100));
      holder = pool_->LiveHolder(holders[i]);
    }
    if (holder == nullptr) {
      problems->push_back(
          absl::StrCat("chunk ", i, ": ", holders[i], " not alive"));
      continue;
    }
    cluster::GetChunkRequest request;
    request.set_checkpoint_key(key);
    request.set_index(i);
    grpc::ClientContext context;
    pool_->PrepareCall(&context, absl::Now() + pool_->options().chunk_deadline);
    std::unique_ptr<grpc::ClientReader<cluster::ChunkPiece>> reader =
        holder->stub->GetChunk(&context, request);
    cluster::ChunkPiece piece;
    std::string& data = (*fetched)[i];
    while (reader->Read(&piece) && data.size() <= chunk_size) {
      data += piece.data();
    }
    const grpc::Status status = reader->Finish();
    if (!status.ok() || data.size() != chunk_size ||
        storage::Crc32c(data) != crcs[i]) {
      problems->push_back(absl::StrCat(
          "chunk ", i, " on ", holder->name, ": ",
          status.ok() ? "size or CRC32C mismatch" : status.error_message()));
      continue;
    }
    (*views)[i] = storage::ChunkView{data};
    ++good;
  }
  return good;
}

absl::StatusOr<int> WorkerChunks::Repair(
    const std::string& key, const std::string& bytes,
    const std::function<absl::Status(const std::string&)>& persist) {
  internal::ChunkManifest manifest;
  OUBLI_ASSIGN_OR_RETURN(const storage::BlobLayout layout,
                         ParseChunkManifest(key, bytes, &manifest));
  const int total = layout.total_chunks();
  std::vector<int> lost;
  for (int i = 0; i < total; ++i) {
    if (pool_->LiveHolder(manifest.holders(i)) == nullptr) lost.push_back(i);
  }
  if (lost.empty()) return 0;
  // Spares: live holders without a chunk of this checkpoint (one chunk per
  // worker keeps every worker loss a single erasure).
  std::vector<std::shared_ptr<WorkerPool::Worker>> spares =
      pool_->LiveChunkHolders();
  std::erase_if(spares, [&](const std::shared_ptr<WorkerPool::Worker>& worker) {
    return std::find(manifest.holders().begin(), manifest.holders().end(),
                     worker->name) != manifest.holders().end();
  });
  std::sort(spares.begin(), spares.end(),
            [](const auto& a, const auto& b) { return a->name < b->name; });
  if (spares.size() < lost.size()) lost.resize(spares.size());
  if (lost.empty()) return 0;

  std::vector<std::string> fetched(total);
  std::vector<std::optional<storage::ChunkView>> views(total);
  std::vector<std::string> problems;
  const int good = FetchChunks(
      key, {manifest.holders().begin(), manifest.holders().end()},
      layout.chunk_crc32c, layout.chunk_size, layout.data_chunks, lost,
      /*wait_at_start=*/false, &fetched, &views, &problems);
  if (good < layout.data_chunks) {
    return absl::DataLossError(absl::StrCat(
        "checkpoint ", key, ": ", good, " of the ", layout.data_chunks,
        " chunks needed are readable (", absl::StrJoin(problems, "; "), ")"));
  }
  OUBLI_ASSIGN_OR_RETURN(storage::ReedSolomonCode code,
                         storage::ReedSolomonCode::Create(
                             layout.data_chunks, layout.parity_chunks));
  OUBLI_ASSIGN_OR_RETURN(std::vector<storage::Chunk> regenerated,
                         code.RepairChunks(layout, views, lost));

  internal::ChunkManifest repaired = manifest;
  for (size_t j = 0; j < lost.size(); ++j) {
    repaired.add_also_destroy(manifest.holders(lost[j]));
    repaired.set_holders(lost[j], spares[j]->name);
  }
  // Named before placed, as in Protect.
  OUBLI_RETURN_IF_ERROR(persist(repaired.SerializeAsString()));
  for (size_t j = 0; j < lost.size(); ++j) {
    const grpc::Status status =
        PutChunk(*spares[j], key, lost[j],
                 regenerated[j].bytes.view().substr(0, layout.chunk_size),
                 regenerated[j].crc32c);
    if (!status.ok()) {
      return absl::UnavailableError(absl::StrCat("re-placing chunk ", lost[j],
                                                 " on ", spares[j]->name, ": ",
                                                 status.error_message()));
    }
  }
  return static_cast<int>(lost.size());
}

absl::Status WorkerChunks::Forget(const std::string& key,
                                  const std::string& bytes) {
  internal::ChunkManifest manifest;
  if (!manifest.ParseFromString(bytes)) {
    return absl::DataLossError(
        absl::StrCat("chunk manifest of ", key, " is unreadable"));
  }
  std::vector<std::string> names(manifest.holders().begin(),
                                 manifest.holders().end());
  names.insert(names.end(), manifest.also_destroy().begin(),
               manifest.also_destroy().end());
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  std::vector<std::string> unreachable;
  for (const std::string& name : names) {
    // Gone with its disk, on the operator's word.
    if (pool_->Retired(name)) continue;
    std::shared_ptr<WorkerPool::Worker> holder = pool_->LiveHolder(name);
    // Right after a coordinator restart absence proves nothing (as for
    // RetireHolder): do not send the operator to retire a worker that is
    // about to register again.
    grpc::Status status(
        grpc::StatusCode::UNAVAILABLE,
        pool_->Starting()
            ? std::string("not registered again yet since the coordinator "
                          "started; retried when it is")
            : absl::StrCat("not alive; if it is gone for good with its disk: "
                           "oublictl retire-worker ",
                           name));
    if (holder != nullptr) {
      cluster::DeleteChunksRequest request;
      request.add_checkpoint_keys(key);
      grpc::ClientContext context;
      pool_->PrepareCall(&context,
                         absl::Now() + pool_->options().chunk_deadline);
      cluster::DeleteChunksResponse response;
      status = holder->stub->DeleteChunks(&context, request, &response);
    }
    if (!status.ok()) {
      unreachable.push_back(
          absl::StrCat(name, " (", status.error_message(), ")"));
    }
  }
  if (!unreachable.empty()) {
    return absl::UnavailableError(
        absl::StrCat("chunks of ", key, " not yet destroyed on ",
                     absl::StrJoin(unreachable, ", ")));
  }
  return absl::OkStatus();
}

}  // namespace oubli::coordinator
