// When the coordinator reads slice bytes: only for the slices a worker
// lacks, and for local training only once the position has a training
// slot; and how big it takes a slice to be when ingest checks the limit
// after deletions. The coordinator's slice cache is given no budget here,
// so every read it does is a read from the lineage store (a miss).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "common/hash.h"
#include "coordinator/chunk_replication.h"
#include "coordinator/encoded_slice_cache.h"
#include "coordinator/engine.h"
#include "coordinator/position_runner.h"
#include "coordinator/prefix_slices.h"
#include "coordinator/remote_training.h"
#include "coordinator/slice_data.h"
#include "storage/checkpoint_store.h"
#include "storage/encoded_slice.h"
#include "tests/testing/test_util.h"
#include "tests/worker/ml/random_samples.h"
#include "worker/ml/s3t_trainer.h"
#include "worker/position_worker.h"

namespace oubli::coordinator {
namespace {

constexpr int kPixels = 16;  // of ml::RandomSamples

// ml::SmallMlpConfig as `shards` x `slices` x `sequences`, samples
// spread by id.
ModelConfig SmallConfig(int shards, int slices, int sequences) {
  ModelConfig c = ml::SmallMlpConfig();
  c.placement.by = Placement::kSample;
  c.backbone.mlp_hidden.assign(slices, 8);  // a layer group per slice
  c.shards = shards;
  c.slices = slices;
  c.sequences = sequences;
  return c;
}

// ml::RandomSamples with ids "<prefix>s0".."<prefix>s<n-1>".
std::vector<Sample> Pixels(int n, const std::string& prefix, uint64_t seed) {
  std::vector<Sample> samples = ml::RandomSamples(n, seed);
  for (Sample& s : samples) s.id = prefix + s.id;
  return samples;
}

// A worker with a slice cache, in this process: asks the coordinator only
// for the slices it lacks, keeps them, and trains on what it holds as a
// worker process does (worker::PositionWorker).
class CachingWorker : public RemoteTrainer {
 public:
  int Capacity(const std::string&) override { return 1; }

  absl::StatusOr<RemoteResult> TrainPosition(
      const RemotePosition& position,
      const std::function<bool()>& cancelled) override {
    absl::MutexLock lock(&mu_);
    std::vector<std::string> missing;
    for (const std::string& digest : position.slice_digests) {
      if (!held_.contains(digest) &&
          std::find(missing.begin(), missing.end(), digest) == missing.end()) {
        missing.push_back(digest);
      }
    }
    if (!missing.empty()) {
      auto read = position.read_slices(missing);
      if (!read.ok()) return read.status();
      if (read->size() != missing.size()) {
        return absl::InternalError("read the wrong number of slices");
      }
      for (size_t i = 0; i < missing.size(); ++i) {
        if ((*read)[i]->digest() != missing[i]) {
          return absl::InternalError("read a slice of another digest");
        }
        held_[missing[i]] = (*read)[i];
      }
      fetched_ += static_cast<int64_t>(missing.size());
    }
    PositionRequest request = position;
    request.read_slices = nullptr;
    for (const std::string& digest : position.slice_digests) {
      request.slices.push_back(held_.at(digest));
    }
    absl::StatusOr<worker::PositionResult> trained =
        worker_.Train(request, cancelled);
    if (!trained.ok()) return trained.status();
    RemoteResult result;
    result.checkpoint = std::move(trained->checkpoint);
    result.samples = trained->samples;
    result.steps = trained->steps;
    result.worker = "caching";
    return result;
  }

  absl::Status DropStaleSlices(const std::string&,
                               const absl::flat_hash_set<std::string>& keep,
                               bool) override {
    absl::MutexLock lock(&mu_);
    absl::erase_if(held_,
                   [&](const auto& entry) { return !keep.contains(entry.first); });
    return absl::OkStatus();
  }

  // Slices the coordinator was asked for.
  int64_t fetched() {
    absl::MutexLock lock(&mu_);
    return fetched_;
  }

 private:
  absl::Mutex mu_;
  worker::PositionWorker worker_;
  absl::flat_hash_map<std::string, std::shared_ptr<const storage::EncodedSlice>>
      held_ ABSL_GUARDED_BY(mu_);
  int64_t fetched_ ABSL_GUARDED_BY(mu_) = 0;
};

class SliceReadsTest : public ::testing::Test {
 protected:
  std::unique_ptr<Engine> Open(const std::string& name,
                               const ModelConfig& config,
                               Engine::Options options) {
    options.data_dir = (temp_dir_.path() / name).string();
    options.config = config;
    options.background_retrain = false;
    auto engine = Engine::Open(options);
    EXPECT_TRUE(engine.ok()) << engine.status();
    return engine.ok() ? *std::move(engine) : nullptr;
  }

