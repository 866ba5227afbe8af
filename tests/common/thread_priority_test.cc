#include "common/thread_priority.h"

#include <gtest/gtest.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <thread>

namespace oubli {
namespace {

std::string ThisThreadComm() {
  std::ifstream in("/proc/self/task/" + std::to_string(syscall(SYS_gettid)) +
                   "/comm");
  std::string name;
  std::getline(in, name);
  return name;
}

TEST(ThreadPriorityTest, LowersOnlyTheCallingThreadAndItsLaterChildren) {
  const int before = ThisThreadNice();
  int lowered = -100;
  int child = -100;
  std::thread([&] {
    ASSERT_TRUE(LowerThisThreadPriority({.nice_increment = 3}).ok());
    lowered = ThisThreadNice();
    std::thread([&] { child = ThisThreadNice(); }).join();
  }).join();
  EXPECT_EQ(lowered, std::min(19, before + 3));
  EXPECT_EQ(child, lowered);
  EXPECT_EQ(ThisThreadNice(), before);  // the test's own thread is untouched
}

TEST(ThreadPriorityTest, LoweringAgainDoesNotCompound) {
  const int target = std::min(19, ProcessNice() + 3);
  int twice = -100;
  int child_lowered = -100;
  std::thread([&] {
    ASSERT_TRUE(LowerThisThreadPriority({.nice_increment = 3}).ok());
    ASSERT_TRUE(LowerThisThreadPriority({.nice_increment = 3}).ok());
    twice = ThisThreadNice();
    std::thread([&] {
      ASSERT_TRUE(LowerThisThreadPriority({.nice_increment = 3}).ok());
      child_lowered = ThisThreadNice();
    }).join();
  }).join();
  EXPECT_EQ(twice, target);
  EXPECT_EQ(child_lowered, target);
}

TEST(ThreadPriorityTest, TheDefaultChangesNothing) {
  int nice = -100;
  bool idle = true;
  const int before = ThisThreadNice();
  std::thread([&] {
    ASSERT_TRUE(LowerThisThreadPriority({}).ok());
    nice = ThisThreadNice();
    idle = ThisThreadInIdleClass();
  }).join();
  EXPECT_EQ(nice, before);
  EXPECT_FALSE(idle);
}

TEST(ThreadPriorityTest, IdleClassJoinsSchedIdleForTheThreadAndItsChildren) {
  const int before = ThisThreadNice();
  bool idle = false;
  bool child_idle = false;
  int nice = -100;
  std::thread([&] {
    ASSERT_TRUE(LowerThisThreadPriority({.idle_class = true}).ok());
    // Again: already there, no error.
    ASSERT_TRUE(LowerThisThreadPriority({.idle_class = true}).ok());
    idle = ThisThreadInIdleClass();
    nice = ThisThreadNice();
    std::thread([&] { child_idle = ThisThreadInIdleClass(); }).join();
  }).join();
  EXPECT_TRUE(idle);
  EXPECT_TRUE(child_idle);
  EXPECT_EQ(nice, before);  // no increment asked
  EXPECT_FALSE(ThisThreadInIdleClass());  // the test's own thread
}

TEST(ThreadPriorityTest, NiceAloneKeepsTheNormalClass) {
  bool idle = true;
  std::thread([&] {
    ASSERT_TRUE(LowerThisThreadPriority({.nice_increment = 3}).ok());
    idle = ThisThreadInIdleClass();
  }).join();
  EXPECT_FALSE(idle);
}

TEST(ThreadPriorityTest, RefusesIncrementsOutsideTheNiceRange) {
  // A refusal changes nothing, the idle class included.
  bool idle = true;
  std::thread([&] {
    EXPECT_FALSE(
        LowerThisThreadPriority({.nice_increment = 20, .idle_class = true})
            .ok());
    idle = ThisThreadInIdleClass();
  }).join();
  EXPECT_FALSE(idle);
  const absl::Status negative = LowerThisThreadPriority({.nice_increment = -1});
  EXPECT_EQ(negative.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(negative.message(), "nice increment -1 is outside 0..19");
  EXPECT_EQ(LowerThisThreadPriority({.nice_increment = 20}).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ThreadPriorityTest, StartBackgroundThreadNamesAndLowers) {
  const int before = ThisThreadNice();
  std::string name;
  int nice = -100;
  std::thread([&] {
    StartBackgroundThread("oubli-a-very-long-name", {.nice_increment = 2});
    name = ThisThreadComm();
    nice = ThisThreadNice();
  }).join();
  EXPECT_EQ(name, "oubli-a-very-lo");  // the kernel keeps 15 bytes
  EXPECT_EQ(nice, std::min(19, before + 2));
}

}  // namespace
}  // namespace oubli
