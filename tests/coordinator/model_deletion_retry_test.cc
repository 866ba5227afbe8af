// The registry's model deletion thread (ModelRegistry::FinishModelDeletion)
// and its BackoffRetry: a step that fails is reported in the receipt's note
// and retried on its own until it succeeds, a failure that does not end
// loses nothing the deletion accepted (a restart resumes it), and a
// deletion whose record cannot be written is refused before anything goes.
//
// Disk failures are made by putting a regular file where the records'
// directory must be (the tests run as root, so permissions would not stop
// a write); workers that never confirm are a ShardServing double.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/file_util.h"
#include "coordinator/model_registry.h"
#include "coordinator/remote_training.h"
#include "oubli/internal/records.pb.h"
#include "tests/coordinator/engine_test_fixture.h"
#include "tests/testing/test_util.h"

namespace oubli::coordinator {
namespace {

using ::testing::HasSubstr;

// No worker serves (Predict stays local); Sync, which a model deletion
// calls to destroy the copies on workers, answers `result`, and while held
// waits for Release before it does.
class ScriptedServing final : public ShardServing {
 public:
  int ServingCapacity(const std::string&) override { return 0; }
  std::vector<ShardResult> Predict(const Query& query) override {
    return std::vector<ShardResult>(query.shards.size());
  }
  absl::Status Sync(const Query&) override {
    absl::MutexLock lock(&mu_);
    ++syncs_;
    mu_.Await(absl::Condition(
        +[](bool* held) { return !*held; }, &held_));
    return result_;
  }

  void Hold() {
    absl::MutexLock lock(&mu_);
    held_ = true;
  }
  void Release() {
    absl::MutexLock lock(&mu_);
    held_ = false;
  }
  // Waits until Sync has been called `n` times in all.
  void AwaitSyncs(int n) {
    absl::MutexLock lock(&mu_);
    auto reached = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return syncs_ >= n;
    };
    mu_.Await(absl::Condition(&reached));
  }
  void SetResult(absl::Status result) {
    absl::MutexLock lock(&mu_);
    result_ = std::move(result);
  }
  int syncs() {
    absl::MutexLock lock(&mu_);
    return syncs_;
  }

 private:
  absl::Mutex mu_;
  bool held_ ABSL_GUARDED_BY(mu_) = false;
  int syncs_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status result_ ABSL_GUARDED_BY(mu_);
};

class ModelDeletionRetryTest : public ::testing::Test {
 protected:
  static constexpr char kModel[] = "tiny";  // TinyConfig's id

  std::unique_ptr<ModelRegistry> OpenRegistry() {
    ModelRegistry::Options options;
    options.root_dir = root_.string();
    options.background_retrain = false;
    options.shard_serving = serving_;
    auto registry = ModelRegistry::Open(options);
    EXPECT_TRUE(registry.ok()) << registry.status();
    return registry.ok() ? *std::move(registry) : nullptr;
  }

  // The registry with model kModel created, holding a few samples.
  std::unique_ptr<ModelRegistry> OpenWithModel() {
    std::unique_ptr<ModelRegistry> registry = OpenRegistry();
    if (registry == nullptr) return nullptr;
    EXPECT_TRUE(registry->CreateModel(TinyConfig(1)).ok());
    EXPECT_TRUE(registry->Ingest(kModel, TinySamples(10, 1)).ok());
    return registry;
  }

  // The records' directory refuses writes (a file stands in its place)
  // until Unblock puts it back as it was.
  void BlockRecords() {
    std::filesystem::rename(records_, held_records_);
    testing_util::WriteWholeFile(records_, "not a directory");
  }
  void Unblock() {
    std::filesystem::remove(records_);
    std::filesystem::rename(held_records_, records_);
  }

  // The model's deletion receipt once `done` holds for it (hang guard:
  // 60 s); the last one seen (and a failed expectation) otherwise.
  ModelRegistry::ModelDeletion AwaitDeletion(
      ModelRegistry& registry,
      const std::function<bool(const ModelRegistry::ModelDeletion&)>& done) {
    ModelRegistry::ModelDeletion last;
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    while (absl::Now() < deadline) {
      absl::StatusOr<ModelRegistry::ModelDeletion> deletion =
          registry.GetModelDeletion(kModel);
      EXPECT_TRUE(deletion.ok()) << deletion.status();
      if (!deletion.ok()) return last;
      last = *deletion;
      if (done(last)) return last;
      absl::SleepFor(absl::Milliseconds(10));
    }
    ADD_FAILURE() << "deletion still at: purged=" << last.purged
                  << " note='" << last.note << "'";
    return last;
  }

