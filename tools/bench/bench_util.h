// Helpers shared by the oubli-bench subcommands (no torch, no gRPC).
#ifndef OUBLI_TOOLS_BENCH_BENCH_UTIL_H_
#define OUBLI_TOOLS_BENCH_BENCH_UTIL_H_

#include <functional>
#include <map>
#include <string>
#include <type_traits>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/string_view.h"

namespace oubli::bench {

// Setters of --key=value flags by key; a setter returns false for a value
// it cannot take.
using FlagSetters =
    std::map<std::string, std::function<bool(const std::string&)>>;

// A setter parsing the value into *out: an integer, a double or a bool.
template <typename T>
std::function<bool(const std::string&)> NumberFlag(T* out) {
  return [out](const std::string& value) {
    if constexpr (std::is_same_v<T, bool>) {
      return absl::SimpleAtob(value, out);
    } else if constexpr (std::is_same_v<T, double>) {
      return absl::SimpleAtod(value, out);
    } else {
      return absl::SimpleAtoi(value, out);
    }
  };
}

// A setter for a string flag that must not be empty.
inline std::function<bool(const std::string&)> NonEmptyFlag(
    std::string* out) {
  return [out](const std::string& value) { return !(*out = value).empty(); };
}

// Applies every --key=value argument through `setters`. A malformed,
// unknown or refused argument is named on stderr and makes it return
// false (the caller exits with status 2).
bool ParseKeyValueFlags(const std::vector<std::string>& args,
                        const FlagSetters& setters);

// Prints "oubli-bench <what>: <status>" on stderr and returns exit code 1.
int Fail(absl::string_view what, const absl::Status& status);

// A scratch directory, emptied at creation and removed when the benchmark
// ends.
class TempDir {
 public:
  explicit TempDir(const std::string& name);
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Nearest-rank percentile, q in [0, 1]; 0 for no values.
double Percentile(std::vector<double> values, double q);

// Escapes `in` for use inside a JSON string literal.
std::string JsonEscape(absl::string_view in);

// {"cpus":N,"cpu_model":"...","device":"cpu"}: results only compare on
// the same machine and device.
std::string MachineJson();

}  // namespace oubli::bench

#endif  // OUBLI_TOOLS_BENCH_BENCH_UTIL_H_
