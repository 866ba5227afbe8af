#include "storage/lineage_store.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <system_error>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "common/status_macros.h"
#include "common/thread_priority.h"
#include "oubli/internal/records.pb.h"
#include "storage/rocksdb_background_env.h"
#include "storage/sample_record.h"
#include "rocksdb/db.h"
#include "rocksdb/options.h"
#include "rocksdb/slice.h"
#include "rocksdb/write_batch.h"

namespace oubli::storage {
namespace {

constexpr char kSamplesCf[] = "samples";
constexpr char kOwnersCf[] = "owners";
constexpr char kSlicesCf[] = "slices";
constexpr char kDeletionsCf[] = "deletions";
constexpr char kMetaCf[] = "meta";

rocksdb::Slice ToSlice(absl::string_view s) {
  return rocksdb::Slice(s.data(), s.size());
}

absl::string_view ToView(const rocksdb::Slice& s) {
  return absl::string_view(s.data(), s.size());
}

// Maps a RocksDB status onto the closest absl code; `what` names the
// operation and key so the message is actionable on its own.
absl::Status FromRocks(const rocksdb::Status& s, absl::string_view what) {
  if (s.ok()) return absl::OkStatus();
  std::string message = absl::StrCat(what, ": ", s.ToString());
  switch (s.code()) {
    case rocksdb::Status::kNotFound:
      return absl::NotFoundError(message);
    case rocksdb::Status::kCorruption:
      return absl::DataLossError(message);
    case rocksdb::Status::kInvalidArgument:
      return absl::InvalidArgumentError(message);
    case rocksdb::Status::kNotSupported:
      return absl::UnimplementedError(message);
    case rocksdb::Status::kBusy:
    case rocksdb::Status::kTimedOut:
    case rocksdb::Status::kTryAgain:
      return absl::UnavailableError(message);
    case rocksdb::Status::kAborted:
      return absl::AbortedError(message);
    case rocksdb::Status::kShutdownInProgress:
      return absl::CancelledError(message);
    case rocksdb::Status::kIOError:
      if (s.subcode() == rocksdb::Status::kNoSpace) {
        return absl::ResourceExhaustedError(message);
      }
      return absl::InternalError(message);
    default:
      return absl::InternalError(message);
  }
}

void AppendBigEndian32(uint32_t value, std::string* out) {
  out->push_back(static_cast<char>(value >> 24));
  out->push_back(static_cast<char>(value >> 16));
  out->push_back(static_cast<char>(value >> 8));
  out->push_back(static_cast<char>(value));
}

// be32(shard) be32(slice): shard and slice are non-negative (checked at
// ingest), so bytewise order of the prefix equals numeric order.
std::string SlicePrefix(SliceRef slice) {
  std::string prefix;
  prefix.reserve(8);
  AppendBigEndian32(static_cast<uint32_t>(slice.shard), &prefix);
  AppendBigEndian32(static_cast<uint32_t>(slice.slice), &prefix);
  return prefix;
}

std::string SliceKey(SliceRef slice, absl::string_view id) {
  return absl::StrCat(SlicePrefix(slice), id);
}

// Owners never contain NUL (ValidateOwner forbids control characters), so
// "owner\0" is an exact prefix for one owner's keys.
std::string OwnerPrefix(absl::string_view owner) {
  return absl::StrCat(owner, absl::string_view("\0", 1));
}

std::string OwnerKey(absl::string_view owner, absl::string_view id) {
  return absl::StrCat(OwnerPrefix(owner), id);
}

// Smallest key greater than every key starting with `prefix`, or empty if
// there is none (prefix of all 0xff bytes).
std::string PrefixUpperBound(absl::string_view prefix) {
  std::string bound(prefix);
  while (!bound.empty()) {
    auto last = static_cast<uint8_t>(bound.back());
    if (last != 0xff) {
      bound.back() = static_cast<char>(last + 1);
      return bound;
    }
    bound.pop_back();
  }
  return bound;
}

std::string SliceName(SliceRef slice) {
  return absl::StrCat("shard ", slice.shard, " slice ", slice.slice);
}

// Names the fields in which an incoming sample differs from the stored one;
// empty if the content is identical.
std::vector<std::string> DifferingFields(const SampleRecord& stored,
                                         const AssignedSample& incoming) {
  std::vector<std::string> fields;
  if (stored.sample.owner != incoming.sample.owner) fields.push_back("owner");
  if (stored.sample.label != incoming.sample.label) fields.push_back("label");
  if (stored.sample.feature_type != incoming.sample.feature_type) {
    fields.push_back("feature type");
  }
  if (stored.sample.features != incoming.sample.features) {
    fields.push_back("features");
  }
  if (stored.sample.prompt_tokens != incoming.sample.prompt_tokens) {
    fields.push_back("prompt tokens");
  }
  // Content equal, cell not: the placement inputs outside the content
  // changed (a deletion_risk hint across the risk threshold).
  if (stored.where != incoming.where) {
    fields.push_back(
        "shard/slice (its deletion_risk hint crossed the risk threshold)");
  }
  return fields;
}

std::string DeletedReason(absl::string_view id, absl::string_view deletion_id) {
  return absl::StrCat("sample ", id, " was deleted by deletion ", deletion_id,
                      "; ids are never reused");
}

}  // namespace

struct LineageStore::Impl {
  std::string path;
  std::unique_ptr<rocksdb::DB> db;
  // Column family handles in descriptor order; released before the DB
  // closes. The named pointers below alias entries of this vector.
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::ColumnFamilyHandle* samples = nullptr;
  rocksdb::ColumnFamilyHandle* owners = nullptr;
  rocksdb::ColumnFamilyHandle* slices = nullptr;
  rocksdb::ColumnFamilyHandle* deletions = nullptr;
  rocksdb::ColumnFamilyHandle* meta = nullptr;

