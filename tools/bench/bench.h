// oubli-bench subcommands. Each prints one JSON object per result line on
// stdout and returns a process exit code.
#ifndef OUBLI_TOOLS_BENCH_BENCH_H_
#define OUBLI_TOOLS_BENCH_BENCH_H_

#include <string>
#include <vector>

namespace oubli::bench {

// `args` are the arguments after the subcommand name.
int RunEcBench(const std::vector<std::string>& args);
int RunAccuracyBench(const std::vector<std::string>& args);
int RunDefaultsBench(const std::vector<std::string>& args);
int RunUnlearnBench(const std::vector<std::string>& args);
// --lm: a decoder language model, tokens/s (tools/bench/train_lm_bench.cc).
int RunTrainBench(const std::vector<std::string>& args);
int RunTrainLmBench(const std::vector<std::string>& args);
// The gRPC service over loopback: time to forget, durable deletions/s,
// predict latency (tools/bench/service_bench.cc).
int RunServiceBench(const std::vector<std::string>& args);
int RunRecoveryBench(const std::vector<std::string>& args);
// Deletions as a stream, under sample, owner and risk-aware placement
// (tools/bench/churn_bench.cc).
int RunChurnBench(const std::vector<std::string>& args);
// The data plane at 10^5..10^6 samples (tools/bench/scale_bench.cc).
int RunScaleBench(const std::vector<std::string>& args);
// The language-model forgetting study: MUSE figures before and after
// forgetting 1, 10, 100 owners and over sequential rounds
// (tools/bench/forget_bench.cc).
int RunForgetBench(const std::vector<std::string>& args);
// Issue 16's stream of deletions against a coordinator and worker
// processes, per minute and against its targets (tools/bench/soak_bench.cc).
int RunSoakBench(const std::vector<std::string>& args);

}  // namespace oubli::bench

#endif  // OUBLI_TOOLS_BENCH_BENCH_H_
