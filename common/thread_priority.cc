#include "common/thread_priority.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#if defined(__linux__)
#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "absl/strings/str_cat.h"

namespace oubli {

#if defined(__linux__)
namespace {
// PRIO_PROCESS with a thread id addresses that one thread on Linux.
id_t ThisThreadId() { return static_cast<id_t>(syscall(SYS_gettid)); }
}  // namespace
#endif

absl::Status CheckNiceIncrement(absl::string_view what, int increment) {
  if (increment < 0 || increment > kMaxNiceIncrement) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " ", increment, " is outside 0..", kMaxNiceIncrement));
  }
  return absl::OkStatus();
}

absl::Status LowerThisThreadPriority(const BackgroundPriority& priority) {
  if (absl::Status valid =
          CheckNiceIncrement("nice increment", priority.nice_increment);
      !valid.ok()) {
    return valid;
  }
#if defined(__linux__)
  // Nice first: if the kernel refuses the idle class, the thread still
  // yields as much as nice alone makes it.
  const int target = std::min(19, ProcessNice() + priority.nice_increment);
  if (priority.nice_increment > 0 && target > ThisThreadNice() &&
      setpriority(PRIO_PROCESS, ThisThreadId(), target) != 0) {
    const int error = errno;
    return absl::InternalError(absl::StrCat("setpriority(nice ", target,
                                            "): ", std::strerror(error)));
  }
  if (priority.idle_class && !ThisThreadInIdleClass()) {
    sched_param param{};
    param.sched_priority = 0;
    if (const int error =
            pthread_setschedparam(pthread_self(), SCHED_IDLE, &param);
        error != 0) {
      return absl::InternalError(
          absl::StrCat("pthread_setschedparam(SCHED_IDLE): ",
                       std::strerror(error)));
    }
  }
#endif
  return absl::OkStatus();
}

bool ThisThreadInIdleClass() {
#if defined(__linux__)
  int policy = 0;
  sched_param param{};
  return pthread_getschedparam(pthread_self(), &policy, &param) == 0 &&
         policy == SCHED_IDLE;
#else
  return false;
#endif
}

int ThisThreadNice() {
#if defined(__linux__)
  // -1 is a valid nice value, so errno tells a failure apart.
  errno = 0;
  const int nice = getpriority(PRIO_PROCESS, ThisThreadId());
  return errno == 0 ? nice : 0;
#else
  return 0;
#endif
}

int ProcessNice() {
#if defined(__linux__)
  // The process id names the main thread.
  errno = 0;
  const int nice = getpriority(PRIO_PROCESS, static_cast<id_t>(getpid()));
  return errno == 0 ? nice : 0;
#else
  return 0;
#endif
}

void NameThisThread(absl::string_view name) {
#if defined(__linux__)
  const std::string truncated(name.substr(0, 15));
  pthread_setname_np(pthread_self(), truncated.c_str());
#else
  (void)name;
#endif
}

void StartBackgroundThread(absl::string_view name,
                           const BackgroundPriority& priority) {
  NameThisThread(name);
  const absl::Status lowered = LowerThisThreadPriority(priority);
  if (!lowered.ok()) {
    std::fprintf(stderr, "oubli: %.*s thread not fully lowered: %s\n",
                 static_cast<int>(name.size()), name.data(),
                 lowered.ToString().c_str());
  }
}

}  // namespace oubli
