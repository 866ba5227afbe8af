#!/usr/bin/env bash
# oubli-bench forget on a tiny model, through the public API of an
# oubli-coordinator and one oubli-worker it starts: every step reports, the
# tokenizer trains to the same bytes twice, each experiment has a model of
# its own, every removal and the last round verify bit for bit, and the
# retrain cost stays below a full training's. No server outlives it.
#   forget-bench-smoke.sh OUBLI_BENCH OUBLI_COORDINATOR OUBLI_WORKER
set -euo pipefail
bench="$1"
coordinator="$2"
worker="$3"
out="$("$bench" forget --public_profiles=40 --user_profiles=24 \
  --holdout_profiles=12 --vocab=320 --dim=32 --layers=2 --heads=2 \
  --shards=2 --slices=2 --epochs=3 --pretrain_epochs=2 --sizes=1,4 \
  --rounds=2 --owners_per_round=2 --eval_owners=6 --verbatim_owners=1 \
  --workers=1 --coordinator_binary="$coordinator" --worker_binary="$worker")"
/usr/bin/python3 - "$out" <<'PY'
import json, sys
rows = [json.loads(line) for line in sys.argv[1].strip().splitlines()]
steps = [r["step"] for r in rows]
assert steps == ["data", "pretrain", "base", "train", "forget", "forget",
                 "round", "round"], steps
data = rows[0]
assert data["tokenizer_deterministic"] is True, data
assert data["vocab"] == 320 and data["user_profiles"] == 24, data
train = rows[3]
assert train["samples"] == 24 * 13, train
# 2 shards x 1 sequence x 2 slices, each prefix trained once.
assert train["train_positions"] == 4 and train["train_sample_visits"] > 0, train
forgets = rows[4:6]
assert [f["forget_owners"] for f in forgets] == [1, 4], forgets
assert [f["model"] for f in forgets] == ["lm-1", "lm-2"], forgets
for f in forgets:
    # Cut prefixes waited for the study's Train: it retrained them.
    assert f["retrain_positions"] >= 1, f
    assert f["verify_match"] is True, f
    assert f["affected_shards"] >= 1, f
    assert f["retrain_sample_visits"] < f["full_train_sample_visits"], f
    for stage in ("before_", "forgotten_", "restored_"):
        for key in ("mia_auc_forget", "mia_auc_retained", "forget_qa_accuracy",
                    "retained_loss", "holdout_loss",
                    "forget_verbatim_rouge_l"):
            assert 0 <= f[stage + key] < 100, (stage, key, f)
assert rows[-1]["round"] == 2 and rows[-1]["forgotten_owners"] == 4
assert rows[-1]["verify_match"] is True, rows[-1]
print("forget bench smoke: ok")
PY
# The coordinator and the worker stopped with the benchmark.
for binary in "$coordinator" "$worker"; do
  if pgrep -f -- "^$binary .*oubli-bench-forget" >/dev/null; then
    echo "a $(basename "$binary") outlived oubli-bench forget" >&2
    exit 1
  fi
done
# A bad flag is a usage error.
if "$bench" forget --sizes=0 >/dev/null 2>&1; then
  echo "forget accepted --sizes=0" >&2
  exit 1
fi
