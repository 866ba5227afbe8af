#include "tests/testing/server_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>

#include "tests/testing/test_util.h"

extern char** environ;

namespace oubli::testing_util {

::testing::AssertionResult ServerProcess::Start(
    const std::vector<std::string>& flags,
    const std::filesystem::path& log_path) {
  log_path_ = log_path;
  pending_.clear();
  consumed_.clear();
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    return ::testing::AssertionFailure() << "pipe2 failed";
  }
  std::vector<std::string> argv_strings = {binary_};
  argv_strings.insert(argv_strings.end(), flags.begin(), flags.end());
  std::vector<char*> argv;
  for (std::string& s : argv_strings) argv.push_back(s.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, log_path.c_str(),
                                   O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  sigset_t empty;
  sigemptyset(&empty);
  posix_spawnattr_setsigmask(&attributes, &empty);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGMASK);
  const int rc =
      posix_spawn(&pid_, argv[0], &actions, &attributes, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  ::close(fds[1]);
  stdout_fd_ = fds[0];
  if (rc != 0) {
    pid_ = -1;
    return ::testing::AssertionFailure()
           << "posix_spawn " << argv[0] << ": " << std::strerror(rc);
  }
  return WaitForLine("listening on ", &address_);
}

::testing::AssertionResult ServerProcess::WaitForLine(const std::string& prefix,
                                                      std::string* rest,
                                                      int timeout_seconds) {
  const auto give_up =
      std::chrono::steady_clock::now() + std::chrono::seconds(timeout_seconds);
  while (true) {
    // Consume complete lines already read.
    for (size_t end = pending_.find('\n'); end != std::string::npos;
         end = pending_.find('\n')) {
      const std::string line = pending_.substr(0, end);
      pending_.erase(0, end + 1);
      consumed_.push_back(line);
      if (line.compare(0, prefix.size(), prefix) == 0) {
        *rest = line.substr(prefix.size());
        return ::testing::AssertionSuccess();
      }
    }
    if (std::chrono::steady_clock::now() > give_up) {
      return ::testing::AssertionFailure()
             << binary_ << ": no '" << prefix << "' line; stderr:\n"
             << Log();
    }
    pollfd p = {stdout_fd_, POLLIN, 0};
    if (::poll(&p, 1, 200) <= 0) continue;
    char buffer[256];
    const ssize_t n = ::read(stdout_fd_, buffer, sizeof(buffer));
    if (n <= 0) {
      return ::testing::AssertionFailure()
             << binary_ << " closed stdout before '" << prefix << "'; stderr:\n"
             << Log();
    }
    pending_.append(buffer, n);
  }
}

bool ServerProcess::SawLine(const std::string& prefix,
                            std::string* rest) const {
  for (const std::string& line : consumed_) {
    if (line.compare(0, prefix.size(), prefix) == 0) {
      *rest = line.substr(prefix.size());
      return true;
    }
  }
  return false;
}

int ServerProcess::Stop(int signal) {
  if (pid_ <= 0) return 0;
  ::kill(pid_, signal);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
  if (stdout_fd_ >= 0) ::close(stdout_fd_);
  stdout_fd_ = -1;
  return status;
}

void ServerProcess::Kill() { Stop(SIGKILL); }

std::string ServerProcess::Log() const { return ReadWholeFile(log_path_); }

}  // namespace oubli::testing_util
