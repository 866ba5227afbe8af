// A coordinator in the test's own process over a data dir that outlives
// it, for tests that restart the service and look at its files.
#ifndef OUBLI_TESTS_TESTING_IN_PROCESS_COORDINATOR_H_
#define OUBLI_TESTS_TESTING_IN_PROCESS_COORDINATOR_H_

#include <gtest/gtest.h>

#include <filesystem>
#include <memory>

#include "coordinator/grpc_service.h"
#include "tests/testing/service_client.h"
#include "tests/testing/test_util.h"

namespace oubli::testing_util {

class InProcessCoordinatorTest : public ServiceClientTest {
 protected:
  void SetUp() override { ASSERT_NO_FATAL_FAILURE(Start()); }
  void TearDown() override {
    stub_.reset();
    server_.reset();
  }
  // (Re)starts the coordinator on data_dir(); `stub_` talks to it.
  void Start() {
    stub_.reset();
    server_.reset();
    coordinator::CoordinatorServer::Options options;
    options.listen_address = "127.0.0.1:0";
    options.data_dir = data_dir().string();
    auto server = coordinator::CoordinatorServer::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    stub_ = NewStub(server_->address());
  }
  std::filesystem::path data_dir() const { return dir_.path() / "models"; }

  ScopedTempDir dir_;
  std::unique_ptr<coordinator::CoordinatorServer> server_;
};

}  // namespace oubli::testing_util

#endif  // OUBLI_TESTS_TESTING_IN_PROCESS_COORDINATOR_H_
