#include "common/metrics_server.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace oubli {

// ----------------------------------------------------------- MetricsServer

namespace {

constexpr int kIoTimeoutSeconds = 5;
constexpr size_t kMaxRequestBytes = 16 << 10;

std::string ErrnoText(absl::string_view what) {
  return absl::StrCat(what, ": ", std::strerror(errno));
}

std::string HttpResponse(absl::string_view status, absl::string_view type,
                         absl::string_view body, bool head_only) {
  return absl::StrCat("HTTP/1.1 ", status, "\r\nContent-Type: ", type,
                      "\r\nContent-Length: ", body.size(),
                      "\r\nConnection: close\r\n\r\n", head_only ? "" : body);
}

}  // namespace

// The TLS context of the metrics port, rebuilt when its files change.
class MetricsTls {
 public:
  explicit MetricsTls(TlsServerFiles files) : files_(std::move(files)) {}
  ~MetricsTls() { SSL_CTX_free(context_); }

  // Loads the files (again, when they changed since the last load). The
  // first load must succeed; later failures keep the previous context.
  absl::Status Refresh() {
    const std::string stamp = Stamp();
    if (context_ != nullptr && stamp == stamp_) return absl::OkStatus();
    SSL_CTX* context = SSL_CTX_new(TLS_server_method());
    const bool loaded =
        context != nullptr &&
        SSL_CTX_set_min_proto_version(context, TLS1_2_VERSION) == 1 &&
        // No session tickets: nothing is written after the handshake but
        // the answer (scrapers reconnect anyway).
        SSL_CTX_set_num_tickets(context, 0) == 1 &&
        SSL_CTX_use_certificate_chain_file(context, files_.cert.c_str()) == 1 &&
        SSL_CTX_use_PrivateKey_file(context, files_.key.c_str(),
                                    SSL_FILETYPE_PEM) == 1 &&
        SSL_CTX_check_private_key(context) == 1 &&
        (files_.client_ca.empty() ||
         SSL_CTX_load_verify_locations(context, files_.client_ca.c_str(),
                                       nullptr) == 1);
    if (!loaded) {
      const unsigned long error = ERR_get_error();
      ERR_clear_error();
      SSL_CTX_free(context);
      stamp_ = stamp;  // reported once per change
      return absl::InvalidArgumentError(
          absl::StrCat("metrics TLS: cannot load ", files_.cert, " / ",
                       files_.key, ": ", ERR_error_string(error, nullptr)));
    }
    if (!files_.client_ca.empty()) {
      SSL_CTX_set_verify(
          context, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
    }
    SSL_CTX_free(context_);
    context_ = context;
    stamp_ = stamp;
    return absl::OkStatus();
  }

  SSL_CTX* context() const { return context_; }

 private:
  // Modification times and sizes of the files.
  std::string Stamp() const {
    std::string stamp;
    for (const std::string& path :
         {files_.cert, files_.key, files_.client_ca}) {
      struct stat info;
      if (!path.empty() && ::stat(path.c_str(), &info) == 0) {
        absl::StrAppend(&stamp, info.st_mtim.tv_sec, ".", info.st_mtim.tv_nsec,
                        "/", info.st_size, ";");
      } else {
        absl::StrAppend(&stamp, "-;");
      }
    }
    return stamp;
  }

  const TlsServerFiles files_;
  SSL_CTX* context_ = nullptr;
  std::string stamp_;
};

// One accepted connection: plaintext, or TLS over it.
class Connection {
 public:
  Connection(int fd, SSL_CTX* context) : fd_(fd) {
    if (context == nullptr) return;
    ssl_ = SSL_new(context);
    if (ssl_ == nullptr || SSL_set_fd(ssl_, fd) != 1 || SSL_accept(ssl_) != 1) {
      failed_ = true;  // not TLS, a bad certificate, or timed out
      ERR_clear_error();
    }
  }
  ~Connection() {
    if (ssl_ != nullptr) {
      if (!failed_) SSL_shutdown(ssl_);
      SSL_free(ssl_);
      ERR_clear_error();
    }
  }
  bool failed() const { return failed_; }

