#include "worker/ml/device.h"

#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "tests/worker/ml/random_samples.h"
#include "worker/ml/determinism.h"
#include "worker/ml/s3t_trainer.h"
#include "worker/ml/safetensors.h"
#include "worker/ml/torch_device.h"

namespace oubli::ml {
namespace {

// Every test leaves the process on the CPU, the library default.
class DeviceTest : public ::testing::Test {
 protected:
  void TearDown() override {
    ASSERT_TRUE(UseComputeDevice(DeviceChoice::kCpu).ok());
  }
};

TEST_F(DeviceTest, ParsesTheThreeChoicesAndNamesThemOtherwise) {
  EXPECT_EQ(*ParseDeviceChoice("auto"), DeviceChoice::kAuto);
  EXPECT_EQ(*ParseDeviceChoice("cpu"), DeviceChoice::kCpu);
  EXPECT_EQ(*ParseDeviceChoice("CUDA"), DeviceChoice::kCuda);
  for (const char* bad : {"", "gpu", "cuda:1", "tpu"}) {
    absl::StatusOr<DeviceChoice> parsed = ParseDeviceChoice(bad);
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument)
        << bad;
    EXPECT_TRUE(absl::StrContains(parsed.status().message(),
                                  "must be auto, cpu or cuda"))
        << parsed.status();
  }
  EXPECT_EQ(UseComputeDevice("sideways").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(DeviceTest, TheCpuLeavesTheEnvironmentAsBeforeDevicesExisted) {
  absl::StatusOr<std::string> used = UseComputeDevice(DeviceChoice::kCpu);
  ASSERT_TRUE(used.ok()) << used.status();
  EXPECT_EQ(*used, "cpu");
  EXPECT_FALSE(ComputeOnCuda());
  EXPECT_TRUE(TorchDevice().is_cpu());
  // CPU checkpoint keys must not change with this release.
  EXPECT_EQ(DeviceEnvironment(), "");
  EXPECT_FALSE(absl::StrContains(NumericEnvironment(), "device="));
}

TEST_F(DeviceTest, AutoPicksCudaExactlyWhenItIsThere) {
  const std::string cpu_environment = NumericEnvironment();
  absl::StatusOr<std::string> used = UseComputeDevice(DeviceChoice::kAuto);
  ASSERT_TRUE(used.ok()) << used.status();
  if (CudaAvailable()) {
    EXPECT_TRUE(absl::StartsWith(*used, "cuda:0 ")) << *used;
    EXPECT_TRUE(ComputeOnCuda());
    EXPECT_TRUE(TorchDevice().is_cuda());
    // A GPU checkpoint never shares a key with a CPU one.
    EXPECT_EQ(NumericEnvironment(),
              absl::StrCat(cpu_environment, " device=", *used));
  } else {
    EXPECT_EQ(*used, "cpu");
    EXPECT_FALSE(ComputeOnCuda());
    EXPECT_EQ(NumericEnvironment(), cpu_environment);
  }
}

TEST_F(DeviceTest, AskingForCudaWithoutItFailsAndKeepsTheCpu) {
  absl::StatusOr<std::string> used = UseComputeDevice(DeviceChoice::kCuda);
  if (CudaAvailable()) {
    ASSERT_TRUE(used.ok()) << used.status();
    EXPECT_TRUE(ComputeOnCuda());
    return;
  }
  EXPECT_EQ(used.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(
      absl::StrContains(used.status().message(), "CUDA is not available"))
      << used.status();
  EXPECT_FALSE(ComputeOnCuda());
  EXPECT_EQ(DeviceEnvironment(), "");
}

// Whatever auto picks (the CPU on machines without a GPU), training is
// reproducible there and checkpoints come back as CPU tensors.
TEST_F(DeviceTest, TrainingOnTheChosenDeviceIsReproducible) {
  ASSERT_TRUE(UseComputeDevice(DeviceChoice::kAuto).ok());
  ModelConfig config = SmallMlpConfig();
  config.backbone.lora.dropout = 0.2;  // drawn on the CPU, used on the device
  config.train.epochs_per_position = 2;
  absl::StatusOr<PositionData> data =
      MakePositionData(RandomSamples(24, 3), 16);
  ASSERT_TRUE(data.ok()) << data.status();
  std::string checkpoints[2];
  for (std::string& checkpoint : checkpoints) {
    absl::StatusOr<NamedTensors> base = LoadBaseState(config);
    ASSERT_TRUE(base.ok()) << base.status();
    absl::StatusOr<std::unique_ptr<S3tTrainer>> trainer =
        S3tTrainer::Create(config, *base);
    ASSERT_TRUE(trainer.ok()) << trainer.status();
    const std::vector<int> prefix = {1};
    absl::StatusOr<std::string> trained =
        (*trainer)->TrainPosition(0, prefix, "", *data, nullptr);
    ASSERT_TRUE(trained.ok()) << trained.status();
    checkpoint = *trained;
  }
  EXPECT_EQ(checkpoints[0], checkpoints[1]);
  absl::StatusOr<NamedTensors> parsed = ParseSafetensors(checkpoints[0]);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_FALSE(parsed->empty());
  for (const auto& [name, tensor] : *parsed) {
    EXPECT_TRUE(tensor.is_cpu()) << name;
  }
}

}  // namespace
}  // namespace oubli::ml
