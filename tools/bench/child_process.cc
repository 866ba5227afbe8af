#include "tools/bench/child_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"

namespace oubli::bench {

absl::StatusOr<std::unique_ptr<ChildProcess>> ChildProcess::Start(
    const std::string& binary, const std::vector<std::string>& args,
    const std::string& log_path) {
  // Everything the child needs is prepared before fork: between fork and
  // exec it may only make async-signal-safe calls (other threads may hold
  // malloc's locks).
  std::vector<std::string> strings = {binary};
  strings.insert(strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& s : strings) argv.push_back(s.data());
  argv.push_back(nullptr);
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    return absl::InternalError(absl::StrCat("pipe2: ", std::strerror(errno)));
  }
  const std::string exec_failed =
      absl::StrCat("oubli-bench: cannot execute ", binary, "\n");
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    return absl::InternalError(absl::StrCat("fork: ", std::strerror(errno)));
  }
  if (pid == 0) {
    // SIGKILL when the benchmark dies, also by SIGKILL or a crash; the
    // check after it covers a parent that died before the call.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    const int log_fd =
        ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    const int null_fd = ::open("/dev/null", O_RDONLY);
    if (log_fd < 0 || null_fd < 0 || ::dup2(fds[1], STDOUT_FILENO) < 0 ||
        ::dup2(log_fd, STDERR_FILENO) < 0 ||
        ::dup2(null_fd, STDIN_FILENO) < 0) {
      ::_exit(127);
    }
    ::execv(argv[0], argv.data());
    // Into the log, which the parent's error quotes.
    [[maybe_unused]] ssize_t ignored =
        ::write(STDERR_FILENO, exec_failed.data(), exec_failed.size());
    ::_exit(127);
  }
  ::close(fds[1]);
  return std::unique_ptr<ChildProcess>(
      new ChildProcess(binary, pid, fds[0], log_path));
}

ChildProcess::ChildProcess(std::string binary, pid_t pid, int stdout_fd,
                           std::string log_path)
    : binary_(std::move(binary)),
      pid_(pid),
      stdout_fd_(stdout_fd),
      log_path_(std::move(log_path)) {}

ChildProcess::~ChildProcess() { Stop(absl::Seconds(10)).IgnoreError(); }

absl::StatusOr<std::string> ChildProcess::WaitForLine(const std::string& prefix,
                                                      absl::Duration timeout) {
  const absl::Time give_up = absl::Now() + timeout;
  while (true) {
    for (size_t end = pending_.find('\n'); end != std::string::npos;
         end = pending_.find('\n')) {
      const std::string line = pending_.substr(0, end);
      pending_.erase(0, end + 1);
      if (line.compare(0, prefix.size(), prefix) == 0) {
        return line.substr(prefix.size());
      }
    }
    if (absl::Now() > give_up) {
      return absl::DeadlineExceededError(
          absl::StrCat(binary_, ": no '", prefix, "' line within ",
                       absl::FormatDuration(timeout), "; log ", log_path_,
                       " ends:\n", LogTail()));
    }
    if (stdout_fd_ < 0) {
      return absl::FailedPreconditionError(
          absl::StrCat(binary_, " is not running"));
    }
    pollfd p = {stdout_fd_, POLLIN, 0};
    if (::poll(&p, 1, 200) <= 0) continue;
    char buffer[512];
    const ssize_t n = ::read(stdout_fd_, buffer, sizeof(buffer));
    if (n <= 0) {
      return absl::UnavailableError(
          absl::StrCat(binary_, " closed stdout before '", prefix, "'; log ",
                       log_path_, " ends:\n", LogTail()));
    }
    pending_.append(buffer, n);
  }
}

absl::Status ChildProcess::Stop(absl::Duration grace) {
  if (pid_ <= 0) return absl::OkStatus();
  ::kill(pid_, SIGTERM);
  int status = 0;
  const absl::Time give_up = absl::Now() + grace;
  pid_t reaped = 0;
  while ((reaped = ::waitpid(pid_, &status, WNOHANG)) == 0 &&
         absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  bool killed = false;
  if (reaped == 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, &status, 0);
    killed = true;
  }
  const pid_t pid = pid_;
  pid_ = -1;
  if (stdout_fd_ >= 0) ::close(stdout_fd_);
  stdout_fd_ = -1;
  if (killed) {
    return absl::DeadlineExceededError(
        absl::StrCat(binary_, " (pid ", pid, ") still running ",
                     absl::FormatDuration(grace), " after SIGTERM; killed"));
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(
      binary_, " (pid ", pid, ") ended ",
      WIFEXITED(status) ? absl::StrCat("with exit code ", WEXITSTATUS(status))
                        : absl::StrCat("by signal ", WTERMSIG(status)),
      "; log ", log_path_, " ends:\n", LogTail()));
}

std::string ChildProcess::LogTail(size_t bytes) const {
  std::ifstream in(log_path_, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  const std::string all = text.str();
  return all.size() <= bytes ? all : all.substr(all.size() - bytes);
}

int64_t ResidentBytes(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("VmRSS:", 0) != 0) continue;
    // "VmRSS:    123456 kB"
    std::vector<absl::string_view> parts =
        absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    int64_t kib = 0;
    if (parts.size() >= 2 && absl::SimpleAtoi(parts[1], &kib)) {
      return kib * 1024;
    }
  }
  return -1;
}

}  // namespace oubli::bench