  testing_util::ScopedTempDir temp_dir_;
  const std::filesystem::path root_ = temp_dir_.path();
  const std::filesystem::path records_ = root_ / "~deleted-models";
  const std::filesystem::path held_records_ = root_ / "held-records";
  std::shared_ptr<ScriptedServing> serving_ =
      std::make_shared<ScriptedServing>();
};

// The record that the workers' copies are gone cannot be written at first:
// the receipt says why, the write alone is retried (the copies are not
// destroyed a second time), and once the disk takes it the deletion goes on
// to PURGED with one record, which says so.
TEST_F(ModelDeletionRetryTest, ARecordWriteThatFailsIsRetriedAndLandsOnce) {
  std::unique_ptr<ModelRegistry> registry = OpenWithModel();
  ASSERT_NE(registry, nullptr);
  serving_->Hold();
  absl::StatusOr<ModelRegistry::ModelDeletion> accepted =
      registry->DeleteModel(kModel);
  ASSERT_TRUE(accepted.ok()) << accepted.status();
  EXPECT_FALSE(accepted->purged);
  // The thread is destroying the copies on workers: the record written
  // next is refused.
  serving_->AwaitSyncs(1);
  BlockRecords();
  serving_->Release();
  const ModelRegistry::ModelDeletion failing = AwaitDeletion(
      *registry, [](const auto& d) { return !d.note.empty(); });
  EXPECT_FALSE(failing.purged);
  EXPECT_THAT(failing.note, HasSubstr("~deleted-models"));

  Unblock();  // no RetryPurgesNow: the back-off retries by itself
  const ModelRegistry::ModelDeletion done =
      AwaitDeletion(*registry, [](const auto& d) { return d.purged; });
  EXPECT_TRUE(done.purged);
  EXPECT_TRUE(done.remote_destroyed);
  EXPECT_TRUE(done.note.empty()) << done.note;
  EXPECT_EQ(absl::ToUnixNanos(done.accepted_at),
            absl::ToUnixNanos(accepted->accepted_at));
  EXPECT_EQ(serving_->syncs(), 1);
  EXPECT_FALSE(std::filesystem::exists(root_ / kModel));
  // One record (no temp file of a failed write left), saying PURGED.
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(records_)) {
    names.push_back(entry.path().filename().string());
  }
  EXPECT_EQ(names, std::vector<std::string>{kModel});
  absl::StatusOr<std::string> bytes = ReadFile((records_ / kModel).string());
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  internal::ModelDeletionRecord record;
  ASSERT_TRUE(record.ParseFromString(*bytes));
  EXPECT_NE(record.purged_unix_nanos(), 0);
  EXPECT_TRUE(record.remote_copies_destroyed());
  EXPECT_EQ(record.accepted_unix_nanos(),
            absl::ToUnixNanos(accepted->accepted_at));
}

// Workers that never confirm the drop: the deletion is never given up,
// says why it waits, and keeps the model's data (the copies on workers are
// found through it) and its refusal of calls; the registry still stops, and
// the next one resumes the same deletion and finishes it once the workers
// confirm.
TEST_F(ModelDeletionRetryTest,
       APermanentFailureIsReportedAndNothingAcceptedIsLost) {
  const std::string why = "worker w1 has not confirmed the drop";
  serving_->SetResult(absl::UnavailableError(why));
  std::unique_ptr<ModelRegistry> registry = OpenWithModel();
  ASSERT_NE(registry, nullptr);
  absl::StatusOr<ModelRegistry::ModelDeletion> accepted =
      registry->DeleteModel(kModel);
  ASSERT_TRUE(accepted.ok()) << accepted.status();
  ModelRegistry::ModelDeletion waiting = AwaitDeletion(
      *registry, [&](const auto& d) { return d.note == why; });
  EXPECT_FALSE(waiting.purged);
  EXPECT_FALSE(waiting.remote_destroyed);
  EXPECT_EQ(registry->Ingest(kModel, TinySamples(1, 2)).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(std::filesystem::exists(root_ / kModel / "lineage"));
  registry.reset();  // stops while it waits out a back-off

  registry = OpenRegistry();
  ASSERT_NE(registry, nullptr);
  EXPECT_THAT(registry->ModelIds(), ::testing::IsEmpty());
  // The note is not kept in the record: this one is the new thread's.
  waiting = AwaitDeletion(*registry,
                          [&](const auto& d) { return d.note == why; });
  EXPECT_FALSE(waiting.purged);
  EXPECT_EQ(absl::ToUnixNanos(waiting.accepted_at),
            absl::ToUnixNanos(accepted->accepted_at));

  serving_->SetResult(absl::OkStatus());
  registry->RetryPurgesNow();
  const ModelRegistry::ModelDeletion done =
      AwaitDeletion(*registry, [](const auto& d) { return d.purged; });
  EXPECT_TRUE(done.purged);
  EXPECT_EQ(absl::ToUnixNanos(done.accepted_at),
            absl::ToUnixNanos(accepted->accepted_at));
  EXPECT_FALSE(std::filesystem::exists(root_ / kModel));
}

// The ACCEPTED record comes first: when it cannot be written, DeleteModel
// fails and nothing was deleted: the model serves on, no deletion is
// known, and no worker was told to drop anything.
TEST_F(ModelDeletionRetryTest, ADeletionWhoseRecordCannotBeWrittenIsRefused) {
  std::unique_ptr<ModelRegistry> registry = OpenWithModel();
  ASSERT_NE(registry, nullptr);
  std::filesystem::create_directories(records_);
  BlockRecords();
  absl::StatusOr<ModelRegistry::ModelDeletion> refused =
      registry->DeleteModel(kModel);
  EXPECT_FALSE(refused.ok());
  EXPECT_THAT(refused.status().message(), HasSubstr("~deleted-models"));
  Unblock();
  EXPECT_EQ(registry->ModelIds(), std::vector<std::string>{kModel});
  EXPECT_TRUE(registry->Ingest(kModel, TinySamples(1, 2)).ok());
  EXPECT_EQ(registry->GetModelDeletion(kModel).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(serving_->syncs(), 0);
  // Refused, not half done: the deletion can be asked again.
  absl::StatusOr<ModelRegistry::ModelDeletion> again =
      registry->DeleteModel(kModel);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(
      AwaitDeletion(*registry, [](const auto& d) { return d.purged; }).purged);
}

}  // namespace
}  // namespace oubli::coordinator
