#!/usr/bin/env bash
# The service demo: oubli-coordinator and N oubli-worker processes on free
# loopback ports, driven only through the public gRPC API with oublictl.
# Fashion-MNIST with synthetic owners: create, ingest, train (positions on
# the workers), predict, forget one owner (receipt and stage stream),
# predict again, verify bitwise, audit the signed deletion ledger (online,
# offline from a saved copy, and a tampered copy that fails), show a call
# without a token refused, shut everything down cleanly.
#
# As tools/oubli cluster up runs it: mutual TLS between the coordinator and
# the workers and TLS on the public API (a throwaway CA made by
# tools/pki/make-local-pki.sh), an access policy giving the bearer token in
# operator.token every role, and an audit log.
#
#   service_demo.sh BUILD_DIR [--user_samples N] [--workers N] [--keep]
#
# Everything lives in a temp dir that is removed at the end unless --keep
# is given.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

BUILD_DIR="$1"
shift
USER_SAMPLES=20000
WORKERS=3
KEEP=0
while (($#)); do
  case "$1" in
    --user_samples) USER_SAMPLES="$2"; shift 2 ;;
    --workers) WORKERS="$2"; shift 2 ;;
    --keep) KEEP=1; shift ;;
    *) echo "service_demo: unknown argument '$1'" >&2; exit 2 ;;
  esac
done

DATA=/usr/share/datasets/fashion-mnist
COORDINATOR="$BUILD_DIR/coordinator/oubli-coordinator"
WORKER="$BUILD_DIR/worker/oubli-worker"
CTL="$BUILD_DIR/tools/oublictl"
WORK="$(mktemp -d -t oubli-demo.XXXXXX)"
PID=""
WORKER_PIDS=()

step() { printf '\n== %s\n' "$*"; }

cleanup() {
  for pid in "${WORKER_PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  done
  if [[ -n "$PID" ]] && kill -0 "$PID" 2>/dev/null; then
    kill -TERM "$PID"
    wait "$PID" 2>/dev/null || true
  fi
  if ((KEEP)); then
    echo "kept $WORK"
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT

step "Making a throwaway CA, certificates, an operator token and an access policy"
# ca.crt; coordinator.crt/.key naming oubli-coordinator and 127.0.0.1;
# worker.crt/.key naming oubli-worker (one for every worker).
TLS="$WORK/tls"
"$SCRIPT_DIR/../pki/make-local-pki.sh" "$TLS" 1
# The bearer token oublictl presents; the coordinator keeps its SHA-256.
(umask 077 && openssl rand -hex 32 >"$WORK/operator.token")
printf 'operator %s\n' "$(tr -d '[:space:]' <"$WORK/operator.token" |
  sha256sum | cut -d ' ' -f 1)" >"$WORK/tokens"
cat >"$WORK/policy.textproto" <<'POLICY'
principal {
  name: "operator"
  roles: "admin" roles: "writer" roles: "eraser" roles: "reader" roles: "auditor"
}
POLICY
echo "CA and certificates in $TLS, token $WORK/operator.token (principal 'operator', every role)"

step "Starting oubli-coordinator on a free loopback port (TLS, access policy, audit log)"
# Workers must present a certificate of the CA naming oubli-worker; callers
# of the API a token of ./tokens that the policy names.
"$COORDINATOR" --data_dir="$WORK/data" --listen=127.0.0.1:0 \
  --tls_cert="$TLS/coordinator.crt" --tls_key="$TLS/coordinator.key" \
  --tls_client_ca="$TLS/ca.crt" \
  --policy_file="$WORK/policy.textproto" --token_file="$WORK/tokens" \
  --audit_log="$WORK/audit.log" \
  --training_threads=2 >"$WORK/coordinator.out" 2>"$WORK/coordinator.log" &
PID=$!
ADDRESS=""
for _ in $(seq 1 600); do
  ADDRESS="$(sed -n 's/^listening on //p' "$WORK/coordinator.out")"
  [[ -n "$ADDRESS" ]] && break
  if ! kill -0 "$PID" 2>/dev/null; then
    echo "oubli-coordinator exited:" >&2
    cat "$WORK/coordinator.log" >&2
    exit 1
  fi
  sleep 0.1
