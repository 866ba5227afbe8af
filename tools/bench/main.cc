// oubli-bench: benchmarks that print one JSON object per result line.
//   oubli-bench ec        erasure coding GB/s vs memcpy
//   oubli-bench accuracy  ensemble accuracy on Fashion-MNIST vs monolithic
//   oubli-bench defaults  out-of-the-box accuracy (seeded base) per learning rate
//   oubli-bench unlearn   deactivation latency, retrain vs full retrain
//   oubli-bench train     trainer samples/s vs a bare LibTorch loop
//                         (--lm: a decoder language model, tokens/s)
//   oubli-bench recovery  rebuild lost checkpoints from workers vs retrain
//   oubli-bench service   gRPC service: time to forget, durable deletions/s,
//                         predict latency, idle and while deleting
//   oubli-bench churn     a stream of ForgetOwner requests under sample,
//                         owner and risk-aware placement
//   oubli-bench scale     ingest, training traffic, forgetting and memory
//                         at 10^5..10^6 samples
//   oubli-bench forget    a language model forgets owners: MUSE-style
//                         figures and cost for 1, 10, 100 owners and over
//                         sequential rounds
//   oubli-bench soak      a stream of deletions for minutes against a
//                         coordinator and worker processes: restore,
//                         serving, wasted training, memory per minute
// Every subcommand takes --device=auto|cpu|cuda (default cpu), reported in
// each result's "machine".
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "tools/bench/bench.h"
#include "worker/ml/device.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr,
                 "usage: oubli-bench {ec|accuracy|defaults|unlearn|train|"
                 "service|recovery|churn|scale|forget|soak} [options]\n");
    return 2;
  }
  const std::string cmd = argv[1];
  // --device (auto, cpu or cuda; default cpu) applies to every subcommand
  // that computes in this process.
  std::vector<std::string> args;
  std::string device = "cpu";
  for (int i = 2; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind("--device=", 0) == 0) {
      device = arg.substr(std::strlen("--device="));
    } else {
      args.push_back(arg);
    }
  }
  if (absl::StatusOr<std::string> used = oubli::ml::UseComputeDevice(device);
      !used.ok()) {
    std::fprintf(stderr, "oubli-bench: --device: %s\n",
                 used.status().ToString().c_str());
    return 2;
  }
  if (cmd == "ec") return oubli::bench::RunEcBench(args);
  if (cmd == "accuracy") return oubli::bench::RunAccuracyBench(args);
  if (cmd == "defaults") return oubli::bench::RunDefaultsBench(args);
  if (cmd == "unlearn") return oubli::bench::RunUnlearnBench(args);
  if (cmd == "train") return oubli::bench::RunTrainBench(args);
  if (cmd == "service") return oubli::bench::RunServiceBench(args);
  if (cmd == "recovery") return oubli::bench::RunRecoveryBench(args);
  if (cmd == "churn") return oubli::bench::RunChurnBench(args);
  if (cmd == "scale") return oubli::bench::RunScaleBench(args);
  if (cmd == "forget") return oubli::bench::RunForgetBench(args);
  if (cmd == "soak") return oubli::bench::RunSoakBench(args);
  std::fprintf(stderr, "oubli-bench: unknown subcommand '%s'\n", cmd.c_str());
  return 2;
}
