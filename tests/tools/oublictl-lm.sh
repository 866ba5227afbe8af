#!/usr/bin/env bash
# oublictl for language models against a live oubli-coordinator (plaintext
# on loopback, no workers): ingest --jsonl --tokenizer with a SentencePiece
# model trained here (train_tokenizer), its refusals, create of a decoder,
# score and generate.
#   oublictl-lm.sh OUBLICTL OUBLI_COORDINATOR TRAIN_TOKENIZER
set -uo pipefail
ctl="$1"
coordinator="$2"
train_tokenizer="$3"
python=/usr/bin/python3
source "$(dirname "${BASH_SOURCE[0]}")/live-coordinator.sh"

"$train_tokenizer" "$work" 2>"$work/train.log" ||
  fail "train_tokenizer: $(cat "$work/train.log")"
tok="$work/tokenizer.model"

# Refused before any RPC (no server at 127.0.0.1:1): exit CODE with WANT in
# the message.
expect_exit() {
  local want_code="$1" want="$2"
  shift 2
  local err
  err="$("$ctl" --server=127.0.0.1:1 "$@" 2>&1)"
  local code=$?
  [[ $code -eq $want_code ]] || fail "'$*' exited $code, not $want_code: $err"
  grep -qF -- "$want" <<<"$err" || fail "'$*': no '$want' in: $err"
}
# Usage mistakes (exit 2).
expect_usage() { expect_exit 2 "$@"; }
expect_usage "ingest --jsonl needs --tokenizer MODEL.model" \
  ingest --model lm --jsonl "$work/none.jsonl"
expect_usage "ingest needs one of --fashion_mnist DIR, --csv FILE and --jsonl" \
  ingest --model lm --jsonl "$work/a" --csv "$work/b" --tokenizer "$tok"
expect_usage "score: 'x' is not a token id" score --model lm 1,x
expect_usage "score needs token sequences" score --model lm
expect_usage "generate needs either --prompt_tokens" generate --model lm
expect_usage "--prompt_tokens: '-3' is not a token id" \
  generate --model lm --prompt_tokens=1,-3
expect_usage "generate --prompt needs --tokenizer" \
  generate --model lm --prompt "where was alice born?"
expect_usage "--tokens_file does not apply to generate" \
  generate --model lm --prompt_tokens 1 --tokens_file x
# A SentencePiece module that cannot be loaded, or a tokenizer file that is
# missing, is named (exit 1).
OUBLI_SENTENCEPIECE_MODULE="$work/none.so" expect_exit 1 \
  "--tokenizer: cannot load the SentencePiece module $work/none.so" \
  generate --model lm --prompt "where was alice born?" --tokenizer "$tok"
expect_exit 1 \
  "--tokenizer: cannot read the SentencePiece model $work/none.model: open" \
  generate --model lm --prompt "alice" --tokenizer "$work/none.model"
out="$("$ctl" generate --help)" || fail "generate --help exited $?"
for want in --prompt_tokens --max_tokens --temperature --seed --stop_tokens \
  --tokenizer "example:"; do
  grep -qF -- "$want" <<<"$out" || fail "generate --help lacks $want: $out"
done

start_coordinator
ctl() { "$ctl" --server="$address" --timeout_s=120 "$@"; }

# Text samples: two statements and a question per fictitious person.
"$python" -c '
import json
people = [("alice", "lyon", "baker"), ("bob", "osaka", "pilot"),
          ("carol", "lima", "nurse"), ("dmitri", "oslo", "painter"),
          ("erin", "quito", "teacher"), ("farid", "accra", "baker")]
for name, place, job in people:
    owner = "owner-" + name
    print(json.dumps({"id": name + "-born", "owner": owner,
                      "text": "%s was born in %s." % (name, place)}))
    print(json.dumps({"id": name + "-job", "owner": owner,
                      "text": "%s works as a %s in %s." % (name, job, place),
                      "deletion_risk": 0.1}))
    print(json.dumps({"id": name + "-q", "owner": owner,
                      "prompt": "where was %s born?" % name,
                      "answer": "in %s." % place}))
' >"$work/people.jsonl"
printf '%s\n' \
  '{"id": "a", "owner": "o", "text": "alice"}' \
  '{"id": "b", "owner": ' \
  '{"id": "c", "text": "no owner"}' \
  '{"id": "a", "owner": "o", "prompt": "where?"}' >"$work/bad.jsonl"

# An image model takes no token samples: said before anything is read.
cat >"$work/image.conf" <<'CONF'
backbone.kind=mlp
backbone.input_height=4
backbone.input_width=4
backbone.num_classes=3
backbone.mlp_hidden=8,8
shards=2
slices=2
sequences=1
CONF
ctl create --model img --config "$work/image.conf" >/dev/null || fail "create img"
err="$(ctl ingest --model img --jsonl "$work/people.jsonl" --tokenizer "$tok" 2>&1)"
[[ $? -eq 1 ]] || fail "ingest --jsonl into an image model did not exit 1: $err"
grep -qF "model 'img' is not a decoder (backbone BACKBONE_KIND_MLP)" <<<"$err" ||
  fail "ingest --jsonl into an image model: $err"
