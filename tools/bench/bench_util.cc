#include "tools/bench/bench_util.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "worker/ml/device.h"

namespace oubli::bench {

bool ParseKeyValueFlags(const std::vector<std::string>& args,
                        const FlagSetters& setters) {
  for (const std::string& arg : args) {
    const size_t eq = arg.find('=');
    if (arg.rfind("--", 0) != 0 || eq == std::string::npos) {
      std::fprintf(stderr, "expected --key=value, got '%s'\n", arg.c_str());
      return false;
    }
    auto it = setters.find(arg.substr(2, eq - 2));
    if (it == setters.end() || !it->second(arg.substr(eq + 1))) {
      std::fprintf(stderr, "bad or unknown argument '%s'\n", arg.c_str());
      return false;
    }
  }
  return true;
}

int Fail(absl::string_view what, const absl::Status& status) {
  std::fprintf(stderr, "oubli-bench%s%s: %s\n", what.empty() ? "" : " ",
               std::string(what).c_str(), status.ToString().c_str());
  return 1;
}

TempDir::TempDir(const std::string& name)
    : path_((std::filesystem::temp_directory_path() /
             absl::StrCat("oubli-bench-", name, "-", getpid()))
                .string()) {
  std::filesystem::remove_all(path_);
  std::filesystem::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

double Percentile(std::vector<double> values, double q) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const size_t index = std::min(
      values.size() - 1, static_cast<size_t>(q * (values.size() - 1) + 0.5));
  return values[index];
}

std::string JsonEscape(absl::string_view in) {
  std::string out;
  for (char c : in) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (static_cast<unsigned char>(c) < 0x20) {
      absl::StrAppendFormat(&out, "\\u%04x", c);
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string MachineJson() {
  std::string model = "unknown";
  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string line; std::getline(cpuinfo, line);) {
    if (line.rfind("model name", 0) == 0) {
      const size_t colon = line.find(':');
      if (colon != std::string::npos) {
        model = line.substr(colon + 1);
        model.erase(0, model.find_first_not_of(' '));
      }
      break;
    }
  }
  return absl::StrFormat("{\"cpus\":%u,\"cpu_model\":\"%s\",\"device\":\"%s\"}",
                         std::thread::hardware_concurrency(), JsonEscape(model),
                         JsonEscape(ml::ComputeDeviceDescription()));
}

}  // namespace oubli::bench
