#include "tests/testing/server_process.h"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <sstream>

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

std::string HttpGet(const std::string& address, const std::string& path) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos) return "";
  addrinfo hints = {};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* resolved = nullptr;
  if (::getaddrinfo(address.substr(0, colon).c_str(),
                    address.substr(colon + 1).c_str(), &hints,
                    &resolved) != 0) {
    return "";
  }
  const int fd = ::socket(resolved->ai_family, resolved->ai_socktype, 0);
  const bool connected =
      fd >= 0 && ::connect(fd, resolved->ai_addr, resolved->ai_addrlen) == 0;
  ::freeaddrinfo(resolved);
  std::string response;
  if (connected) {
    const std::string request = "GET " + path + " HTTP/1.0\r\n\r\n";
    if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
        static_cast<ssize_t>(request.size())) {
      char buffer[4096];
      ssize_t n;
      while ((n = ::recv(fd, buffer, sizeof(buffer), 0)) > 0) {
        response.append(buffer, n);
      }
    }
  }
  if (fd >= 0) ::close(fd);
  const size_t body = response.find("\r\n\r\n");
  return body == std::string::npos ? "" : response.substr(body + 4);
}

double MetricValue(const std::string& exposition, const std::string& series) {
  std::istringstream lines(exposition);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.size() > series.size() &&
        line.compare(0, series.size(), series) == 0 &&
        line[series.size()] == ' ') {
      return std::strtod(line.c_str() + series.size() + 1, nullptr);
    }
  }
  return -1;
}

}  // namespace oubli::testing_util
