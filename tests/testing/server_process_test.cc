// The multi-process test helpers are themselves tested: a helper that
// silently passed would make every cluster test pass with it.
#include "tests/testing/server_process.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <string>

#include "common/metrics_server.h"
#include "tests/testing/test_util.h"

namespace oubli::testing_util {
namespace {

TEST(ServerProcessTest, ReadsTheAddressAndLaterLinesAndStops) {
  ScopedTempDir dir;
  ServerProcess shell("/bin/sh");
  ASSERT_TRUE(shell.Start({"-c",
                           "echo 'listening on 127.0.0.1:1234'; "
                           // stderr is written before the line the test
                           // waits for, so the log is complete by then.
                           "echo noise; echo err >&2; "
                           "echo 'registered as w1'; exec sleep 60"},
                          dir.path() / "shell.log"));
  EXPECT_EQ(shell.address(), "127.0.0.1:1234");
  std::string rest;
  ASSERT_TRUE(shell.WaitForLine("registered as ", &rest));
  EXPECT_EQ(rest, "w1");
  // Lines passed over while waiting are remembered.
  EXPECT_TRUE(shell.SawLine("noise", &rest));
  EXPECT_EQ(rest, "");
  EXPECT_FALSE(shell.SawLine("never", &rest));
  EXPECT_TRUE(shell.running());
  const int status = shell.Stop(SIGTERM);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM);
  EXPECT_FALSE(shell.running());
  EXPECT_EQ(shell.Log(), "err\n");
}

TEST(ServerProcessTest, FailsWhenTheLineNeverComes) {
  ScopedTempDir dir;
  ServerProcess quits("/bin/sh");
  // Exits without announcing an address: Start must fail, not hang.
  EXPECT_FALSE(quits.Start({"-c", "echo oops >&2"}, dir.path() / "q.log"));

  ServerProcess quiet("/bin/sh");
  ASSERT_TRUE(quiet.Start({"-c", "echo 'listening on x:1'; exec sleep 60"},
                          dir.path() / "s.log"));
  std::string rest;
  EXPECT_FALSE(quiet.WaitForLine("registered as ", &rest, 1));
}

TEST(HttpGetTest, FetchesTheBodyAndReadsMetricValues) {
  auto server = MetricsServer::Start("127.0.0.1:0", [] {
    return std::string(
        "# TYPE a counter\n"
        "a{model=\"m\"} 3\n"
        "a{model=\"m2\"} 4.5\n"
        "b 7\n");
  });
  ASSERT_TRUE(server.ok()) << server.status();
  const std::string body = HttpGet((*server)->address(), "/metrics");
  EXPECT_EQ(MetricValue(body, "a{model=\"m\"}"), 3);
  EXPECT_EQ(MetricValue(body, "a{model=\"m2\"}"), 4.5);
  EXPECT_EQ(MetricValue(body, "b"), 7);
  EXPECT_EQ(MetricValue(body, "a"), -1);  // a prefix is not a series
  EXPECT_EQ(MetricValue(body, "c"), -1);
  EXPECT_EQ(HttpGet("127.0.0.1:1", "/metrics"), "");  // nothing listens
}

}  // namespace
}  // namespace oubli::testing_util