  // RocksDB makes single reads and writes thread-safe, but Ingest,
  // RecordDeletion, UpdateDeletion and Purge read state, decide, then write.
  // This lock makes each of those check-then-write sequences atomic with
  // respect to the others. Plain reads do not take it.
  absl::Mutex mutation_mu;

  ~Impl() {
    if (db == nullptr) return;
    for (rocksdb::ColumnFamilyHandle* handle : handles) {
      db->DestroyColumnFamilyHandle(handle);
    }
    db->Close();
  }

  // Looks up the records for `ids` in one MultiGet; nullopt for unknown ids.
  absl::StatusOr<std::vector<std::optional<SampleRecord>>> GetRecords(
      absl::Span<const std::string> ids) {
    std::vector<rocksdb::ColumnFamilyHandle*> cfs(ids.size(), samples);
    std::vector<rocksdb::Slice> keys;
    keys.reserve(ids.size());
    for (const std::string& id : ids) keys.emplace_back(id);
    std::vector<std::string> values;
    std::vector<rocksdb::Status> statuses =
        db->MultiGet(rocksdb::ReadOptions(), cfs, keys, &values);
    std::vector<std::optional<SampleRecord>> records(ids.size());
    for (size_t i = 0; i < ids.size(); ++i) {
      if (statuses[i].IsNotFound()) continue;
      OUBLI_RETURN_IF_ERROR(
          FromRocks(statuses[i], absl::StrCat("read sample '", ids[i], "'")));
      OUBLI_ASSIGN_OR_RETURN(records[i], DecodeSampleRecord(ids[i], values[i]));
    }
    return records;
  }

