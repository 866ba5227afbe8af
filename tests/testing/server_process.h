// A server binary (oubli-coordinator, oubli-worker) as a child process for
// multi-process tests. Its stdout is a pipe the test reads lines from (the
// port from "listening on HOST:PORT", "registered as ID"); its stderr goes
// to a log file.
#ifndef OUBLI_TESTS_TESTING_SERVER_PROCESS_H_
#define OUBLI_TESTS_TESTING_SERVER_PROCESS_H_

#include <gtest/gtest.h>
#include <sys/types.h>

#include <filesystem>
#include <string>
#include <vector>

#include "common/http_scrape.h"

namespace oubli::testing_util {

class ServerProcess {
 public:
  explicit ServerProcess(std::string binary) : binary_(std::move(binary)) {}
  ~ServerProcess() { Kill(); }
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  // Spawns the binary with `flags` and waits (hang guard: 60 s) for its
  // "listening on HOST:PORT" line.
  ::testing::AssertionResult Start(const std::vector<std::string>& flags,
                                   const std::filesystem::path& log_path);
  // Waits (hang guard: `timeout_seconds`) for the next stdout line starting
  // with `prefix`; returns the rest of that line in `*rest`.
  ::testing::AssertionResult WaitForLine(const std::string& prefix,
                                         std::string* rest,
                                         int timeout_seconds = 60);
  // Whether a line starting with `prefix` was already consumed by a wait
  // since Start (e.g. "metrics on " before "registered as "); its rest in
  // `*rest`.
  bool SawLine(const std::string& prefix, std::string* rest) const;

  // Sends `signal` and reaps the process; returns its wait status.
  int Stop(int signal);
  void Kill();
  bool running() const { return pid_ > 0; }

  const std::string& address() const { return address_; }
  std::string Log() const;

 private:
  const std::string binary_;
  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  std::string pending_;  // stdout read but not yet consumed as lines
  std::vector<std::string> consumed_;  // lines consumed since Start
  std::string address_;
  std::filesystem::path log_path_;
};

// Scraping /metrics (common/http_scrape.h), as the tests name them.
using ::oubli::HttpGet;
using ::oubli::MetricValue;

}  // namespace oubli::testing_util

#endif  // OUBLI_TESTS_TESTING_SERVER_PROCESS_H_
