// Plain HTTP/1.0 GET and reading one series out of Prometheus text: how
// tests and benchmarks scrape a server's /metrics on loopback. Not a
// general HTTP client (no TLS, no redirects, no chunked bodies).
#ifndef OUBLI_COMMON_HTTP_SCRAPE_H_
#define OUBLI_COMMON_HTTP_SCRAPE_H_

#include <string>

namespace oubli {

// Body of GET http://address/path (HTTP/1.0), or "" on any failure.
std::string HttpGet(const std::string& address, const std::string& path);

// The value of the sample `series` (name and labels exactly as exposed,
// e.g. `oubli_training_steps_total{model="m"}`) in Prometheus text, or -1.
double MetricValue(const std::string& exposition, const std::string& series);

}  // namespace oubli

#endif  // OUBLI_COMMON_HTTP_SCRAPE_H_