  // Rewrites each deleted sample in `ids` to a kPurged tombstone in one
  // synced batch. All or nothing: unknown or active ids fail the call
  // before anything is written. Already purged ids are skipped.
  absl::Status WritePurgeTombstones(const std::vector<std::string>& ids) {
    absl::MutexLock lock(&mutation_mu);
    OUBLI_ASSIGN_OR_RETURN(std::vector<std::optional<SampleRecord>> records,
                           GetRecords(ids));
    for (size_t i = 0; i < ids.size(); ++i) {
      if (!records[i].has_value()) {
        return absl::NotFoundError(
            absl::StrCat("purge: sample '", ids[i], "' is unknown"));
      }
      if (records[i]->state == SampleState::kActive) {
        return absl::FailedPreconditionError(absl::StrCat(
            "purge: sample '", ids[i], "' is active; delete it first"));
      }
    }
    rocksdb::WriteBatch batch;
    for (size_t i = 0; i < ids.size(); ++i) {
      SampleRecord& record = *records[i];
      if (record.state == SampleState::kPurged) continue;
      // The owner index entry went away at deletion time; the tombstone
      // keeps only what repeated deletes need (id, assignment, deletion id).
      record.state = SampleState::kPurged;
      record.sample.owner.clear();
      record.sample.features.clear();
      record.sample.prompt_tokens = 0;
      batch.Put(samples, ToSlice(ids[i]), EncodeSampleRecord(record));
    }
    if (batch.Count() == 0) return absl::OkStatus();
    return Write(&batch, /*sync=*/true,
                 absl::StrCat("write ", batch.Count(), " purge tombstones"));
  }

  absl::Status Write(rocksdb::WriteBatch* batch, bool sync,
                     absl::string_view what) {
    rocksdb::WriteOptions options;
    options.sync = sync;
    return FromRocks(db->Write(options, batch), what);
  }

  // Collects the keys of `cf` that start with `prefix`, minus the prefix.
  absl::StatusOr<std::vector<std::string>> KeysWithPrefix(
      rocksdb::ColumnFamilyHandle* cf, absl::string_view prefix,
      absl::string_view what) {
    const std::string upper = PrefixUpperBound(prefix);
    rocksdb::Slice upper_slice(upper);
    rocksdb::ReadOptions options;
    if (!upper.empty()) options.iterate_upper_bound = &upper_slice;
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(options, cf));
    std::vector<std::string> out;
    for (it->Seek(ToSlice(prefix)); it->Valid(); it->Next()) {
      absl::string_view key = ToView(it->key());
      if (key.substr(0, prefix.size()) != prefix) break;
      out.emplace_back(key.substr(prefix.size()));
    }
    OUBLI_RETURN_IF_ERROR(FromRocks(it->status(), what));
    return out;
  }
};

absl::StatusOr<std::unique_ptr<LineageStore>> LineageStore::Open(
    const Options& options) {
  if (options.path.empty()) {
    return absl::InvalidArgumentError("lineage store path is empty");
  }
  OUBLI_RETURN_IF_ERROR(
      CheckNiceIncrement("lineage store background_nice",
                         options.background_priority.nice_increment));
  rocksdb::DBOptions db_options;
  db_options.create_if_missing = options.create_if_missing;
  db_options.create_missing_column_families = true;
  // Purge relies on obsolete WAL files being deleted, not recycled or
  // archived: a recycled or archived WAL would keep deleted payload bytes.
  db_options.recycle_log_file_num = 0;
  db_options.WAL_ttl_seconds = 0;
  db_options.WAL_size_limit_MB = 0;
  // Owner index keys embed the owner, and SST boundary keys are recorded in
  // the MANIFEST, which otherwise only grows. Rolling the MANIFEST on every
  // version edit means each new one starts from a snapshot of live files
  // only, so Purge's final compaction leaves no MANIFEST naming a purged
  // owner. The cost is rewriting a few KB of file metadata per flush or
  // compaction.
  db_options.max_manifest_file_size = 1;
  db_options.env = RocksDbEnvForBackground(options.background_priority);

  // Every existing column family must be opened; keep any we do not know
  // about (e.g. from a newer version) so Open still succeeds.
  std::vector<std::string> names = {rocksdb::kDefaultColumnFamilyName,
                                    kSamplesCf,
                                    kOwnersCf,
                                    kSlicesCf,
                                    kDeletionsCf,
                                    kMetaCf};
  std::vector<std::string> existing;
  if (rocksdb::DB::ListColumnFamilies(db_options, options.path, &existing)
          .ok()) {
    for (const std::string& name : existing) {
      if (std::find(names.begin(), names.end(), name) == names.end()) {
        names.push_back(name);
      }
    }
  }
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (const std::string& name : names) {
    descriptors.emplace_back(name, rocksdb::ColumnFamilyOptions());
  }

  auto impl = std::make_unique<Impl>();
  impl->path = options.path;
  rocksdb::DB* raw_db = nullptr;
  rocksdb::Status status = rocksdb::DB::Open(
      db_options, options.path, descriptors, &impl->handles, &raw_db);
  OUBLI_RETURN_IF_ERROR(
      FromRocks(status, absl::StrCat("open lineage store at ", options.path)));
  impl->db.reset(raw_db);
  // Handles come back in descriptor order.
  impl->samples = impl->handles[1];
  impl->owners = impl->handles[2];
  impl->slices = impl->handles[3];
  impl->deletions = impl->handles[4];
  impl->meta = impl->handles[5];
  return std::unique_ptr<LineageStore>(new LineageStore(std::move(impl)));
}

