// oubli-bench: benchmarks that print one JSON object per result line.
//   oubli-bench ec        erasure coding GB/s vs memcpy
//   oubli-bench accuracy  ensemble accuracy on Fashion-MNIST vs monolithic
//   oubli-bench unlearn   deactivation latency, retrain vs full retrain
//   oubli-bench train     trainer samples/s vs a bare LibTorch loop
//   oubli-bench recovery  rebuild lost checkpoints from workers vs retrain
//   oubli-bench service   gRPC service: time to forget, durable deletions/s,
//                         predict latency
#include <cstdio>
#include <string>
#include <vector>

#include "tools/bench/bench.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr,
                 "usage: oubli-bench "
                 "{ec|accuracy|unlearn|train|service|recovery} [options]\n");
    return 2;
  }
  const std::string cmd = argv[1];
  std::vector<std::string> args(argv + 2, argv + argc);
  if (cmd == "ec") return oubli::bench::RunEcBench(args);
  if (cmd == "accuracy") return oubli::bench::RunAccuracyBench(args);
  if (cmd == "unlearn") return oubli::bench::RunUnlearnBench(args);
  if (cmd == "train") return oubli::bench::RunTrainBench(args);
  if (cmd == "service") return oubli::bench::RunServiceBench(args);
  if (cmd == "recovery") return oubli::bench::RunRecoveryBench(args);
  std::fprintf(stderr, "oubli-bench: unknown subcommand '%s'\n", cmd.c_str());
  return 2;
}
