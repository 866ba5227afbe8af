#!/usr/bin/env bash
# oubli-bench service --runs=time_to_forget --lm=1 on a few deletions: one
# JSON line for the language model, every deletion reflected by a Score.
#   service-lm-bench-smoke.sh OUBLI_BENCH
set -euo pipefail
bench="$1"
out="$("$bench" service --runs=time_to_forget --lm=1 --deletions=6 \
  2>/dev/null)"
/usr/bin/python3 - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in sys.argv[1].strip().splitlines()]
ttf = [r for r in rows if r.get("bench") == "service_time_to_forget"]
assert len(ttf) == 1, rows
row = ttf[0]
assert row["model"] == "causal LM (Score)", row
assert row["deletions"] == 6 and row["not_reflected"] == 0, row
assert row["time_to_forget_ms_p50"] > 0, row
print("service --lm smoke: ok", row["time_to_forget_ms_p50"])
PY
# --lm takes 0 or 1.
if "$bench" service --runs=time_to_forget --lm=maybe >/dev/null 2>&1; then
  echo "service accepted --lm=maybe" >&2
  exit 1
fi