LineageStore::LineageStore(std::unique_ptr<Impl> impl)
    : impl_(std::move(impl)) {}

LineageStore::~LineageStore() = default;

const std::string& LineageStore::path() const { return impl_->path; }

// ---- meta

absl::Status LineageStore::PutMeta(absl::string_view key,
                                   absl::string_view value) {
  rocksdb::WriteOptions options;
  options.sync = true;
  return FromRocks(
      impl_->db->Put(options, impl_->meta, ToSlice(key), ToSlice(value)),
      absl::StrCat("put meta key '", key, "'"));
}

absl::StatusOr<std::optional<std::string>> LineageStore::GetMeta(
    absl::string_view key) {
  std::string value;
  rocksdb::Status s =
      impl_->db->Get(rocksdb::ReadOptions(), impl_->meta, ToSlice(key), &value);
  if (s.IsNotFound()) return std::nullopt;
  OUBLI_RETURN_IF_ERROR(FromRocks(s, absl::StrCat("get meta key '", key, "'")));
  return value;
}

absl::Status LineageStore::DeleteMeta(absl::string_view key) {
  rocksdb::WriteOptions options;
  options.sync = true;
  return FromRocks(impl_->db->Delete(options, impl_->meta, ToSlice(key)),
                   absl::StrCat("delete meta key '", key, "'"));
}

absl::StatusOr<std::vector<std::pair<std::string, std::string>>>
LineageStore::ListMeta(absl::string_view prefix) {
  std::vector<std::pair<std::string, std::string>> out;
  std::unique_ptr<rocksdb::Iterator> it(
      impl_->db->NewIterator(rocksdb::ReadOptions(), impl_->meta));
  for (it->Seek(ToSlice(prefix));
       it->Valid() && it->key().starts_with(ToSlice(prefix)); it->Next()) {
    out.emplace_back(it->key().ToString(), it->value().ToString());
  }
  OUBLI_RETURN_IF_ERROR(FromRocks(it->status(), "list meta keys"));
  return out;
}

absl::StatusOr<std::vector<std::pair<std::string, std::string>>>
LineageStore::ListMeta(absl::string_view prefix, absl::string_view start,
                       size_t limit) {
  std::vector<std::pair<std::string, std::string>> out;
  std::unique_ptr<rocksdb::Iterator> it(
      impl_->db->NewIterator(rocksdb::ReadOptions(), impl_->meta));
  for (it->Seek(ToSlice(std::max(prefix, start)));
       it->Valid() && it->key().starts_with(ToSlice(prefix)) &&
       out.size() < limit;
       it->Next()) {
    out.emplace_back(it->key().ToString(), it->value().ToString());
  }
  OUBLI_RETURN_IF_ERROR(FromRocks(it->status(), "list meta keys"));
  return out;
}

