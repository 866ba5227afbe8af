#!/usr/bin/env bash
# oublictl's usage paths, which need no server: per-command --help, flags
# that do not apply to a command, unknown commands, and the exit codes the
# README documents (0 ok, 1 the command failed, 2 usage).
#   oublictl-usage.sh OUBLICTL
set -uo pipefail
ctl="$1"
fail() { echo "FAIL: $*"; exit 1; }

out="$("$ctl" delete --help)" || fail "delete --help exited $?"
for want in "usage: oublictl" "--owner" "--sample" "--idempotency_key" \
  "--server" "example:" "oublictl delete --model"; do
  grep -qF -- "$want" <<<"$out" || fail "delete --help lacks '$want': $out"
done
grep -qF -- "--fashion_mnist" <<<"$out" && fail "delete --help lists --fashion_mnist"
out="$("$ctl" predict --model m --help)" || fail "predict --help exited $?"
grep -qF -- "--fashion_mnist" <<<"$out" || fail "predict --help: $out"
out="$("$ctl" --help)" || fail "--help exited $?"
for command in create ingest train delete status predict score generate \
  model models deletions delete-model verify audit retire-worker; do
  grep -q "^  $command" <<<"$out" || fail "--help does not list $command"
done

err="$("$ctl" delete --model m --fashion_mnist=/x --owner o 2>&1)"
code=$?
[[ $code -eq 2 ]] || fail "a flag of another command exited $code, not 2"
grep -qF "oublictl delete: --fashion_mnist does not apply to delete" <<<"$err" ||
  fail "no precise message: $err"
# A flag no command defines is usage too, named with the command; absl
# alone would exit 1 without naming the command.
for argv in "delete --model m --bogus=1" "delete --bogus 1 --model m" \
  "--bogus delete --model m"; do
  # shellcheck disable=SC2086  # each case is its own argument list
  err="$("$ctl" $argv 2>&1)"
  code=$?
  [[ $code -eq 2 ]] || fail "'$argv' exited $code, not 2: $err"
  grep -qF "oublictl delete: unknown flag --bogus" <<<"$err" ||
    fail "'$argv': no message naming the command and the flag: $err"
done
err="$("$ctl" --bogus 2>&1)"
[[ $? -eq 2 ]] || fail "--bogus without a command is not a usage error"
grep -qF "unknown flag --bogus" <<<"$err" || fail "--bogus: $err"
# absl's flags that read flags from elsewhere or let unknown ones pass are
# refused as usage too (absl would exit 1 on a mistake inside them).
flags_file="$(mktemp)"
printf -- '--bogus=1\n' >"$flags_file"
for flag in "--flagfile=$flags_file" "--fromenv=server" "--tryfromenv=server" \
  "--undefok=bogus"; do
  err="$("$ctl" "$flag" delete --model m 2>&1)"
  code=$?
  [[ $code -eq 2 ]] || fail "$flag exited $code, not 2: $err"
  grep -qF "oublictl delete: ${flag%%=*} is not supported" <<<"$err" ||
    fail "$flag: no precise message: $err"
done
rm -f "$flags_file"
# A bad or missing value is usage as well, before any RPC.
err="$("$ctl" --server=127.0.0.1:1 deletions --model m --max=many 2>&1)"
[[ $? -eq 2 ]] || fail "deletions --max=many is not a usage error: $err"
grep -qF "oublictl deletions: --max=many" <<<"$err" || fail "--max=many: $err"
err="$("$ctl" --server=127.0.0.1:1 model --model 2>&1)"
[[ $? -eq 2 ]] || fail "model --model without a value is not a usage error"
grep -qF "oublictl model: --model needs a value" <<<"$err" ||
  fail "--model without a value: $err"
"$ctl" train --model m --wait=false --owner x >/dev/null 2>&1
[[ $? -eq 2 ]] || fail "train --owner is not a usage error"
# A flag's value in the next argument, even a negative one, is no flag.
"$ctl" --server=127.0.0.1:1 --timeout_s 2 predict --model m --limit -1 \
  --fashion_mnist /nonexistent >/dev/null 2>&1
code=$?
[[ $code -eq 1 ]] || fail "predict --limit -1 exited $code, not 1"
"$ctl" models --model m >/dev/null 2>&1
[[ $? -eq 2 ]] || fail "models --model is not a usage error"
"$ctl" bogus >/dev/null 2>&1
[[ $? -eq 2 ]] || fail "an unknown command is not a usage error"
"$ctl" >/dev/null 2>&1
[[ $? -eq 2 ]] || fail "no command is not a usage error"
# A missing or bad argument is usage too, before any RPC.
"$ctl" --server=127.0.0.1:1 verify >/dev/null 2>&1
[[ $? -eq 2 ]] || fail "verify without --model is not a usage error"
"$ctl" --server=127.0.0.1:1 deletions --model m --max -1 >/dev/null 2>&1
[[ $? -eq 2 ]] || fail "deletions --max -1 is not a usage error"
"$ctl" --server=127.0.0.1:1 deletions --model m --stage bogus >/dev/null 2>&1
[[ $? -eq 2 ]] || fail "deletions --stage bogus is not a usage error"
"$ctl" --server=10.0.0.1:1 --token_file=/dev/null models >/dev/null 2>&1
[[ $? -eq 2 ]] || fail "an unreadable or empty token file is not a usage error"
token_file="$(mktemp)"
trap 'rm -f "$token_file"' EXIT
printf 'secret-token' >"$token_file"
err="$("$ctl" --server=10.0.0.1:1 --token_file="$token_file" models 2>&1)"
code=$?
[[ $code -eq 2 ]] || fail "a token in plaintext beyond loopback exited $code"
grep -qF "refusing to send the bearer token in plaintext" <<<"$err" ||
  fail "no precise message for a plaintext token: $err"
# Global flags apply to every command; with nothing listening the RPC
# fails: exit 1.
"$ctl" --server=127.0.0.1:1 --timeout_s=2 --json model --model m >/dev/null 2>&1
[[ $? -eq 1 ]] || fail "an RPC failure does not exit 1"
echo "oublictl usage: ok"