  // Bytes read (0: closed, timed out or failed).
  size_t Receive(char* buffer, size_t size) {
    while (true) {
      if (ssl_ != nullptr) {
        const int n = SSL_read(ssl_, buffer, static_cast<int>(size));
        if (n <= 0) failed_ = true;  // no close_notify on a broken stream
        return n > 0 ? static_cast<size_t>(n) : 0;
      }
      const ssize_t n = ::recv(fd_, buffer, size, 0);
      if (n < 0 && errno == EINTR) continue;
      return n > 0 ? static_cast<size_t>(n) : 0;
    }
  }

  void SendAll(absl::string_view data) {
    while (!data.empty()) {
      if (ssl_ != nullptr) {
        const int n =
            SSL_write(ssl_, data.data(), static_cast<int>(data.size()));
        if (n <= 0) {
          failed_ = true;
          return;
        }
        data.remove_prefix(static_cast<size_t>(n));
        continue;
      }
      const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;  // peer gone or timed out: nothing to do
      data.remove_prefix(static_cast<size_t>(n));
    }
  }

 private:
  const int fd_;
  SSL* ssl_ = nullptr;
  bool failed_ = false;
};

struct MetricsServer::Server {
  std::function<std::string()> serialize;
  std::unique_ptr<MetricsTls> tls;  // null: plaintext
  int listen_fd = -1;
  int wake_fds[2] = {-1, -1};  // a pipe: written to stop the loop
  std::thread thread;

  ~Server() {
    if (thread.joinable()) {
      const char byte = 0;
      (void)!::write(wake_fds[1], &byte, 1);
      thread.join();
    }
    for (int fd : {listen_fd, wake_fds[0], wake_fds[1]}) {
      if (fd >= 0) ::close(fd);
    }
  }

