// A server binary (oubli-coordinator, oubli-worker) as a child process of a
// benchmark. Its stdout is a pipe read line by line ("listening on
// HOST:PORT", "registered as ID"); its stderr goes to a log file. The child
// gets SIGKILL when the benchmark dies, however it dies, so a crashed or
// killed benchmark leaves no server behind.
#ifndef OUBLI_TOOLS_BENCH_CHILD_PROCESS_H_
#define OUBLI_TOOLS_BENCH_CHILD_PROCESS_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace oubli::bench {

class ChildProcess {
 public:
  // Spawns `binary` with `args`; stderr appends to `log_path`. Spawn from
  // a thread that lives as long as the child should: the kernel's
  // parent-death signal follows the spawning thread.
  static absl::StatusOr<std::unique_ptr<ChildProcess>> Start(
      const std::string& binary, const std::vector<std::string>& args,
      const std::string& log_path);
  // Stop(absl::Seconds(10)).
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // The rest of the next stdout line starting with `prefix`, waiting at
  // most `timeout`. Fails with the log's tail when the child exits first.
  absl::StatusOr<std::string> WaitForLine(const std::string& prefix,
                                          absl::Duration timeout);
  // SIGTERM, SIGKILL if still running after `grace`, then reaped. OK when
  // it exited 0 on SIGTERM; otherwise says how it ended.
  absl::Status Stop(absl::Duration grace);

  pid_t pid() const { return pid_; }
  bool running() const { return pid_ > 0; }
  const std::string& log_path() const { return log_path_; }
  // The last `bytes` of the log.
  std::string LogTail(size_t bytes = 4000) const;

 private:
  ChildProcess(std::string binary, pid_t pid, int stdout_fd,
               std::string log_path);

  const std::string binary_;
  pid_t pid_;
  int stdout_fd_;
  const std::string log_path_;
  std::string pending_;  // stdout read but not yet returned as lines
};

// VmRSS of process `pid` in bytes (/proc/PID/status); -1 if unreadable.
int64_t ResidentBytes(pid_t pid);

}  // namespace oubli::bench

#endif  // OUBLI_TOOLS_BENCH_CHILD_PROCESS_H_
