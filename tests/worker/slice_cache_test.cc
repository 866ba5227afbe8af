#include "worker/slice_cache.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <functional>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tests/testing/test_util.h"

namespace oubli::worker {
namespace {

using ::testing::IsEmpty;

// A slice of one sample whose features are `width` bytes.
std::shared_ptr<const storage::EncodedSlice> Slice(const std::string& id,
                                                   int width) {
  Sample s;
  s.id = id;
  s.features.assign(width, 'x');
  auto slice = storage::EncodedSlice::FromSamples({s}, width);
  EXPECT_TRUE(slice.ok()) << slice.status();
  return *slice;
}

TEST(SliceCacheTest, EvictsLeastRecentlyUsedBeyondItsBytes) {
  auto a = Slice("a", 1000), b = Slice("b", 1000), c = Slice("c", 1000);
  const int64_t one = static_cast<int64_t>(a->bytes().size());
  SliceCache cache(2 * one + one / 2);
  ASSERT_TRUE(cache.Insert("m", a, 1).ok());
  ASSERT_TRUE(cache.Insert("m", b, 1).ok());
  ASSERT_NE(cache.Find("m", a->digest()), nullptr);  // a is now recent
  ASSERT_TRUE(cache.Insert("m", c, 1).ok());
  EXPECT_NE(cache.Find("m", a->digest()), nullptr);
  EXPECT_EQ(cache.Find("m", b->digest()), nullptr);
  EXPECT_NE(cache.Find("m", c->digest()), nullptr);
  EXPECT_EQ(cache.slices(), 2);
  EXPECT_EQ(cache.bytes(), 2 * one);
  // Scoped by model.
  EXPECT_EQ(cache.Find("other", a->digest()), nullptr);
  EXPECT_EQ(SliceCache(one - 1).Insert("m", a, 1).code(),
            absl::StatusCode::kResourceExhausted);
}

TEST(SliceCacheTest, PurgeKeepsOnlyCurrentSlicesAndRefusesOlderUploads) {
  auto old_version = Slice("a", 10), current = Slice("b", 10),
       other_model = Slice("c", 10), late_current = Slice("d", 10);
  SliceCache cache(1 << 20);
  ASSERT_TRUE(cache.Insert("m", old_version, 5).ok());
  ASSERT_TRUE(cache.Insert("m", current, 5).ok());
  ASSERT_TRUE(cache.Insert("n", other_model, 5).ok());
  absl::StatusOr<int> dropped = cache.DropModelExcept(
      "m", {current->digest(), late_current->digest()}, 9);
  ASSERT_TRUE(dropped.ok()) << dropped.status();
  EXPECT_EQ(*dropped, 1);
  EXPECT_EQ(cache.Find("m", old_version->digest()), nullptr);
  EXPECT_NE(cache.Find("m", current->digest()), nullptr);
  EXPECT_NE(cache.Find("n", other_model->digest()), nullptr);
  // An upload begun before the purge may hold what it deleted...
  EXPECT_TRUE(cache.IsStale("m", old_version->digest(), 8));
  EXPECT_EQ(cache.Insert("m", old_version, 8).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(cache.Find("m", old_version->digest()), nullptr);
  // ...unless the purge kept its digest.
  EXPECT_TRUE(cache.Insert("m", late_current, 8).ok());
  EXPECT_TRUE(cache.Insert("m", old_version, 9).ok());
  // Other models' uploads are not held back.
  EXPECT_FALSE(cache.IsStale("n", old_version->digest(), 8));
}

TEST(SliceCacheTest, ADeadWorkerTakesNothingUntilItRegistersAgain) {
  auto early = Slice("a", 10), late = Slice("b", 10);
  SliceCache cache(1 << 20);
  ASSERT_TRUE(cache.Insert("m", early, 3).ok());
  ASSERT_TRUE(cache.Insert("n", late, 7).ok());
  ASSERT_TRUE(cache.DropAllAndClose().ok());
  EXPECT_EQ(cache.slices(), 0);
  EXPECT_EQ(cache.bytes(), 0);
  // An upload that was on its way when the lease ran out.
  EXPECT_EQ(cache.Insert("m", early, 100).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(cache.slices(), 0);
  // Registered again: only uploads begun since are taken, whatever the
  // epochs before (a new coordinator's may be lower).
  ASSERT_TRUE(cache.Reopen(5).ok());
  EXPECT_EQ(cache.Insert("m", early, 4).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(cache.Insert("m", early, 5).ok());
  EXPECT_TRUE(cache.IsStale("n", late->digest(), 4));
}

// ------------------------------------------------------------ disk tier

namespace fs = std::filesystem;

// A slice of one sample whose features are `width` bytes no other slice
// here holds (so a byte scan finds exactly its copies).
std::shared_ptr<const storage::EncodedSlice> UniqueSlice(const std::string& id,
                                                         int width) {
  Sample s;
  s.id = id;
  s.features = testing_util::RandomBytes(width, std::hash<std::string>()(id));
  auto slice = storage::EncodedSlice::FromSamples({s}, width);
  EXPECT_TRUE(slice.ok()) << slice.status();
  return *slice;
}

// Regular files under `dir`, recursively (none when it does not exist).
std::vector<fs::path> RegularFiles(const fs::path& dir) {
  std::vector<fs::path> files;
  std::error_code error;
  for (fs::recursive_directory_iterator it(dir, error), end;
       !error && it != end; it.increment(error)) {
    if (it->is_regular_file(error)) files.push_back(it->path());
  }
  return files;
}

class SliceDiskTest : public ::testing::Test {
 protected:
  // A cache on dir_/slices holding `memory_slices` slices of kWidth in
  // memory and `disk_slices` on disk. (Slices of kWidth with one-letter ids
  // all have one size, one_.)
  std::unique_ptr<SliceCache> OpenCache(double memory_slices,
                                        double disk_slices) {
    auto cache = SliceCache::Open(static_cast<int64_t>(memory_slices * one_),
                                  disk_dir_.string(),
                                  static_cast<int64_t>(disk_slices * one_));
    EXPECT_TRUE(cache.ok()) << cache.status();
    return cache.ok() ? *std::move(cache) : nullptr;
  }

  // The only file of `slice` under the model's directory ("" if none).
  std::string FileOf(const SliceCache& cache, const std::string& model_id,
                     const storage::EncodedSlice& slice) {
    std::string found;
    for (const fs::path& file : RegularFiles(cache.ModelDirectory(model_id))) {
      if (file.filename().string().starts_with(slice.digest())) {
        EXPECT_TRUE(found.empty()) << "two files of " << slice.digest();
        found = file.string();
      }
    }
    return found;
  }

  // Files anywhere under the cache's directory holding `slice`'s samples.
  std::vector<std::string> Copies(const storage::EncodedSlice& slice) {
    const internal::SliceRows rows = slice.Parse();
    std::vector<Sample> samples;
    storage::AppendSamples(rows, &samples);
    return testing_util::FilesContaining(disk_dir_, samples.at(0).features);
  }

  static constexpr int kWidth = 4000;
  testing_util::ScopedTempDir dir_;
  const fs::path disk_dir_ = dir_.path() / "slices";
  const int64_t one_ =
      static_cast<int64_t>(UniqueSlice("p", kWidth)->bytes().size());
  const int64_t file_ = one_ + SliceCache::kFileOverhead;  // its file's size
};

TEST_F(SliceDiskTest, ASliceMemoryEvictedIsReadBackVerifiedAndPromoted) {
  auto cache = OpenCache(1.5, 10);
  auto a = UniqueSlice("a", kWidth), b = UniqueSlice("b", kWidth);
  ASSERT_TRUE(cache->Insert("m", a, 1).ok());
  ASSERT_TRUE(cache->Insert("m", b, 1).ok());  // a leaves memory
  EXPECT_EQ(cache->slices(), 1);
  EXPECT_EQ(cache->disk_slices(), 2);  // every slice taken has its file
  EXPECT_EQ(cache->disk_bytes(), 2 * file_);
  EXPECT_NE(FileOf(*cache, "m", *a), "");

  SliceSource source;
  auto found = cache->Find("m", a->digest(), &source);
  ASSERT_NE(found, nullptr);
  EXPECT_EQ(source, SliceSource::kDisk);
  EXPECT_EQ(found->bytes(), a->bytes());
  // Promoted (b left memory for it), and its file stays.
  EXPECT_NE(cache->Find("m", a->digest(), &source), nullptr);
  EXPECT_EQ(source, SliceSource::kMemory);
  EXPECT_EQ(cache->disk_slices(), 2);
  ASSERT_NE(cache->Find("m", b->digest(), &source), nullptr);
  EXPECT_EQ(source, SliceSource::kDisk);
  // Scoped by model on disk too.
  EXPECT_EQ(cache->Find("other", a->digest(), &source), nullptr);
  EXPECT_EQ(source, SliceSource::kMiss);
}

TEST_F(SliceDiskTest, AFileThatFailsVerificationIsAMissAndIsShredded) {
  auto cache = OpenCache(1.5, 10);
  auto a = UniqueSlice("a", kWidth), b = UniqueSlice("b", kWidth),
       c = UniqueSlice("c", kWidth);
  for (const auto& slice : {a, b, c}) {
    ASSERT_TRUE(cache->Insert("m", slice, 1).ok());
  }
  // a's file holds another slice's bytes (not sealed, and not its
  // digest); b's is cut short.
  const std::string a_file = FileOf(*cache, "m", *a);
  const std::string b_file = FileOf(*cache, "m", *b);
  ASSERT_NE(a_file, "");
  ASSERT_NE(b_file, "");
  testing_util::WriteWholeFile(a_file, c->bytes());
  fs::resize_file(b_file, b->bytes().size() / 2);

  for (const auto& slice : {a, b}) {
    SliceSource source;
    EXPECT_EQ(cache->Find("m", slice->digest(), &source), nullptr);
    EXPECT_EQ(source, SliceSource::kCorruptFile);
    EXPECT_EQ(FileOf(*cache, "m", *slice), "");
    EXPECT_EQ(cache->Find("m", slice->digest(), &source), nullptr);
    EXPECT_EQ(source, SliceSource::kMiss);
  }
  EXPECT_EQ(cache->disk_slices(), 1);
  EXPECT_EQ(cache->disk_bytes(), file_);
  // Taken again, it is served again.
  ASSERT_TRUE(cache->Insert("m", a, 1).ok());
  ASSERT_TRUE(cache->Insert("m", c, 1).ok());
  SliceSource source;
  EXPECT_NE(cache->Find("m", a->digest(), &source), nullptr);
  EXPECT_EQ(source, SliceSource::kDisk);
}

// No plaintext on disk: a file is sealed under a key only the cache
// holds, bound to its slice, so one copied under another slice's name
// does not unseal.
TEST_F(SliceDiskTest, FilesAreSealedAndBoundToTheirSlice) {
  auto cache = OpenCache(1.5, 10);
  auto a = UniqueSlice("a", kWidth), b = UniqueSlice("b", kWidth),
       c = UniqueSlice("c", kWidth);
  for (const auto& slice : {a, b, c}) {
    ASSERT_TRUE(cache->Insert("m", slice, 1).ok());
    const std::string file = FileOf(*cache, "m", *slice);
    ASSERT_NE(file, "");
    EXPECT_EQ(static_cast<int64_t>(fs::file_size(file)), file_);
    EXPECT_THAT(Copies(*slice), IsEmpty());
  }
  // a and b are on disk only now.
  fs::copy_file(FileOf(*cache, "m", *b), FileOf(*cache, "m", *a),
                fs::copy_options::overwrite_existing);
  SliceSource source;
  EXPECT_EQ(cache->Find("m", a->digest(), &source), nullptr);
  EXPECT_EQ(source, SliceSource::kCorruptFile);
  EXPECT_NE(cache->Find("m", b->digest(), &source), nullptr);
  EXPECT_EQ(source, SliceSource::kDisk);
}

TEST_F(SliceDiskTest, FilesStayWithinTheirBound) {
  auto cache = OpenCache(1.5, 2.5);
  std::vector<std::shared_ptr<const storage::EncodedSlice>> slices;
  for (int i = 0; i < 4; ++i) {
    slices.push_back(UniqueSlice(std::string(1, 'w' + i), kWidth));
    ASSERT_TRUE(cache->Insert("m", slices.back(), 1).ok());
    EXPECT_LE(cache->disk_bytes(), cache->disk_capacity());
  }
  EXPECT_EQ(cache->disk_slices(), 2);
  int64_t on_disk = 0;
  for (const fs::path& file : RegularFiles(disk_dir_)) {
    on_disk += static_cast<int64_t>(fs::file_size(file));
  }
  EXPECT_EQ(on_disk, 2 * file_);
  // The least recently used went, shredded: no copy of their samples.
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(FileOf(*cache, "m", *slices[i]), "") << i;
    EXPECT_THAT(Copies(*slices[i]), IsEmpty()) << i;
    EXPECT_EQ(cache->Find("m", slices[i]->digest()), nullptr) << i;
  }
  EXPECT_NE(cache->Find("m", slices[2]->digest()), nullptr);
  cache.reset();

  // A slice larger than the disk tier stays in memory only.
  auto big = UniqueSlice("big", 3 * kWidth);
  auto small_disk = OpenCache(10, 2.5);
  ASSERT_TRUE(small_disk->Insert("m", big, 1).ok());
  EXPECT_EQ(small_disk->disk_slices(), 0);
  EXPECT_NE(small_disk->Find("m", big->digest()), nullptr);
}

TEST_F(SliceDiskTest, DroppingAModelShredsItsFilesAndLeavesOthers) {
  auto cache = OpenCache(1.5, 10);
  auto old_version = UniqueSlice("a", kWidth),
       current = UniqueSlice("b", kWidth), other = UniqueSlice("c", kWidth);
  ASSERT_TRUE(cache->Insert("m", old_version, 5).ok());
  ASSERT_TRUE(cache->Insert("m", current, 5).ok());
  ASSERT_TRUE(cache->Insert("n", other, 5).ok());
  ASSERT_NE(FileOf(*cache, "m", *old_version), "");

  absl::StatusOr<int> dropped =
      cache->DropModelExcept("m", {current->digest()}, 9);
  ASSERT_TRUE(dropped.ok()) << dropped.status();
  EXPECT_EQ(*dropped, 1);
  EXPECT_EQ(FileOf(*cache, "m", *old_version), "");
  EXPECT_THAT(Copies(*old_version), IsEmpty());
  EXPECT_EQ(RegularFiles(cache->ModelDirectory("m")).size(), 1u);
  EXPECT_NE(FileOf(*cache, "m", *current), "");
  EXPECT_NE(FileOf(*cache, "n", *other), "");
  EXPECT_EQ(cache->Find("m", old_version->digest()), nullptr);

  // DeleteModel names no slice: nothing of the model is left, not even its
  // directory.
  dropped = cache->DropModelExcept("m", {}, 10);
  ASSERT_TRUE(dropped.ok()) << dropped.status();
  EXPECT_EQ(*dropped, 1);
  EXPECT_FALSE(fs::exists(cache->ModelDirectory("m")));
  EXPECT_THAT(Copies(*current), IsEmpty());
  EXPECT_EQ(cache->disk_slices(), 1);
  EXPECT_NE(cache->Find("n", other->digest()), nullptr);
}

TEST_F(SliceDiskTest, ADeadWorkerShredsEveryFileAndReopenDropsOlderOnes) {
  auto cache = OpenCache(1.5, 10);
  auto early = UniqueSlice("a", kWidth), late = UniqueSlice("b", kWidth);
  ASSERT_TRUE(cache->Insert("m", early, 3).ok());
  ASSERT_TRUE(cache->Insert("n", late, 12).ok());
  // A registration at epoch 10 drops the upload begun before it.
  ASSERT_NE(FileOf(*cache, "m", *early), "");
  ASSERT_TRUE(cache->Reopen(10).ok());
  EXPECT_THAT(Copies(*early), IsEmpty());
  EXPECT_FALSE(fs::exists(cache->ModelDirectory("m")));
  EXPECT_NE(FileOf(*cache, "n", *late), "");

  ASSERT_TRUE(cache->DropAllAndClose().ok());
  EXPECT_THAT(RegularFiles(disk_dir_), IsEmpty());
  EXPECT_EQ(cache->disk_slices(), 0);
  EXPECT_EQ(cache->disk_bytes(), 0);
  EXPECT_EQ(cache->Insert("n", late, 100).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(RegularFiles(disk_dir_), IsEmpty());
}

TEST_F(SliceDiskTest, ARestartShredsEveryFileOfThePreviousRun) {
  auto a = UniqueSlice("a", kWidth);
  {
    auto cache = OpenCache(1.5, 10);
    ASSERT_TRUE(cache->Insert("m", a, 1).ok());
    ASSERT_NE(FileOf(*cache, "m", *a), "");
  }
  // What a crash could leave besides: a temp file, and anything else.
  testing_util::WriteWholeFile(disk_dir_ / "stray.tmp", a->bytes());
  fs::create_directories(disk_dir_ / "nested");
  testing_util::WriteWholeFile(disk_dir_ / "nested" / "x", a->bytes());
  ASSERT_EQ(RegularFiles(disk_dir_).size(), 3u);

  auto cache = OpenCache(1.5, 10);
  EXPECT_THAT(Copies(*a), IsEmpty());
  EXPECT_THAT(RegularFiles(disk_dir_), IsEmpty());
  SliceSource source;
  EXPECT_EQ(cache->Find("m", a->digest(), &source), nullptr);
  EXPECT_EQ(source, SliceSource::kMiss);
  EXPECT_EQ(cache->disk_slices(), 0);

  // With the disk tier turned off, the files are shredded all the same.
  ASSERT_TRUE(cache->Insert("m", a, 1).ok());
  ASSERT_NE(FileOf(*cache, "m", *a), "");
  cache.reset();
  auto memory_only = OpenCache(1.5, 0);
  EXPECT_THAT(Copies(*a), IsEmpty());
  EXPECT_FALSE(fs::exists(disk_dir_));
  ASSERT_TRUE(memory_only->Insert("m", a, 1).ok());
  EXPECT_EQ(memory_only->disk_slices(), 0);
  EXPECT_FALSE(fs::exists(disk_dir_));
}

TEST_F(SliceDiskTest, OpenRefusesADirectoryItCannotClearOrUse) {
  EXPECT_EQ(SliceCache::Open(one_, "", one_).status().code(),
            absl::StatusCode::kInvalidArgument);
  // A regular file where the directory should be.
  testing_util::WriteWholeFile(disk_dir_, "not a directory");
  EXPECT_FALSE(SliceCache::Open(one_, disk_dir_.string(), one_).ok());
}

TEST_F(SliceDiskTest, AFileThatCannotBeWrittenLeavesTheSliceInMemory) {
  auto cache = OpenCache(1.5, 10);
  auto a = UniqueSlice("a", kWidth);
  // The model's directory cannot be made (a file holds its name).
  testing_util::WriteWholeFile(cache->ModelDirectory("m"), "");
  ASSERT_TRUE(cache->Insert("m", a, 1).ok());
  EXPECT_EQ(cache->disk_slices(), 0);
  EXPECT_EQ(cache->disk_bytes(), 0);
  SliceSource source;
  EXPECT_NE(cache->Find("m", a->digest(), &source), nullptr);
  EXPECT_EQ(source, SliceSource::kMemory);
  EXPECT_THAT(Copies(*a), IsEmpty());
}

TEST_F(SliceDiskTest, AFileThatCannotBeShreddedFailsEveryDropUntilItIs) {
  auto cache = OpenCache(1.5, 10);
  auto a = UniqueSlice("a", kWidth), b = UniqueSlice("b", kWidth);
  ASSERT_TRUE(cache->Insert("m", a, 1).ok());
  ASSERT_TRUE(cache->Insert("n", b, 1).ok());
  // A directory where a's file was: ShredFile cannot open it for writing.
  const std::string a_file = FileOf(*cache, "m", *a);
  ASSERT_NE(a_file, "");
  fs::remove(a_file);
  fs::create_directory(a_file);

  EXPECT_FALSE(cache->DropModelExcept("m", {}, 2).ok());
  EXPECT_EQ(cache->Find("m", a->digest()), nullptr);  // never served
  // Every later drop retries it and fails while it stays.
  EXPECT_FALSE(cache->DropModelExcept("n", {b->digest()}, 2).ok());
  EXPECT_FALSE(cache->DropAllAndClose().ok());
  fs::remove(a_file);
  EXPECT_TRUE(cache->DropAllAndClose().ok());
  EXPECT_THAT(RegularFiles(disk_dir_), IsEmpty());
}

// Uploads, reads and a purge at once: when the purge returns, no file of
// the model is left, however the threads interleaved (an upload still
// being written is waited for, a read under way is not served).
TEST_F(SliceDiskTest, APurgeWaitsForFilesBeingWrittenOrRead) {
  auto cache = OpenCache(2.5, 100);
  std::vector<std::shared_ptr<const storage::EncodedSlice>> slices;
  for (int i = 0; i < 12; ++i) {
    slices.push_back(UniqueSlice(absl::StrCat("s", i), kWidth));
  }
  std::atomic<bool> purged{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; !purged.load() && round < 200; ++round) {
        for (size_t i = t; i < slices.size(); i += 3) {
          // Epoch 0: refused once the purge (epoch 1) raised the floor.
          cache->Insert("m", slices[i], 0).IgnoreError();
          cache->Find("m", slices[(i + 1) % slices.size()]->digest());
        }
      }
    });
  }
  while (cache->disk_slices() < 6) std::this_thread::yield();
  absl::StatusOr<int> dropped = cache->DropModelExcept("m", {}, 1);
  purged = true;
  ASSERT_TRUE(dropped.ok()) << dropped.status();
  EXPECT_THAT(RegularFiles(cache->ModelDirectory("m")), IsEmpty());
  for (std::thread& thread : threads) thread.join();
  EXPECT_THAT(RegularFiles(disk_dir_), IsEmpty());
  for (const auto& slice : slices) {
    EXPECT_EQ(cache->Find("m", slice->digest()), nullptr);
  }
  EXPECT_EQ(cache->disk_slices(), 0);
  EXPECT_EQ(cache->slices(), 0);
}

}  // namespace
}  // namespace oubli::worker
