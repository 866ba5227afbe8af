#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz with clang (AddressSanitizer +
# UBSan) and runs each over its committed corpus.
#
#   run_fuzzers.sh BUILD_DIR [--seconds N] [--only TARGET] [--merge]
#
# N seconds per target (default 10). A crash, leak or sanitizer report
# fails the run (exit 1); the input that caused it is kept in
# BUILD_DIR/crashes/TARGET/ (reproduce: BUILD_DIR/fuzz_TARGET FILE).
# Inputs that reach new code go to BUILD_DIR/found/TARGET/; --merge adds
# them, minimized, to the committed corpus (tests/fuzz/corpus/TARGET/).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BUILD_DIR="${1:?usage: run_fuzzers.sh BUILD_DIR [--seconds N] [--only TARGET] [--merge]}"
shift
SECONDS_PER_TARGET=10
ONLY=""
MERGE=0
while (($#)); do
  case "$1" in
    --seconds) SECONDS_PER_TARGET="$2"; shift 2 ;;
    --only) ONLY="$2"; shift 2 ;;
    --merge) MERGE=1; shift ;;
    *) echo "run_fuzzers: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
TARGETS=(safetensors config_text idx csv access_policy ledger chunk_manifest
  deletion_record requests encoded_slice sample_record)

if [[ ! -f "$BUILD_DIR/build.ninja" ]]; then
  CC=clang CXX=clang++ cmake -S "$HERE" -B "$BUILD_DIR" -G Ninja \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$BUILD_DIR.configure.log" 2>&1 ||
    { cat "$BUILD_DIR.configure.log" >&2; exit 1; }
fi
if ! cmake --build "$BUILD_DIR" -j "$(nproc)" >"$BUILD_DIR.build.log" 2>&1; then
  grep -E 'error|FAILED' "$BUILD_DIR.build.log" | head -20 >&2
  exit 1
fi

failed=()
for target in "${TARGETS[@]}"; do
  if [[ -n "$ONLY" && "$target" != "$ONLY" ]]; then continue; fi
  corpus="$HERE/corpus/$target"
  found="$BUILD_DIR/found/$target"
  crashes="$BUILD_DIR/crashes/$target"
  mkdir -p "$found" "$crashes"
  log="$BUILD_DIR/$target.log"
  # New inputs go to the first directory; the committed corpus is read.
  if "$BUILD_DIR/fuzz_$target" -max_total_time="$SECONDS_PER_TARGET" \
      -timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
      -artifact_prefix="$crashes/" "$found" "$corpus" >"$log" 2>&1; then
    stats="$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}')"
    echo "fuzz_$target: ok (${stats:-?} runs in ${SECONDS_PER_TARGET} s)"
  else
    echo "fuzz_$target: FAILED; see $log and $crashes" >&2
    grep -E 'ERROR: |SUMMARY: |runtime error' "$log" | head -5 >&2 || true
    failed+=("$target")
  fi
  if ((MERGE)); then
    "$BUILD_DIR/fuzz_$target" -merge=1 "$corpus" "$found" >/dev/null 2>&1 || true
  fi
done
if ((${#failed[@]})); then
  echo "run_fuzzers: ${#failed[@]} target(s) failed: ${failed[*]}" >&2
  exit 1
fi