absl::Status LineageStore::PutMetas(const MetaPuts& puts) {
  if (puts.empty()) return absl::OkStatus();
  rocksdb::WriteBatch batch;
  for (const auto& [key, value] : puts) {
    batch.Put(impl_->meta, ToSlice(key), ToSlice(value));
  }
  return impl_->Write(&batch, /*sync=*/true,
                      absl::StrCat("put ", puts.size(), " meta keys"));
}

// ---- samples

absl::StatusOr<IngestResult> LineageStore::Ingest(
    absl::Span<const AssignedSample> samples) {
  IngestResult result;
  // Validate first so only well-formed ids reach the database.
  std::vector<const AssignedSample*> valid;
  valid.reserve(samples.size());
  for (const AssignedSample& assigned : samples) {
    if (absl::Status s = ValidateSample(assigned.sample); !s.ok()) {
      result.rejected.emplace_back(assigned.sample.id,
                                   std::string(s.message()));
      continue;
    }
    if (assigned.where.shard < 0 || assigned.where.slice < 0) {
      result.rejected.emplace_back(
          assigned.sample.id, absl::StrCat("sample '", assigned.sample.id,
                                           "' has a negative assignment (",
                                           SliceName(assigned.where), ")"));
      continue;
    }
    valid.push_back(&assigned);
  }

  absl::MutexLock lock(&impl_->mutation_mu);
  std::vector<std::string> ids;
  ids.reserve(valid.size());
  for (const AssignedSample* assigned : valid)
    ids.push_back(assigned->sample.id);
  OUBLI_ASSIGN_OR_RETURN(std::vector<std::optional<SampleRecord>> stored,
                         impl_->GetRecords(ids));

  rocksdb::WriteBatch batch;
  // Samples accepted earlier in this call, so repeated ids within one
  // request follow the same duplicate/conflict rules as stored ones.
  std::map<std::string, SampleRecord> pending;
  for (size_t i = 0; i < valid.size(); ++i) {
    const AssignedSample& incoming = *valid[i];
    const std::string& id = incoming.sample.id;
    const SampleRecord* existing = nullptr;
    if (auto it = pending.find(id); it != pending.end()) {
      existing = &it->second;
    } else if (stored[i].has_value()) {
      existing = &*stored[i];
    }
    if (existing != nullptr) {
      if (existing->state != SampleState::kActive) {
        result.rejected.emplace_back(id,
                                     DeletedReason(id, existing->deletion_id));
        continue;
      }
      std::vector<std::string> differing = DifferingFields(*existing, incoming);
      if (differing.empty()) {
        ++result.duplicates;
      } else {
        result.rejected.emplace_back(
            id, absl::StrCat("sample ", id,
                             " already exists with different content (",
                             absl::StrJoin(differing, ", "), " differ)"));
      }
      continue;
    }
    SampleRecord record;
    record.sample = incoming.sample;
    record.where = incoming.where;
    record.state = SampleState::kActive;
    batch.Put(impl_->samples, ToSlice(id), EncodeSampleRecord(record));
    batch.Put(impl_->owners, OwnerKey(record.sample.owner, id),
              rocksdb::Slice());
    batch.Put(impl_->slices, SliceKey(record.where, id), rocksdb::Slice());
    pending.emplace(id, std::move(record));
    ++result.accepted;
  }
  if (batch.Count() > 0) {
    OUBLI_RETURN_IF_ERROR(
        impl_->Write(&batch, /*sync=*/false,
                     absl::StrCat("ingest ", result.accepted, " samples")));
  }
  return result;
}

absl::StatusOr<std::optional<SampleRecord>> LineageStore::GetSample(
    absl::string_view id) {
  std::string value;
  rocksdb::Status s = impl_->db->Get(rocksdb::ReadOptions(), impl_->samples,
                                     ToSlice(id), &value);
  if (s.IsNotFound()) return std::nullopt;
  OUBLI_RETURN_IF_ERROR(FromRocks(s, absl::StrCat("read sample '", id, "'")));
  OUBLI_ASSIGN_OR_RETURN(SampleRecord record, DecodeSampleRecord(id, value));
  return record;
}

