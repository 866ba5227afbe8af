#!/usr/bin/env bash
# oubli-bench churn on a tiny model (seeded base, 600 samples, 3 s of
# deletions): it must print the workload, imbalance, isolated, per-second,
# summary and comparison lines, all JSON, and plot_churn.py must draw them.
#   churn-bench-smoke.sh SOURCE_DIR OUBLI_BENCH
# Exit 77 (skipped) without Fashion-MNIST or matplotlib (tools/oubli setup
# installs both).
set -euo pipefail
src="$1"
bench="$2"
[[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ||
   -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte ]] ||
  { echo "SKIP: no Fashion-MNIST"; exit 77; }
/usr/bin/python3 -c 'import matplotlib' 2>/dev/null ||
  { echo "SKIP: no python3-matplotlib"; exit 77; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

"$bench" churn --public_samples=0 --user_samples=600 --test_samples=200 \
  --shards=3 --slices=3 --epochs=1 --seconds=3 --rate=2 --window_ms=500 \
  --drain_seconds=60 --isolated_deletions=2 >"$work/out.jsonl"

/usr/bin/python3 - "$work/out.jsonl" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]  # every line JSON
kinds = {}
for row in rows:
    kinds.setdefault(row["bench"], []).append(row)
assert len(kinds.get("churn_imbalance", [])) == 4, kinds.keys()
assert len(kinds.get("churn_workload", [])) == 1
# The risk run keeps its high-risk owners in risk_shards shards (1 by
# default); the others place without a profile.
w = kinds["churn_workload"][0]
assert w["risk_shards"] == 1 and 0 < w["high_risk_samples"] < 600, w
assert [r["risk_shards"] for r in kinds["churn"]] == [0, 0, 1], kinds["churn"]
runs = [r["run"] for r in kinds.get("churn", [])]
assert runs == ["sample", "owner", "owner+risk"], runs
assert [r["run"] for r in kinds["churn_isolated"]] == runs
for run in runs:
    points = [p for p in kinds["churn_point"] if p["run"] == run]
    assert [p["t"] for p in points] == [1, 2, 3], (run, points)
for summary in kinds["churn"]:
    assert summary["owners_forgotten"] > 0, summary
    assert 0 <= summary["shards_served_share"] <= 1, summary
    assert 0 <= summary["mean_served_prefix"] <= 3, summary
# Risk-aware orders train the risk slice (the last) last.
risk = kinds["churn_isolated"][2]
assert all(o.endswith(",2]") for o in risk["orders"].split()), risk["orders"]
compare = kinds["churn_compare"]
assert len(compare) == 1 and len(compare[0]["targets"]) == 4, compare
# The ceiling is L (3 here) over owner placement's served prefix, minus 1.
# (0 when owner placement served nothing; the served prefix is printed
# to 3 decimals, hence the tolerance.)
owner = kinds["churn"][1]
served = owner["mean_served_prefix"]
ceiling = compare[0]["risk_mean_served_prefix_gain_ceiling"]
if served == 0:
    assert ceiling == 0, compare
else:
    assert abs(ceiling - (3 / served - 1)) <= 3 * 6e-4 / served**2 + 1e-3, (
        compare, owner)
print("churn lines ok:", {k: len(v) for k, v in kinds.items()})
PY

/usr/bin/python3 "$src/tools/bench/plot_churn.py" "$work/out.jsonl" "$work/churn.png"
# A PNG: the 8-byte signature.
[[ "$(head -c 8 "$work/churn.png" | od -An -tx1 | tr -d ' \n')" == "89504e470d0a1a0a" ]] ||
  { echo "FAIL: plot_churn.py wrote no PNG"; exit 1; }
# Without churn_point lines it refuses (exit 1), naming the file.
echo '{"bench":"churn_workload"}' >"$work/empty.jsonl"
if /usr/bin/python3 "$src/tools/bench/plot_churn.py" "$work/empty.jsonl" \
     "$work/none.png" 2>"$work/err"; then
  echo "FAIL: plot_churn.py drew a file without points"; exit 1
fi
grep -q "no churn_point lines" "$work/err"
# risk_shards must leave a shard without high-risk owners: refused before
# any work.
if "$bench" churn --shards=3 --risk_shards=3 2>"$work/err"; then
  echo "FAIL: churn accepted --risk_shards=3 with 3 shards"; exit 1
fi
grep -q "risk_shards in 0 (every shard) .. shards - 1" "$work/err"
echo "churn bench smoke: ok"
