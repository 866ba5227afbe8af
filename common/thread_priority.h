// Background work at a lower CPU priority than requests.
//
// On a machine with few cores, a retrain, a purge pass's compaction and a
// Predict compete for the same CPUs; at equal priority a Predict that
// arrives while both cores train waits its turn. Background threads raise
// their nice value once, for their whole life, so the kernel gives a
// request's thread the core first while idle cores still go to training.
#ifndef OUBLI_COMMON_THREAD_PRIORITY_H_
#define OUBLI_COMMON_THREAD_PRIORITY_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace oubli {

// The largest increment accepted: the nice range is -20..19.
inline constexpr int kMaxNiceIncrement = 19;

// InvalidArgument "<what> <increment> is outside 0..19" unless `increment`
// is one LowerThisThreadPriority accepts; every option that carries one
// checks it here.
absl::Status CheckNiceIncrement(absl::string_view what, int increment);

// Sets the calling thread's nice value to the process's (its main
// thread's) plus `increment`, capped at 19; a thread already there or
// lower keeps its own, so calling it again, or from a thread started by a
// lowered one, does not compound. Threads it starts afterwards inherit it.
// Without privilege a nice value can never be lowered again, so call this
// only on threads that do background work for their whole life. On Linux
// nice is per thread; other systems leave the priority unchanged.
// InvalidArgument: increment outside 0..kMaxNiceIncrement; Internal: the
// kernel refused (message has errno).
absl::Status LowerThisThreadPriority(int increment);

// The calling thread's nice value (0 where threads have none of their own).
int ThisThreadNice();
// The process's main thread's nice value (0 elsewhere than Linux).
int ProcessNice();

// Names the calling thread (at most 15 bytes kept) so `top -H` and
// /proc/<pid>/task/*/comm tell the background threads apart.
void NameThisThread(absl::string_view name);

// Once per background loop: names the thread and lowers its priority;
// a refusal is logged to stderr (the thread keeps running at the default
// priority, which is slower for requests but correct).
void StartBackgroundThread(absl::string_view name, int nice_increment);

}  // namespace oubli

#endif  // OUBLI_COMMON_THREAD_PRIORITY_H_
