#include "storage/rocksdb_background_env.h"

#include <cstdio>
#include <map>
#include <optional>

#include "absl/synchronization/mutex.h"
#include "common/thread_priority.h"
#include "rocksdb/env.h"

namespace oubli::storage {
namespace {

// Wraps each scheduled job so that it lowers its pool thread first.
class BackgroundPriorityEnv : public rocksdb::EnvWrapper {
 public:
  BackgroundPriorityEnv(rocksdb::Env* target,
                        const BackgroundPriority& priority)
      : rocksdb::EnvWrapper(target), priority_(priority) {}

  const char* Name() const override { return "OubliBackgroundPriorityEnv"; }

  void Schedule(void (*function)(void* arg), void* arg, Priority pri,
                void* tag, void (*unschedule)(void* arg)) override {
    auto* job = new Job{function, arg, unschedule, priority_};
    target()->Schedule(&Run, job, pri, tag,
                       unschedule != nullptr ? &Unschedule : nullptr);
  }

 private:
  struct Job {
    void (*function)(void*);
    void* arg;
    void (*unschedule)(void*);
    BackgroundPriority priority;
  };

  static void Run(void* raw) {
    Job* job = static_cast<Job*>(raw);
    // Pool threads live as long as the process, shared by every store;
    // lowering one once per priority is enough (and the only thing
    // possible: it cannot be raised back, so a weaker priority after a
    // stronger one changes nothing).
    thread_local std::optional<BackgroundPriority> lowered_to;
    if (lowered_to != job->priority) {
      // RocksDB names its pool threads itself (rocksdb:low, rocksdb:high).
      const absl::Status status = LowerThisThreadPriority(job->priority);
      if (!status.ok()) {
        std::fprintf(stderr, "oubli: a RocksDB thread not fully lowered: %s\n",
                     status.ToString().c_str());
      }
      lowered_to = job->priority;
    }
    job->function(job->arg);
    delete job;
  }

  // RocksDB calls this instead of Run for a job it drops unrun.
  static void Unschedule(void* raw) {
    Job* job = static_cast<Job*>(raw);
    job->unschedule(job->arg);
    delete job;
  }

  const BackgroundPriority priority_;
};

}  // namespace

rocksdb::Env* RocksDbEnvForBackground(const BackgroundPriority& priority) {
  if (!priority.lowers()) return rocksdb::Env::Default();
  static auto* mu = new absl::Mutex;
  static auto* envs = new std::map<BackgroundPriority, rocksdb::Env*>;
  absl::MutexLock lock(mu);
  rocksdb::Env*& env = (*envs)[priority];
  if (env == nullptr) {
    env = new BackgroundPriorityEnv(rocksdb::Env::Default(), priority);
  }
  return env;
}

}  // namespace oubli::storage