absl::StatusOr<std::vector<Sample>> LineageStore::ReadActiveSamples(
    absl::Span<const std::string> ids) {
  OUBLI_ASSIGN_OR_RETURN(std::vector<std::optional<SampleRecord>> records,
                         impl_->GetRecords(ids));
  std::vector<Sample> out;
  out.reserve(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    if (!records[i].has_value()) {
      return absl::NotFoundError(
          absl::StrCat("sample '", ids[i], "' is not in the lineage store"));
    }
    if (records[i]->state != SampleState::kActive) {
      return absl::FailedPreconditionError(
          absl::StrCat("sample '", ids[i], "' is not active (deleted by ",
                       records[i]->deletion_id, ")"));
    }
    out.push_back(std::move(records[i]->sample));
  }
  return out;
}

absl::StatusOr<std::vector<std::string>> LineageStore::SliceMembers(
    SliceRef slice) {
  if (slice.shard < 0 || slice.slice < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("negative slice reference: ", SliceName(slice)));
  }
  return impl_->KeysWithPrefix(
      impl_->slices, SlicePrefix(slice),
      absl::StrCat("scan members of ", SliceName(slice)));
}

absl::StatusOr<std::vector<std::string>> LineageStore::OwnerSamples(
    absl::string_view owner) {
  OUBLI_RETURN_IF_ERROR(ValidateOwner(owner));
  return impl_->KeysWithPrefix(
      impl_->owners, OwnerPrefix(owner),
      absl::StrCat("scan samples of owner '", owner, "'"));
}

absl::StatusOr<int64_t> LineageStore::CountActiveSamples() {
  // Every active sample has exactly one (small, value-less) owner entry, so
  // scanning the owners index avoids reading payloads.
  std::unique_ptr<rocksdb::Iterator> it(
      impl_->db->NewIterator(rocksdb::ReadOptions(), impl_->owners));
  int64_t count = 0;
  for (it->SeekToFirst(); it->Valid(); it->Next()) ++count;
  OUBLI_RETURN_IF_ERROR(FromRocks(it->status(), "count active samples"));
  return count;
}

// ---- deletion log

absl::Status LineageStore::RecordDeletion(
    absl::string_view deletion_id, absl::string_view record,
    absl::Span<const std::string> sample_ids) {
  NewDeletion deletion{std::string(deletion_id),
                       std::string(record),
                       {sample_ids.begin(), sample_ids.end()}};
  return RecordDeletions(absl::MakeConstSpan(&deletion, 1));
}

