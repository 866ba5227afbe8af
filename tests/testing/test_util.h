// Helpers shared by the tests: deterministic random bytes, whole-file I/O,
// searching a directory tree for bytes, and a per-test temp directory.
#ifndef OUBLI_TESTS_TESTING_TEST_UTIL_H_
#define OUBLI_TESTS_TESTING_TEST_UTIL_H_

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <system_error>
#include <vector>

namespace oubli::testing_util {

// `size` bytes from a generator seeded with `seed`.
inline std::string RandomBytes(size_t size, uint64_t seed) {
  std::mt19937_64 engine(seed);
  std::string bytes(size, '\0');
  for (char& c : bytes) c = static_cast<char>(engine() & 0xff);
  return bytes;
}

// The file's bytes; empty if it cannot be opened.
inline std::string ReadWholeFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)),
                     std::istreambuf_iterator<char>());
}

// Creates or truncates the file.
inline void WriteWholeFile(const std::filesystem::path& path,
                           const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

// Paths of the regular files under `dir` (recursively) whose bytes contain
// `needle`. Files that vanish during the scan (RocksDB deletes obsolete
// files) are skipped.
inline std::vector<std::string> FilesContaining(
    const std::filesystem::path& dir, const std::string& needle) {
  std::vector<std::string> hits;
  std::error_code error;
  for (std::filesystem::recursive_directory_iterator it(dir, error), end;
       !error && it != end; it.increment(error)) {
    if (!it->is_regular_file(error)) continue;
    std::ifstream in(it->path(), std::ios::binary);
    if (!in) continue;
    const std::string bytes((std::istreambuf_iterator<char>(in)),
                            std::istreambuf_iterator<char>());
    if (bytes.find(needle) != std::string::npos) {
      hits.push_back(it->path().string());
    }
  }
  return hits;
}

// A fresh directory under the system temp directory, named after the
// current test and the pid so concurrent test processes do not collide;
// removed with its contents on destruction. As a fixture member, declare it
// before anything that keeps files open in it.
class ScopedTempDir {
 public:
  ScopedTempDir() {
    const ::testing::TestInfo* test =
        ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = "oubli-test-" + std::to_string(::getpid());
    if (test != nullptr) {
      name += std::string("-") + test->test_suite_name() + "-" + test->name();
    }
    // Parameterized tests have names like "Suite/Test/0".
    std::replace(name.begin(), name.end(), '/', '_');
    path_ = std::filesystem::temp_directory_path() / name;
    std::filesystem::remove_all(path_);  // left over from a crashed run
    std::filesystem::create_directories(path_);
  }
  ~ScopedTempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  ScopedTempDir(const ScopedTempDir&) = delete;
  ScopedTempDir& operator=(const ScopedTempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace oubli::testing_util

#endif  // OUBLI_TESTS_TESTING_TEST_UTIL_H_
