// Background work at a lower CPU priority than requests.
//
// On a machine with few cores, a retrain, a purge pass's compaction and a
// Predict compete for the same CPUs; at equal priority a Predict that
// arrives while both cores train waits its turn. Background threads raise
// their nice value and join the kernel's idle class once, for their whole
// life, so the kernel gives a request's thread the core first while idle
// cores still go to training.
#ifndef OUBLI_COMMON_THREAD_PRIORITY_H_
#define OUBLI_COMMON_THREAD_PRIORITY_H_

#include <compare>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace oubli {

// The largest increment accepted: the nice range is -20..19.
inline constexpr int kMaxNiceIncrement = 19;

// How a background thread yields to requests. The default changes
// nothing; the binaries pass {10, false} (their --background_nice and
// --background_idle_class flags).
struct BackgroundPriority {
  // Added to the process's nice value (0..kMaxNiceIncrement): a share of
  // the CPU when requests and background work both want it.
  int nice_increment = 0;
  // The kernel's idle class (SCHED_IDLE) as well: a request's thread that
  // wakes takes the core at once, where a niced thread would first finish
  // its time slice (about 1.5 ms on 2 cores, most of Predict's p99 under
  // load). The price: while anything else keeps the cores busy,
  // background work nearly stops (nice alone still gets it a share), and
  // a request waiting for a lock such a thread holds waits as long.
  bool idle_class = false;

  bool lowers() const { return nice_increment > 0 || idle_class; }
  // Field by field, so a map keyed by priority keeps every field apart.
  auto operator<=>(const BackgroundPriority&) const = default;
};

// InvalidArgument "<what> <increment> is outside 0..19" unless `increment`
// is one LowerThisThreadPriority accepts; every option that carries one
// checks it here.
absl::Status CheckNiceIncrement(absl::string_view what, int increment);

// Lowers the calling thread for its whole life: its nice value becomes the
// process's (its main thread's) plus `priority.nice_increment`, capped at
// 19 (a thread already there or lower keeps its own, so calling it again,
// or from a thread started by a lowered one, does not compound), and with
// `idle_class` it joins SCHED_IDLE. Threads it starts afterwards inherit
// both. Without privilege neither can be undone, so call this only on
// threads that do background work for their whole life. On Linux both are
// per thread; other systems leave the priority unchanged.
// InvalidArgument: nice_increment outside 0..kMaxNiceIncrement (nothing
// changed); Internal: the kernel refused (message has errno) the nice
// value (then nothing changed) or the idle class (then the thread is
// niced all the same).
absl::Status LowerThisThreadPriority(const BackgroundPriority& priority);

// The calling thread's nice value (0 where threads have none of their own).
int ThisThreadNice();
// Whether the calling thread is in the idle class (false elsewhere than
// Linux).
bool ThisThreadInIdleClass();
// The process's main thread's nice value (0 elsewhere than Linux).
int ProcessNice();

// Names the calling thread (at most 15 bytes kept) so `top -H` and
// /proc/<pid>/task/*/comm tell the background threads apart.
void NameThisThread(absl::string_view name);

// Once per background loop: names the thread and lowers its priority;
// a refusal is logged to stderr (the thread keeps running at whatever
// priority it got, which is slower for requests but correct).
void StartBackgroundThread(absl::string_view name,
                           const BackgroundPriority& priority);

}  // namespace oubli

#endif  // OUBLI_COMMON_THREAD_PRIORITY_H_