absl::Status LineageStore::RecordDeletions(
    absl::Span<const NewDeletion> deletions, const MetaPuts& meta) {
  if (deletions.empty()) return absl::OkStatus();
  absl::MutexLock lock(&impl_->mutation_mu);
  rocksdb::WriteBatch batch;
  for (const auto& [key, value] : meta) {
    batch.Put(impl_->meta, ToSlice(key), ToSlice(value));
  }
  absl::flat_hash_set<std::string> claimed;  // samples of earlier deletions
  int64_t total_samples = 0;
  for (const NewDeletion& deletion : deletions) {
    const std::string& deletion_id = deletion.deletion_id;
    if (deletion_id.empty()) {
      return absl::InvalidArgumentError("deletion id is empty");
    }
    OUBLI_ASSIGN_OR_RETURN(std::optional<std::string> previous,
                           GetDeletion(deletion_id));
    if (previous.has_value()) {
      return absl::AlreadyExistsError(
          absl::StrCat("deletion ", deletion_id,
                       " is already recorded; use UpdateDeletion"));
    }
    // A sample listed twice is flipped once.
    std::vector<std::string> ids = deletion.sample_ids;
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    OUBLI_ASSIGN_OR_RETURN(std::vector<std::optional<SampleRecord>> records,
                           impl_->GetRecords(ids));
    batch.Put(impl_->deletions, ToSlice(deletion_id), ToSlice(deletion.record));
    for (size_t i = 0; i < ids.size(); ++i) {
      if (!records[i].has_value()) {
        return absl::NotFoundError(absl::StrCat(
            "deletion ", deletion_id, ": sample '", ids[i], "' is unknown"));
      }
      SampleRecord& sample_record = *records[i];
      if (sample_record.state != SampleState::kActive ||
          !claimed.insert(ids[i]).second) {
        return absl::FailedPreconditionError(
            absl::StrCat("deletion ", deletion_id, ": sample '", ids[i],
                         "' is not active (already deleted by ",
                         sample_record.state != SampleState::kActive
                             ? sample_record.deletion_id
                             : "an earlier deletion of this batch",
                         ")"));
      }
      batch.Delete(impl_->owners, OwnerKey(sample_record.sample.owner, ids[i]));
      batch.Delete(impl_->slices, SliceKey(sample_record.where, ids[i]));
      sample_record.state = SampleState::kDeleted;
      sample_record.deletion_id = deletion_id;
      batch.Put(impl_->samples, ToSlice(ids[i]), EncodeSampleRecord(sample_record));
    }
    total_samples += static_cast<int64_t>(ids.size());
  }
  return impl_->Write(
      &batch, /*sync=*/true,
      absl::StrCat("record ", deletions.size(), " deletion(s) from ",
                   deletions.front().deletion_id, " of ", total_samples,
                   " samples"));
}

absl::Status LineageStore::UpdateDeletion(absl::string_view deletion_id,
                                          absl::string_view record) {
  const std::pair<std::string, std::string> one(deletion_id, record);
  return UpdateDeletions(absl::MakeConstSpan(&one, 1));
}

absl::Status LineageStore::UpdateDeletions(
    absl::Span<const std::pair<std::string, std::string>> records,
    const MetaPuts& meta) {
  if (records.empty()) return absl::OkStatus();
  absl::MutexLock lock(&impl_->mutation_mu);
  rocksdb::WriteBatch batch;
  for (const auto& [key, value] : meta) {
    batch.Put(impl_->meta, ToSlice(key), ToSlice(value));
  }
  for (const auto& [deletion_id, record] : records) {
    OUBLI_ASSIGN_OR_RETURN(std::optional<std::string> previous,
                           GetDeletion(deletion_id));
    if (!previous.has_value()) {
      return absl::NotFoundError(
          absl::StrCat("deletion ", deletion_id, " is not recorded"));
    }
    batch.Put(impl_->deletions, ToSlice(deletion_id), ToSlice(record));
  }
  return impl_->Write(
      &batch, /*sync=*/true,
      absl::StrCat("update ", records.size(), " deletion record(s) from ",
                   records.front().first));
}

absl::StatusOr<std::optional<std::string>> LineageStore::GetDeletion(
    absl::string_view deletion_id) {
  std::string value;
  rocksdb::Status s = impl_->db->Get(rocksdb::ReadOptions(), impl_->deletions,
                                     ToSlice(deletion_id), &value);
  if (s.IsNotFound()) return std::nullopt;
  OUBLI_RETURN_IF_ERROR(
      FromRocks(s, absl::StrCat("read deletion ", deletion_id)));
  return value;
}

absl::Status LineageStore::ForEachDeletion(
    const std::function<void(absl::string_view, absl::string_view)>& fn) {
  std::unique_ptr<rocksdb::Iterator> it(
      impl_->db->NewIterator(rocksdb::ReadOptions(), impl_->deletions));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    fn(ToView(it->key()), ToView(it->value()));
  }
  return FromRocks(it->status(), "scan deletion log");
}

