#!/usr/bin/env bash
# oubli-bench scale on a tiny model (2,000 synthetic samples, S=4): one
# JSON line with the fields the closing notes quote; every slice crossed
# the wire at most about once during the first training.
#   scale-bench-smoke.sh OUBLI_BENCH
set -euo pipefail
bench="$1"
out="$("$bench" scale --samples=2000 --shards=4 --slices=4 --forget=2 \
  2>/dev/null)"
/usr/bin/python3 - "$out" <<'PY'
import json, sys
lines = sys.argv[1].strip().splitlines()
assert len(lines) == 1, lines
row = json.loads(lines[0])
for key in ("ingest_samples_per_s", "train_s", "slice_bytes",
            "sent_per_slice_byte", "forget_ms_p99", "retrain_over_train",
            "retrain_sent_per_slice_byte", "peak_rss_mib",
            "train_sample_visits", "train_sample_visits_per_s", "machine"):
    assert key in row, key
assert row["bench"] == "scale" and row["samples"] == 2000, row
# Each slice sent at least once; with two workers a shard's slices may go
# to both, never to more.
assert 1.0 <= row["sent_per_slice_byte"] <= 2.0, row
assert 0 < row["retrain_sent_per_slice_byte"] < 1.0, row
# Every sample is visited by every prefix holding its slice: at least once
# per sequence and epoch, at most once per position and epoch.
assert 2000 <= row["train_sample_visits"] <= 2000 * 4 * 2 * row["epochs"], row
assert row["train_sample_visits_per_s"] > 0, row
print("scale bench smoke: ok", row["sent_per_slice_byte"])
PY
