#!/usr/bin/env bash
# oublictl models, deletions and delete-model against a live
# oubli-coordinator (plaintext on loopback, no workers): the table and the
# --json output of each, and a deleted model gone from `models`.
#   oublictl-live.sh OUBLICTL OUBLI_COORDINATOR
set -uo pipefail
ctl="$1"
coordinator="$2"
python=/usr/bin/python3
source "$(dirname "${BASH_SOURCE[0]}")/live-coordinator.sh"

start_coordinator
ctl() { "$ctl" --server="$address" --timeout_s=60 "$@"; }

# A tiny MLP on 4x4 inputs, and 20 samples of 4 owners (owner-0..owner-3,
# ids csv-1..csv-20 by line) for each of two models.
cat >"$work/model.conf" <<'CONF'
backbone.kind=mlp
backbone.input_channels=1
backbone.input_height=4
backbone.input_width=4
backbone.num_classes=3
backbone.mlp_hidden=8,8
lora.rank=2
shards=2
slices=2
sequences=1
CONF
"$python" -c '
import random
random.seed(1)
for i in range(20):
    features = ",".join("%.3f" % random.random() for _ in range(16))
    print("%d,owner-%d,%s" % (i % 3, i // 5, features))
' >"$work/samples.csv"
for model in live keep; do
  ctl create --model "$model" --config "$work/model.conf" >/dev/null ||
    fail "create $model"
  ctl ingest --model "$model" --csv "$work/samples.csv" >/dev/null 2>&1 ||
    fail "ingest $model"
done

# Two deletions of "live": one owner (5 samples), then one sample by id;
# each followed to RESTORED so the stages below are final.
by_owner="$(ctl --json delete --model live --owner owner-1 |
  "$python" -c 'import json,sys; print(json.load(sys.stdin)["deletion_id"])')"
[[ "$by_owner" == live/del-* ]] || fail "delete --owner: '$by_owner'"
by_id="$(ctl --json delete --model live --sample csv-3 |
  "$python" -c 'import json,sys; print(json.load(sys.stdin)["deletion_id"])')"
[[ "$by_id" == live/del-* ]] || fail "delete --sample: '$by_id'"
for id in "$by_owner" "$by_id"; do
  ctl status --deletion "$id" --watch >/dev/null || fail "status --watch $id"
done

# models: a row per model with its active samples; --json one object each.
out="$(ctl models)" || fail "models exited $?"
grep -q "^MODEL  *SAMPLES" <<<"$out" || fail "models: no header: $out"
[[ "$(awk '$1 == "live" {print $2}' <<<"$out")" == 14 ]] ||
  fail "models: live should have 14 samples: $out"
[[ "$(awk '$1 == "keep" {print $2}' <<<"$out")" == 20 ]] ||
  fail "models: keep should have 20 samples: $out"
ctl --json models | "$python" -c '
import json, sys
models = {m["model_id"]: m for m in map(json.loads, sys.stdin)}
assert sorted(models) == ["keep", "live"], models
assert int(models["live"]["active_samples"]) == 14, models["live"]
assert int(models["keep"]["active_samples"]) == 20, models["keep"]
assert models["live"]["pending_deletions"] == 0, models["live"]
' || fail "models --json"

# deletions: newest first, each with its stage, sample count and request.
out="$(ctl deletions --model live)" || fail "deletions exited $?"
grep -q "^DELETION  *STAGE" <<<"$out" || fail "deletions: no header: $out"
rows="$(grep "^live/del-" <<<"$out")"
[[ "$(awk '{print $1}' <<<"$rows" | tr '\n' ' ')" == "$by_id $by_owner " ]] ||
  fail "deletions: not newest first: $out"
grep -qE "^$by_owner +RESTORED .* 5  owner owner-1$" <<<"$rows" ||
  fail "deletions: the owner's row: $out"
grep -qE "^$by_id +RESTORED .* 1  by sample ids$" <<<"$rows" ||
  fail "deletions: the row by id: $out"
ctl --json deletions --model live |
  "$python" -c '
import json, sys
rows = [json.loads(line) for line in sys.stdin]
by_id, by_owner = sys.argv[1:]
assert [r["deletion_id"] for r in rows] == [by_id, by_owner], rows
assert [r["stage"] for r in rows] == ["RESTORED", "RESTORED"], rows
assert rows[1]["owner"] == "owner-1" and rows[1]["resolved_count"] == 5, rows
assert rows[0]["owner"] == "" and rows[0]["resolved_count"] == 1, rows
' "$by_id" "$by_owner" || fail "deletions --json"
# Filters and --max reach the server as asked.
out="$(ctl deletions --model live --owner owner-1)" || fail "deletions --owner"
[[ "$(grep "^live/del-" <<<"$out" | awk '{print $1}')" == "$by_owner" ]] ||
  fail "deletions --owner owner-1: $out"
out="$(ctl deletions --model live --pending)" || fail "deletions --pending"
grep -qF "(no deletions match)" <<<"$out" || fail "deletions --pending: $out"
out="$(ctl deletions --model live --max 1)" || fail "deletions --max 1"
[[ "$(grep "^live/del-" <<<"$out" | awk '{print $1}')" == "$by_id" ]] ||
  fail "deletions --max 1: $out"
grep -qF "(more: raise --max" <<<"$out" || fail "deletions --max 1: $out"

# delete-model: waits for PURGED, then the model is gone from models and
# its deletions are no longer listed; the other model stays.
out="$(ctl --json delete-model --model live --wait)" || fail "delete-model"
"$python" -c '
import json, sys
d = json.loads(sys.argv[1])
assert d["model_id"] == "live" and d["stage"] == "PURGED", d
' "$out" || fail "delete-model --json: $out"
out="$(ctl delete-model --model live)" || fail "delete-model again"
grep -qE "^model live: PURGED \(accepted .*, purged .*\)$" <<<"$out" ||
  fail "delete-model again: $out"
out="$(ctl models)" || fail "models after delete-model"
awk 'NR > 1 {print $1}' <<<"$out" | grep -qx live &&
  fail "models still lists live: $out"
awk 'NR > 1 {print $1}' <<<"$out" | grep -qx keep ||
  fail "models lost keep: $out"
[[ "$(ctl --json models |
  "$python" -c 'import json,sys; print(*[json.loads(l)["model_id"] for l in sys.stdin])')" == keep ]] ||
  fail "models --json after delete-model"
err="$(ctl deletions --model live 2>&1)"
[[ $? -eq 1 ]] || fail "deletions of a deleted model did not exit 1: $err"
grep -qF "NOT_FOUND" <<<"$err" || fail "deletions of a deleted model: $err"
echo "oublictl live: ok"