done
[[ -n "$ADDRESS" ]] || { echo "no address after 60 s" >&2; exit 1; }
echo "coordinator pid $PID at $ADDRESS (log: $WORK/coordinator.log, audit log: $WORK/audit.log)"
# The public key of the deletion ledger's signing key, which the coordinator
# made in its data dir.
LEDGER_KEY="$WORK/data/ledger-key.pem.pub"
[[ -s "$LEDGER_KEY" ]] || { echo "no $LEDGER_KEY" >&2; exit 1; }
# Every call: TLS, checking the coordinator's certificate against the CA
# (it names 127.0.0.1), and the operator's token.
ctl() {
  "$CTL" --server="$ADDRESS" --tls_ca="$TLS/ca.crt" \
    --token_file="$WORK/operator.token" --timeout_s=600 "$@"
}

if ((WORKERS > 0)); then
  step "Starting $WORKERS oubli-worker processes (they register, heartbeat, train positions and keep erasure-coded checkpoint chunks; mutual TLS with the coordinator)"
  for i in $(seq 1 "$WORKERS"); do
    # The coordinator's certificate must name oubli-coordinator.
    "$WORKER" --coordinator="$ADDRESS" --listen=127.0.0.1:0 --name="worker-$i" \
      --data_dir="$WORK/worker-$i" \
      --tls_cert="$TLS/worker.crt" --tls_key="$TLS/worker.key" \
      --tls_client_ca="$TLS/ca.crt" \
      >"$WORK/worker-$i.out" 2>"$WORK/worker-$i.log" &
    WORKER_PIDS+=($!)
  done
  for i in $(seq 1 "$WORKERS"); do
    for _ in $(seq 1 300); do
      grep -q '^registered as ' "$WORK/worker-$i.out" && break
      kill -0 "${WORKER_PIDS[$((i - 1))]}" 2>/dev/null ||
        { echo "worker-$i exited:" >&2; cat "$WORK/worker-$i.log" >&2; exit 1; }
      sleep 0.1
    done
    echo "worker-$i at $(sed -n 's/^listening on //p' "$WORK/worker-$i.out")," \
      "$(sed -n 's/^registered as //p' "$WORK/worker-$i.out" | head -n 1)"
  done
fi

step "Pretraining the frozen base on the public split (train[0, 10000))"
"$BUILD_DIR/tools/oubli-demo" --data_dir="$WORK/base" \
  --export_config="$WORK/model.conf" --public_samples=10000 \
  --user_samples=1 --test_samples=1 | sed -n 's/^  //p'
# The coordinator opens the base file named in the config by path.

step "Creating model 'fashion' (MLP + LoRA, S=4 L=4 B=2, pretrained base, placement by owner)"
ctl create --model fashion --config "$WORK/model.conf"

step "Ingesting $USER_SAMPLES user samples, train[10000, ...) (20 per owner)"
ctl ingest --model fashion --fashion_mnist "$DATA" --offset 10000 \
  --limit "$USER_SAMPLES" --samples_per_owner 20

step "Training every prefix"
ctl train --model fashion --wait

step "Where the positions trained, and their erasure-coded copies"
ctl model --model fashion | grep -E '^model|^  worker' || true
if ((WORKERS > 0)); then
  for i in $(seq 1 "$WORKERS"); do
    echo "worker-$i holds $(find "$WORK/worker-$i/chunks" -type f | wc -l) chunks" \
      "($(du -sk "$WORK/worker-$i/chunks" | cut -f1) KiB)"
  done
fi

step "Accuracy on the 10,000 test images"
ctl predict --model fashion --fashion_mnist "$DATA" --split test

OWNER="owner-$((10000 / 20))"  # owns train[10000, 10020)
step "Forgetting $OWNER (returns once durable and no longer served)"
ctl delete --model fashion --owner "$OWNER" | tee "$WORK/receipt.txt"
DELETION="$(sed -n 's/^deletion \([^ ]*\) .*/\1/p' "$WORK/receipt.txt")"
[[ -n "$DELETION" ]] || { echo "no deletion id in the receipt" >&2; exit 1; }

step "What the deletion cut (owner placement: one owner, one shard and slice)"
# The receipt's cut lines name the (shard, slice) that held the owner.
sed -n 's/^  cut *shard \([0-9]*\) slice \([0-9]*\) .*/shard \1 slice \2/p' \
  "$WORK/receipt.txt" | sort -u | sed 's/^/cut: /'