  testing_util::ScopedTempDir temp_dir_;
};

// Every slice is read from the store once, for the first position that
// names it; positions of the second sequence, and a retrain after a
// deletion, read only what the worker does not hold (the one slice the
// deletion changed). The result is still the bits of training from
// scratch.
TEST_F(SliceReadsTest, PositionsReadOnlyTheSlicesTheWorkerLacks) {
  const ModelConfig config = SmallConfig(2, 4, 2);
  const std::vector<Sample> samples = Pixels(80, "s", 1);
  auto cache = std::make_shared<EncodedSliceCache>(0);
  auto worker = std::make_shared<CachingWorker>();
  Engine::Options options;
  options.slice_cache = cache;
  options.remote_trainer = worker;
  auto engine = Open("m", config, options);
  ASSERT_NE(engine, nullptr);
  auto ingested = engine->Ingest(samples);
  ASSERT_TRUE(ingested.ok()) << ingested.status();
  ASSERT_EQ(ingested->accepted, static_cast<int64_t>(samples.size()));
  auto trained = engine->Train();
  ASSERT_TRUE(trained.ok()) << trained.status();
  const int slices = config.shards * config.slices;
  EXPECT_EQ(cache->misses(), slices);
  EXPECT_EQ(worker->fetched(), slices);

  auto receipt = engine->DeleteSamples({samples[5].id});
  ASSERT_TRUE(receipt.ok()) << receipt.status();
  auto retrained = engine->RunPendingRetrains(true);
  ASSERT_TRUE(retrained.ok()) << retrained.status();
  ASSERT_GT(retrained->positions_trained, 1);
  EXPECT_EQ(cache->misses(), slices + 1);
  EXPECT_EQ(worker->fetched(), slices + 1);

  auto report = engine->Verify();
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_TRUE(report->restored);
  EXPECT_TRUE(report->match);
}

// A position trained here reads its slices only once it holds a training
// slot: while another position trains, one waiting for the slot has read
// nothing.
TEST_F(SliceReadsTest, ALocalPositionReadsItsSlicesOnlyWithASlot) {
  const ModelConfig config = SmallConfig(1, 2, 1);
  auto base = ml::LoadBaseState(config);
  ASSERT_TRUE(base.ok()) << base.status();
  auto trainer = ml::S3tTrainer::Create(config, *base);
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  auto checkpoints =
      storage::CheckpointStore::Open((temp_dir_.path() / "ckpt").string());
  ASSERT_TRUE(checkpoints.ok()) << checkpoints.status();
  ChunkReplication chunks(config.model_id, nullptr, nullptr, nullptr);
  PositionRunner runner(config, ConfigToText(config), "", checkpoints->get(),
                        &chunks, nullptr, /*training_threads=*/1, nullptr);

  std::vector<Sample> rows = Pixels(8, "s", 2);
  auto encoded = storage::EncodedSlice::FromSamples(rows, kPixels);
  ASSERT_TRUE(encoded.ok()) << encoded.status();
  // One slice, counting its reads.
  auto job_of = [&](const std::string& name, std::atomic<int>* reads) {
    PositionJob job;
    job.prefix = {0};
    job.key = Sha256Hex(name);
    job.read_slices = PrefixSlices(
        {{0, "ids", ""}},
        [reads, slice = *encoded](const PrefixSlices::Slice&)
            -> absl::StatusOr<std::shared_ptr<const storage::EncodedSlice>> {
          ++*reads;
          return slice;
        });
    return job;
  };

  std::atomic<int> first_reads{0}, second_reads{0};
  absl::Notification first_training, let_first_finish;
  PositionJob first = job_of("first", &first_reads);
  first.cancelled = [&] {
    if (!first_training.HasBeenNotified()) first_training.Notify();
    let_first_finish.WaitForNotification();
    return false;
  };
  PositionJob second = job_of("second", &second_reads);
  second.cancelled = [] { return false; };

  std::thread first_thread([&] {
    auto result = runner.Run(first, **trainer);
    EXPECT_TRUE(result.ok()) << result.status();
  });
  first_training.WaitForNotification();
  std::thread second_thread([&] {
    auto result = runner.Run(second, **trainer);
    EXPECT_TRUE(result.ok()) << result.status();
  });
  while (runner.LocalWaiting() == 0) std::this_thread::yield();
  EXPECT_EQ(first_reads.load(), 1);
  EXPECT_EQ(second_reads.load(), 0);
  let_first_finish.Notify();
  first_thread.join();
  second_thread.join();
  EXPECT_EQ(second_reads.load(), 1);
}

// A slice whose encoding was named is read only if it still encodes to
// that digest (else the position is stale: Aborted), one not named is
// refused, and a slice read to learn its digest is not read again.
TEST(PrefixSlicesTest, ReadsAbortWhenASliceNoLongerHasItsDigest) {
  auto a = storage::EncodedSlice::FromSamples(Pixels(3, "a", 5), kPixels);
  auto b = storage::EncodedSlice::FromSamples(Pixels(3, "b", 6), kPixels);
  ASSERT_TRUE(a.ok() && b.ok());
  int reads = 0;
  // Slice 0 was named by a's digest but now reads as b; slice 1's
  // encoding was not known.
  PrefixSlices slices(
      {{0, "ids-0", (*a)->digest()}, {1, "ids-1", ""}},
      [&](const PrefixSlices::Slice& slice)
          -> absl::StatusOr<std::shared_ptr<const storage::EncodedSlice>> {
        ++reads;
        return *b;
      });
  auto digests = slices.Digests();
  ASSERT_TRUE(digests.ok()) << digests.status();
  EXPECT_EQ(*digests,
            (std::vector<std::string>{(*a)->digest(), (*b)->digest()}));
  EXPECT_EQ(reads, 1);  // slice 1, to learn its digest
  auto kept = slices.Read({(*b)->digest()});
  ASSERT_TRUE(kept.ok()) << kept.status();
  EXPECT_EQ(reads, 1);  // kept from Digests
  EXPECT_EQ(slices.Read({(*a)->digest()}).status().code(),
            absl::StatusCode::kAborted);
  EXPECT_EQ(slices.ReadAll().status().code(), absl::StatusCode::kAborted);
  EXPECT_EQ(slices.Read({std::string(64, '0')}).status().code(),
            absl::StatusCode::kNotFound);
}

// Ingest counts a slice's exact size once the slice was read (by a
// position), so it fills up to the limit; deleting samples makes room at
// once (at least what they took), before any retrain reads the slice.
TEST_F(SliceReadsTest, IngestFillsASliceUpToTheLimitAfterDeletions) {
  const ModelConfig config = SmallConfig(1, 1, 1);
  std::vector<Sample> held = Pixels(20, "a", 3);
  // What an empty slice encodes to, then each sample's estimate.
  int64_t limit = static_cast<int64_t>(
      storage::EncodedSlice::Empty(kPixels)->bytes().size());
  for (const Sample& s : held) limit += EncodedSampleBytes(s);
  Engine::Options options;
  options.max_slice_bytes = limit;  // full by the estimate once `held` is in
  auto engine = Open("m", config, options);
  ASSERT_NE(engine, nullptr);
  auto ingested = engine->Ingest(held);
  ASSERT_TRUE(ingested.ok()) << ingested.status();
  ASSERT_EQ(ingested->accepted, static_cast<int64_t>(held.size()));
  ASSERT_TRUE(engine->Train().ok());  // reads the slice

  const std::vector<Sample> pool = Pixels(200, "b", 4);
  size_t next = 0;
  // The next samples of the pool whose estimates add up to at most `room`.
  auto take = [&](int64_t room) {
    std::vector<Sample> taken;
    while (room >= EncodedSampleBytes(pool[next])) {
      room -= EncodedSampleBytes(pool[next]);
      taken.push_back(pool[next++]);
    }
    return taken;
  };
  // Takes as many new samples as fit beside the exact encoding of `held`,
  // and refuses one more.
  auto fill = [&] {
    std::sort(held.begin(), held.end(),
              [](const Sample& a, const Sample& b) { return a.id < b.id; });
    auto exact = storage::EncodedSlice::FromSamples(held, kPixels);
    ASSERT_TRUE(exact.ok()) << exact.status();
    std::vector<Sample> fitting =
        take(limit - static_cast<int64_t>((*exact)->bytes().size()));
    ASSERT_GT(fitting.size(), 2u);
    auto taken = engine->Ingest(fitting);
    ASSERT_TRUE(taken.ok()) << taken.status();
    EXPECT_EQ(taken->accepted, static_cast<int64_t>(fitting.size()));
    EXPECT_EQ(engine->Ingest({pool[next]}).status().code(),
              absl::StatusCode::kResourceExhausted);
    held.insert(held.end(), fitting.begin(), fitting.end());
  };
  ASSERT_NO_FATAL_FAILURE(fill());

  // Most of the slice goes; at once, what the deleted samples took at
  // least (their ids and pixels) is free again.
  std::vector<std::string> gone;
  int64_t freed = 0;
  while (held.size() > 5) {
    gone.push_back(held.back().id);
    freed += EncodedSampleMinBytes(held.back());
    held.pop_back();
  }
  ASSERT_TRUE(engine->DeleteSamples(gone).ok());
  const std::vector<Sample> refill = take(freed);
  ASSERT_GT(refill.size(), 2u);
  auto refilled = engine->Ingest(refill);
  ASSERT_TRUE(refilled.ok()) << refilled.status();
  EXPECT_EQ(refilled->accepted, static_cast<int64_t>(refill.size()));
  held.insert(held.end(), refill.begin(), refill.end());

  // The retrain reads the slice: up to the limit again.
  ASSERT_TRUE(engine->RunPendingRetrains(true).ok());
  ASSERT_NO_FATAL_FAILURE(fill());
}

}  // namespace
}  // namespace oubli::coordinator
