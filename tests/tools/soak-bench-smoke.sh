#!/usr/bin/env bash
# oubli-bench soak, short: a coordinator and 2 workers as processes, 2,000
# samples on a seeded base, 30 s of the stream. Behaviour only, never the
# timing targets (the machine may be busy): every line is JSON, one
# soak_minute line, every acknowledged deletion RESTORED after the stream,
# Verify matched, the processes stopped cleanly. Then the cleanup: a soak
# whose worker cannot start, and one killed with SIGKILL, leave no process
# behind.
#   soak-bench-smoke.sh OUBLI_BENCH OUBLI_COORDINATOR OUBLI_WORKER
# Exit 77 (skipped) without Fashion-MNIST (tools/oubli setup installs it).
set -euo pipefail
bench="$1"
servers=(--coordinator_binary="$2" --worker_binary="$3")
[[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ||
   -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte ]] ||
  { echo "SKIP: no Fashion-MNIST"; exit 77; }
work="$(mktemp -d)"
pid=""
# The bench's servers die with it (parent-death signal); killing it is
# enough, also when ctest stops this script.
cleanup() {
  [[ -n "$pid" ]] && kill -KILL "$pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 143' TERM INT

# Pids of processes whose command line names DIR: every server of a run
# has its --data_dir under the run's --work_dir.
left_in() { pgrep -f -- "$1" || true; }

"$bench" soak "${servers[@]}" --minutes=0.5 --workers=2 --samples=2000 \
  --public_samples=0 --epochs=1 --drain_seconds=300 --work_dir="$work/run" \
  >"$work/out.jsonl" 2>"$work/err" &
pid=$!
if ! wait "$pid"; then
  pid=""
  echo "FAIL: oubli-bench soak exited non-zero"; cat "$work/err"
  cat "$work/out.jsonl"; exit 1
fi
pid=""
cat "$work/out.jsonl"

/usr/bin/python3 - "$work/out.jsonl" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]  # every line JSON
kinds = {}
for row in rows:
    kinds.setdefault(row["bench"], []).append(row)
assert sorted(kinds) == ["soak", "soak_minute", "soak_setup"], kinds.keys()
assert len(kinds["soak_setup"]) == 1 and len(kinds["soak"]) == 1
minutes = kinds["soak_minute"]
assert [m["minute"] for m in minutes] == [1], minutes
s = kinds["soak"][0]
acked = sum(m["acknowledged"] for m in minutes)
assert acked > 0 and s["acknowledged"] == acked, (acked, s["acknowledged"])
assert s["ack_error_codes"] == {}, s["ack_error_codes"]
# After the stream every acknowledged deletion reached RESTORED ...
assert s["drain"]["all_restored"] is True, s["drain"]
assert s["restored_total"] == s["acknowledged"], s
# ... and the served model is what training from scratch gives.
assert s["verify"]["ran"] and s["verify"]["status"] == "OK", s["verify"]
assert s["verify"]["restored"] and s["verify"]["match"], s["verify"]
assert s["clean_shutdown"] is True, s
# Predict may find no shard served (FAILED_PRECONDITION), nothing else.
for m in minutes:
    assert set(m["predict_error_codes"]) <= {"FAILED_PRECONDITION"}, m
    assert set(m["rss_mib"]) == {"coordinator", "worker-0", "worker-1"}, m
    assert 0 <= m["all_served_share"] <= 1 and 0 <= m["none_served_share"] <= 1
    assert m["positions_trained"] >= 0 and m["positions_wasted"] >= 0, m
names = [t["name"] for t in s["targets"]]
assert names == ["time_to_restored_p99_s", "all_shards_served_share",
                 "longest_unserved_s", "wasted_share",
                 "rss_growth_after_minute_1"], names
assert all(t["pass"] in (True, False, None) for t in s["targets"])
rate = s["restore_rate"]
assert rate["arrival_per_min"] > 0 and rate["restored_per_min"] >= 0, rate
print("soak lines ok:", acked, "deletions acknowledged and RESTORED,",
      "verify match")
PY
[[ -z "$(left_in "$work/run")" ]] ||
  { echo "FAIL: processes left after the soak"; left_in "$work/run"; exit 1; }

# A worker that cannot start: the soak fails and stops the coordinator.
if "$bench" soak --coordinator_binary="$2" \
     --worker_binary=/nonexistent/oubli-worker --minutes=0.1 --workers=1 \
     --samples=2000 --public_samples=0 --work_dir="$work/fail" \
     >/dev/null 2>"$work/fail.err"; then
  echo "FAIL: a soak without its worker succeeded"; exit 1
fi
grep -q "cannot execute /nonexistent/oubli-worker" "$work/fail.err" ||
  { echo "FAIL: the failed soak does not say why"; cat "$work/fail.err";
    exit 1; }
[[ -z "$(left_in "$work/fail")" ]] ||
  { echo "FAIL: processes left after a failed soak"; left_in "$work/fail";
    exit 1; }

# SIGKILLed once its servers run: they go with it.
"$bench" soak "${servers[@]}" --minutes=1 --workers=1 --samples=2000 \
  --public_samples=0 --work_dir="$work/kill" >/dev/null 2>&1 &
pid=$!
for _ in $(seq 1 600); do
  [[ -n "$(left_in "$work/kill/worker-0")" ]] && break
  sleep 0.1
done
[[ -n "$(left_in "$work/kill/worker-0")" ]] ||
  { echo "FAIL: the soak started no worker"; exit 1; }
kill -KILL "$pid"
wait "$pid" 2>/dev/null || true
pid=""
for _ in $(seq 1 100); do
  [[ -z "$(left_in "$work/kill")" ]] && break
  sleep 0.1
done
[[ -z "$(left_in "$work/kill")" ]] ||
  { echo "FAIL: servers outlived a killed soak"; left_in "$work/kill"; exit 1; }
echo "soak bench smoke: ok"