err="$(ctl ingest --model img --jsonl "$work/people.jsonl" \
  --tokenizer "$work/corpus.txt" 2>&1)"
[[ $? -eq 1 ]] || fail "a tokenizer that is not one did not exit 1: $err"
grep -qF -- "--tokenizer: cannot read the SentencePiece model" <<<"$err" ||
  fail "a tokenizer that is not one: $err"
err="$(ctl score --model img 1,2 2>&1)"
[[ $? -eq 1 ]] || fail "score of an image model did not exit 1: $err"
grep -qF "INVALID_ARGUMENT" <<<"$err" || fail "score of an image model: $err"

# A decoder language model from a config file.
cat >"$work/lm.conf" <<'CONF'
backbone.kind=decoder
decoder.layout=llama
decoder.objective=causal_lm
decoder.vocab_size=128
decoder.context_length=48
decoder.dim=16
decoder.layers=2
decoder.heads=2
decoder.kv_heads=2
decoder.mlp_dim=32
lora.rank=2
shards=2
slices=2
sequences=1
train.epochs_per_position=3
train.batch_size=8
train.learning_rate=0.01
CONF
out="$(ctl create --model lm --config "$work/lm.conf" 2>&1)" ||
  fail "create lm exited $?: $out"
grep -qF "decoder llama language model  vocabulary 128  context 48" <<<"$out" ||
  fail "create lm did not describe the decoder: $out"

# A malformed file sends nothing, and names every bad line.
err="$(ctl ingest --model lm --jsonl "$work/bad.jsonl" --tokenizer "$tok" 2>&1)"
[[ $? -eq 1 ]] || fail "a malformed file did not exit 1: $err"
for want in "3 bad lines, nothing sent" "bad.jsonl:2: not a JSON object" \
  "bad.jsonl:3: owner: owner is empty" "bad.jsonl:4: prompt without answer"; do
  grep -qF "$want" <<<"$err" || fail "bad.jsonl: no '$want' in: $err"
done
[[ "$(ctl --json model --model lm |
  "$python" -c 'import json,sys; print(json.load(sys.stdin)["active_samples"])')" == 0 ]] ||
  fail "a malformed file stored samples"

out="$(ctl ingest --model lm --jsonl "$work/people.jsonl" --tokenizer "$tok" 2>&1)" ||
  fail "ingest --jsonl: $out"
grep -qF "accepted 18  duplicates 0  rejected 0" <<<"$out" ||
  fail "ingest --jsonl: $out"
ctl train --model lm --wait >/dev/null 2>&1 || fail "train lm"

out="$(ctl score --model lm --tokenizer "$tok" 5,6,7,8 9,10)" ||
  fail "score exited $?"
grep -qE "^sequence 0: 4 tokens  log p -[0-9.]+" <<<"$out" || fail "score: $out"
grep -qE "^sequence 1: 2 tokens" <<<"$out" || fail "score: $out"
grep -qE "^model fingerprint [0-9a-f]{64}  shards served 2/2$" <<<"$out" ||
  fail "score: $out"
printf '# two sequences\n5,6,7,8\n9 10\n' >"$work/tokens.txt"
ctl --json score --model lm --tokens_file "$work/tokens.txt" |
  "$python" -c '
import json, sys
r = json.load(sys.stdin)
assert len(r["sequences"]) == 2, r
assert len(r["sequences"][0]["token_log_probs"]) == 3, r
assert len(r["sequences"][1]["token_log_probs"]) == 1, r
' || fail "score --json --tokens_file"

out="$(ctl generate --model lm --tokenizer "$tok" \
  --prompt "where was alice born?" --max_tokens 8)" || fail "generate exited $?"
grep -qE "^generated [0-9]+ tokens \(FINISH_REASON_" <<<"$out" ||
  fail "generate: $out"
grep -qE "^  tokens [0-9,]+$" <<<"$out" || fail "generate: $out"
grep -q "^  text " <<<"$out" || fail "generate printed no text: $out"
# The same greedy request twice gives the same tokens; --json adds the text.
a="$(ctl --json generate --model lm --prompt_tokens 5,6 --max_tokens 4 \
  --tokenizer "$tok")" || fail "generate --json"
b="$(ctl --json generate --model lm --prompt_tokens 5,6 --max_tokens 4)" ||
  fail "generate --json without a tokenizer"
"$python" -c '
import json, sys
a, b = json.loads(sys.argv[1]), json.loads(sys.argv[2])
assert a["tokens"] == b["tokens"], (a, b)
assert "text" in a and "text" not in b, (a, b)
assert 1 <= len(a["tokens"]) <= 4, a
' "$a" "$b" || fail "generate --json: $a / $b"
echo "oublictl lm: ok"
