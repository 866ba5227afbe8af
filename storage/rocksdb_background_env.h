// RocksDB's flushes and compactions at a lower CPU priority.
//
// A purge pass forces a compaction of the samples it erases; at default
// priority that compaction takes a core from Predict. RocksDB's pool
// threads belong to the process's default Env, so the priority is the
// process's: the first LineageStore opened with a lowering priority sets it
// for good (pool threads can never get their priority back).
#ifndef OUBLI_STORAGE_ROCKSDB_BACKGROUND_ENV_H_
#define OUBLI_STORAGE_ROCKSDB_BACKGROUND_ENV_H_

#include "common/thread_priority.h"

namespace rocksdb {
class Env;
}  // namespace rocksdb

namespace oubli::storage {

// The default Env, whose scheduled jobs first lower their pool thread to
// `priority` (once per thread; see common/thread_priority.h). A priority
// that lowers nothing: the default Env itself. Never destroyed.
rocksdb::Env* RocksDbEnvForBackground(const BackgroundPriority& priority);

}  // namespace oubli::storage

#endif  // OUBLI_STORAGE_ROCKSDB_BACKGROUND_ENV_H_
