#!/usr/bin/env bash
# oubli-bench train --lm on a tiny decoder: one JSON line with the fields
# the closing notes quote, and every generated token trained on.
#   train-lm-bench-smoke.sh OUBLI_BENCH
set -euo pipefail
bench="$1"
out="$("$bench" train --lm --sequences=64 --dim=32 --layers=2 \
  --max_length=16 --rounds=1 2>/dev/null)"
/usr/bin/python3 - "$out" <<'PY'
import json, sys
lines = sys.argv[1].strip().splitlines()
assert len(lines) == 1, lines
row = json.loads(lines[0])
for key in ("trainer_tokens_per_s", "bare_libtorch_tokens_per_s", "overhead",
            "tokens", "last_loss", "machine"):
    assert key in row, key
assert row["bench"] == "train_lm" and row["sequences"] == 64, row
assert row["trainer_tokens_per_s"] > 0 and row["bare_libtorch_tokens_per_s"] > 0
# 64 sequences of 2..16 tokens.
assert 128 <= row["tokens"] <= 1024, row
print("train --lm bench smoke: ok", row["overhead"])
PY
# A bad flag is a usage error.
if "$bench" train --lm --layout=bert >/dev/null 2>&1; then
  echo "train --lm accepted --layout=bert" >&2
  exit 1
fi