  void Loop() {
    // OpenSSL writes with write(2), so a peer that resets the connection
    // raises SIGPIPE in the writing thread: blocked here, the write fails
    // with EPIPE instead (in any process, whatever its signal settings).
    sigset_t pipe;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe, nullptr);
    while (true) {
      pollfd fds[2] = {{listen_fd, POLLIN, 0}, {wake_fds[0], POLLIN, 0}};
      if (::poll(fds, 2, -1) < 0) {
        if (errno == EINTR) continue;
        std::fprintf(stderr, "oubli: metrics server: %s\n",
                     ErrnoText("poll").c_str());
        return;
      }
      if (fds[1].revents != 0) return;
      if ((fds[0].revents & POLLIN) == 0) continue;
      const int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) {
        // Out of descriptors or memory: back off instead of spinning. Other
        // errors (the client gave up already) need nothing.
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
            errno == ENOMEM) {
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
        continue;
      }
      Serve(fd);
      ::close(fd);
    }
  }

  void Serve(int fd) {
    const timeval timeout = {kIoTimeoutSeconds, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
    SSL_CTX* context = nullptr;
    if (tls != nullptr) {
      if (absl::Status s = tls->Refresh(); !s.ok()) {
        std::fprintf(stderr, "oubli: %s; keeping the previous certificate\n",
                     std::string(s.message()).c_str());
      }
      context = tls->context();
    }
    Connection connection(fd, context);
    if (connection.failed()) return;
    std::string request;
    char buffer[4096];
    while (request.find("\r\n\r\n") == std::string::npos &&
           request.find("\n\n") == std::string::npos) {
      if (request.size() > kMaxRequestBytes) {
        connection.SendAll(HttpResponse("431 Request Header Fields Too Large",
                                        "text/plain", "request too large\n",
                                        false));
        return;
      }
      const size_t n = connection.Receive(buffer, sizeof(buffer));
      if (n == 0) return;  // closed or timed out
      request.append(buffer, n);
    }
    // "METHOD TARGET VERSION"
    const std::vector<absl::string_view> line = absl::StrSplit(
        absl::string_view(request).substr(0, request.find_first_of("\r\n")),
        ' ', absl::SkipEmpty());
    if (line.size() != 3) {
      connection.SendAll(HttpResponse("400 Bad Request", "text/plain",
                                      "malformed request line\n", false));
      return;
    }
    const absl::string_view method = line[0];
    const absl::string_view path = line[1].substr(0, line[1].find('?'));
    const bool head = method == "HEAD";
    if (method != "GET" && !head) {
      connection.SendAll(HttpResponse("405 Method Not Allowed", "text/plain",
                                      "only GET and HEAD\n", false));
      return;
    }
    if (path != "/metrics") {
      connection.SendAll(HttpResponse("404 Not Found", "text/plain",
                                      "metrics are on /metrics\n", head));
      return;
    }
    connection.SendAll(HttpResponse("200 OK",
                                    "text/plain; version=0.0.4; charset=utf-8",
                                    serialize(), head));
  }
};

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(
    absl::string_view listen_address, std::function<std::string()> serialize,
    const TlsServerFiles& tls) {
  const size_t colon = listen_address.rfind(':');
  if (colon == absl::string_view::npos || colon + 1 == listen_address.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "metrics listen address '", listen_address, "' is not HOST:PORT"));
  }
  std::string host(listen_address.substr(0, colon));
  const std::string port(listen_address.substr(colon + 1));
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  addrinfo hints = {};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* resolved = nullptr;
  if (const int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(),
                                   port.c_str(), &hints, &resolved);
      rc != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "metrics listen address '", listen_address, "': ", ::gai_strerror(rc)));
  }
  auto server = std::make_unique<Server>();
  server->serialize = std::move(serialize);
  if (tls.enabled()) {
    if (absl::Status s = CheckTlsServerFiles(tls); !s.ok()) {
      ::freeaddrinfo(resolved);
      return s;
    }
    server->tls = std::make_unique<MetricsTls>(tls);
    if (absl::Status s = server->tls->Refresh(); !s.ok()) {
      ::freeaddrinfo(resolved);
      return s;
    }
  }
  std::string error = "no address";
  for (addrinfo* a = resolved; a != nullptr; a = a->ai_next) {
    const int fd =
        ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      error = ErrnoText("socket");
      continue;
    }
    const int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (::bind(fd, a->ai_addr, a->ai_addrlen) != 0) {
      error = ErrnoText("bind");
      ::close(fd);
      continue;
    }
    if (::listen(fd, 16) != 0) {
      error = ErrnoText("listen");
      ::close(fd);
      continue;
    }
    server->listen_fd = fd;
    break;
  }
  ::freeaddrinfo(resolved);
  if (server->listen_fd < 0) {
    return absl::UnavailableError(absl::StrCat("cannot serve metrics on '",
                                               listen_address, "': ", error));
  }
  sockaddr_storage bound = {};
  socklen_t bound_size = sizeof(bound);
  if (::getsockname(server->listen_fd, reinterpret_cast<sockaddr*>(&bound),
                    &bound_size) != 0) {
    return absl::InternalError(ErrnoText("getsockname"));
  }
  const int bound_port =
      bound.ss_family == AF_INET6
          ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port)
          : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  if (::pipe2(server->wake_fds, O_CLOEXEC) != 0) {
    return absl::InternalError(ErrnoText("pipe2"));
  }
  server->thread = std::thread([s = server.get()] { s->Loop(); });

  std::unique_ptr<MetricsServer> out(new MetricsServer());
  out->server_ = std::move(server);
  out->port_ = bound_port;
  out->address_ =
      absl::StrCat(listen_address.substr(0, colon), ":", bound_port);
  return out;
}

MetricsServer::~MetricsServer() = default;

}  // namespace oubli