absl::Status LineageStore::ForEachDeletionBackward(
    absl::string_view before,
    const std::function<bool(absl::string_view, absl::string_view)>& fn) {
  std::unique_ptr<rocksdb::Iterator> it(
      impl_->db->NewIterator(rocksdb::ReadOptions(), impl_->deletions));
  if (before.empty()) {
    it->SeekToLast();
  } else {
    it->SeekForPrev(ToSlice(before));
    if (it->Valid() && it->key() == ToSlice(before)) it->Prev();
  }
  for (; it->Valid(); it->Prev()) {
    if (!fn(ToView(it->key()), ToView(it->value()))) break;
  }
  return FromRocks(it->status(), "scan deletion log backward");
}

absl::Status LineageStore::Purge(absl::Span<const std::string> sample_ids) {
  if (sample_ids.empty()) return absl::OkStatus();
  std::vector<std::string> ids(sample_ids.begin(), sample_ids.end());
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  OUBLI_RETURN_IF_ERROR(impl_->WritePurgeTombstones(ids));

  // The flush and compaction run without the mutation lock (they can take a
  // while and need no exclusion), and even when every id was already
  // purged: a crash between the tombstone write and the compaction would
  // otherwise leave payload bytes on disk that a retried Purge would never
  // remove.
  //
  // Flushing every column family lets RocksDB retire all WAL files written
  // before the tombstones (a WAL is kept while any family still depends on
  // it). With archiving and recycling off they are deleted, not kept.
  rocksdb::FlushOptions flush_options;
  flush_options.wait = true;
  OUBLI_RETURN_IF_ERROR(
      FromRocks(impl_->db->Flush(flush_options, impl_->handles),
                "purge: flush all column families"));

  // Compaction to the bottommost level merges each tombstone with every
  // older version of its key, dropping the payload; the input SSTs become
  // obsolete.
  rocksdb::CompactRangeOptions compact_options;
  compact_options.bottommost_level_compaction =
      rocksdb::BottommostLevelCompaction::kForce;
  // Owner index keys embed the owner string. Purged tombstones no longer
  // name the owner, so the whole (key-only, small) index is compacted. This
  // runs before the samples compaction so that the MANIFEST snapshot written
  // by that last edit (see max_manifest_file_size) lists only the new owner
  // files.
  OUBLI_RETURN_IF_ERROR(FromRocks(
      impl_->db->CompactRange(compact_options, impl_->owners, nullptr, nullptr),
      "purge: compact owners index"));
  rocksdb::Slice first(ids.front());
  rocksdb::Slice last(ids.back());
  OUBLI_RETURN_IF_ERROR(FromRocks(
      impl_->db->CompactRange(compact_options, impl_->samples, &first, &last),
      absl::StrCat("purge: compact samples '", ids.front(), "'..'", ids.back(),
                   "'")));

  // Background jobs usually delete obsolete files on their own, but not
  // necessarily before CompactRange returns. Re-enabling file deletions runs
  // a full directory scan and deletes every obsolete WAL, SST and MANIFEST
  // in this thread, so Purge returns only once they are gone.
  OUBLI_RETURN_IF_ERROR(FromRocks(impl_->db->DisableFileDeletions(),
                                  "purge: pause file deletions"));
  OUBLI_RETURN_IF_ERROR(
      FromRocks(impl_->db->EnableFileDeletions(/*force=*/false),
                "purge: delete obsolete files"));
  return absl::OkStatus();
}

absl::StatusOr<int64_t> LineageStore::DiskBytes() {
  std::error_code error;
  int64_t total = 0;
  for (std::filesystem::recursive_directory_iterator it(impl_->path, error),
       end;
       !error && it != end; it.increment(error)) {
    std::error_code file_error;
    if (!it->is_regular_file(file_error) || file_error) continue;
    const uintmax_t size = it->file_size(file_error);
    // Files can vanish mid-scan (compaction deletes inputs); skip them.
    if (!file_error) total += static_cast<int64_t>(size);
  }
  if (error) {
    return absl::InternalError(absl::StrCat(
        "list lineage store files in ", impl_->path, ": ", error.message()));
  }
  return total;
}

}  // namespace oubli::storage
