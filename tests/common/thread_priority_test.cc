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
    ASSERT_TRUE(LowerThisThreadPriority(3).ok());
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
    ASSERT_TRUE(LowerThisThreadPriority(3).ok());
    ASSERT_TRUE(LowerThisThreadPriority(3).ok());
    twice = ThisThreadNice();
    std::thread([&] {
      ASSERT_TRUE(LowerThisThreadPriority(3).ok());
      child_lowered = ThisThreadNice();
    }).join();
  }).join();
  EXPECT_EQ(twice, target);
  EXPECT_EQ(child_lowered, target);
}

TEST(ThreadPriorityTest, ZeroChangesNothing) {
  int nice = -100;
  const int before = ThisThreadNice();
  std::thread([&] {
    ASSERT_TRUE(LowerThisThreadPriority(0).ok());
    nice = ThisThreadNice();
  }).join();
  EXPECT_EQ(nice, before);
}

TEST(ThreadPriorityTest, RefusesIncrementsOutsideTheNiceRange) {
  const absl::Status negative = LowerThisThreadPriority(-1);
  EXPECT_EQ(negative.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(negative.message(), "nice increment -1 is outside 0..19");
  EXPECT_EQ(LowerThisThreadPriority(20).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ThreadPriorityTest, StartBackgroundThreadNamesAndLowers) {
  const int before = ThisThreadNice();
  std::string name;
  int nice = -100;
  std::thread([&] {
    StartBackgroundThread("oubli-a-very-long-name", 2);
    name = ThisThreadComm();
    nice = ThisThreadNice();
  }).join();
  EXPECT_EQ(name, "oubli-a-very-lo");  // the kernel keeps 15 bytes
  EXPECT_EQ(nice, std::min(19, before + 2));
}

}  // namespace
}  // namespace oubli