ctl model --model fashion >"$WORK/forgotten.txt"
grep -E '^  (placement|shard)' "$WORK/forgotten.txt" || true
SERVING="$(grep -c '^  shard .*serving sequence' "$WORK/forgotten.txt" || true)"
TOTAL="$(grep -c '^  shard ' "$WORK/forgotten.txt" || true)"
echo "$SERVING of $TOTAL shards serving now; only the shard cut above lost prefix length (IMMEDIATE retraining may have restored it already)"

step "Accuracy right after FORGOTTEN (no training yet)"
ctl predict --model fashion --fashion_mnist "$DATA" --split test

step "Watching $DELETION until RESTORED"
ctl status --deletion "$DELETION" --watch

step "Accuracy after RESTORED"
ctl predict --model fashion --fashion_mnist "$DATA" --split test

step "Verifying: retrain from scratch on the retained data, compare bits"
ctl verify --model fashion | tee "$WORK/verify.txt"

step "Auditing the signed deletion ledger (signatures, hash chain, stage order, receipts), saving it"
ctl audit --model fashion --public_key "$LEDGER_KEY" --save "$WORK/ledger.bin"

step "Auditing the saved copy offline (no server: only the file and the public key)"
"$CTL" audit --model fashion --public_key "$LEDGER_KEY" \
  --ledger_file "$WORK/ledger.bin"

step "Tampering with one byte of a copy: the audit fails"
cp "$WORK/ledger.bin" "$WORK/ledger-tampered.bin"
# The file is records, each after its size (4 bytes, little-endian). In the
# record holding the file's middle, flip a character of the entry's served-
# model fingerprint (the record ends with it, the key id and the 64-byte
# signature), as if someone had edited the entry.
SIZE="$(stat -c %s "$WORK/ledger-tampered.bin")"
((SIZE > 0)) || { echo "the saved ledger is empty" >&2; exit 1; }
AT=0
RECORD=0
while :; do
  ((++RECORD))
  LENGTH="$(od -An -tu4 --endian=little -j "$AT" -N 4 \
    "$WORK/ledger-tampered.bin" | tr -d ' ')"
  AT=$((AT + 4 + LENGTH))
  ((AT > SIZE / 2)) && break
done
AT=$((AT - 116))
BYTE="$(od -An -tu1 -j "$AT" -N 1 "$WORK/ledger-tampered.bin" | tr -d ' ')"
printf '%b' "\\0$(printf '%03o' $((BYTE ^ 1)))" |
  dd of="$WORK/ledger-tampered.bin" bs=1 seek="$AT" conv=notrunc status=none
printf 'flipped the low bit of byte %d of %d, in entry %d (0x%02x -> 0x%02x)\n' \
  "$AT" "$SIZE" "$RECORD" "$BYTE" $((BYTE ^ 1))
RC=0
"$CTL" audit --model fashion --public_key "$LEDGER_KEY" \
  --ledger_file "$WORK/ledger-tampered.bin" >"$WORK/tampered.out" \
  2>"$WORK/tampered.err" || RC=$?
cat "$WORK/tampered.out" "$WORK/tampered.err"
((RC == 1)) || { echo "the tampered ledger passed the audit (exit $RC)" >&2; exit 1; }
echo "audit of the tampered copy: exit $RC, as expected"

step "A call without the token is refused"
RC=0
"$CTL" --server="$ADDRESS" --tls_ca="$TLS/ca.crt" models \
  >"$WORK/refused.out" 2>"$WORK/refused.err" || RC=$?
cat "$WORK/refused.out" "$WORK/refused.err"
if ((RC != 1)) || ! grep -q UNAUTHENTICATED "$WORK/refused.err"; then
  echo "expected UNAUTHENTICATED (exit 1), got exit $RC" >&2
  exit 1
fi
echo "oublictl models without --token_file: exit $RC, as expected"

step "The audit log: every mutating call and every refusal, with its caller (last lines)"
tail -n 8 "$WORK/audit.log"

step "Shutting down"
for pid in "${WORKER_PIDS[@]}"; do kill -TERM "$pid"; done
for pid in "${WORKER_PIDS[@]}"; do wait "$pid"; done
WORKER_PIDS=()
kill -TERM "$PID"
wait "$PID"
PID=""
echo "workers and coordinator stopped cleanly"
grep -q "match yes" "$WORK/verify.txt"
